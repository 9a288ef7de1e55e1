"""Tests for voicefake.audio.io: decoding, clear errors, writing and level helpers."""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from voicefake.audio import decode as audio_decode
from voicefake.audio.io import (
    AudioError,
    iter_media_files,
    load_audio,
    loudness_normalize,
    read_audio,
    resample,
    sha256_file,
    speech_regions,
    to_mono,
    trim_silence,
    write_audio,
)

SAMPLE_RATE = 16000


def sine(
    freq: float = 440.0, seconds: float = 0.5, rate: int = SAMPLE_RATE, amp: float = 0.5
) -> np.ndarray:
    """(T,) float32 sine wave."""
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(wav: np.ndarray, rate: int) -> float:
    """Frequency in Hz of the largest FFT bin."""
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.fft.rfftfreq(len(wav), 1 / rate)[np.argmax(spectrum)])


def write_with_pyav(
    path: Path,
    container_format: str,
    codec: str | None,
    rate: int,
    wav: np.ndarray | None,
    *,
    video: bool = False,
    **options: int,
) -> Path:
    """Encode ``wav`` (and optionally a tiny grey video) with PyAV's bundled FFmpeg."""
    with av.open(str(path), "w", format=container_format) as out:
        video_stream = None
        if video:
            video_stream = out.add_stream("mpeg4", rate=25)
            video_stream.width, video_stream.height, video_stream.pix_fmt = 64, 48, "yuv420p"
        if wav is not None and codec is not None:
            audio = out.add_stream(codec, rate=rate, layout="mono", **options)
            pcm = (np.clip(wav, -1, 1) * 32767).astype(np.int16)[None]
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in [*audio.encode(frame), *audio.encode(None)]:
                out.mux(packet)
        if video_stream is not None:
            for index in range(12):
                image = np.full((48, 64, 3), index * 20, np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                for packet in video_stream.encode(frame):
                    out.mux(packet)
            for packet in video_stream.encode(None):
                out.mux(packet)
    return path


def assert_audio_error(call: Callable[[], object], label: str, *fragments: str) -> str:
    """Run ``call``; check it raises a one-line AudioError naming ``label`` and ``fragments``."""
    with pytest.raises(AudioError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    assert label in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    ("ext", "tolerance"),
    [("wav", 1e-4), ("flac", 1e-4), ("ogg", None), ("opus", None), ("mp3", None)],
)
def test_soundfile_formats_round_trip(tmp_path: Path, ext: str, tolerance: float | None) -> None:
    wav = sine(440.0, 0.5)
    path = tmp_path / f"tone.{ext}"
    codec = {"format": "OGG", "subtype": "OPUS"} if ext == "opus" else {}
    sf.write(path, wav, SAMPLE_RATE, **codec)
    decoded, rate = read_audio(path)
    assert rate == SAMPLE_RATE
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert abs(len(decoded) - len(wav)) <= 0.02 * SAMPLE_RATE
    assert abs(dominant_frequency(decoded, rate) - 440.0) < 5.0
    assert np.abs(decoded).max() <= 1.0
    if tolerance is not None:
        np.testing.assert_allclose(decoded, wav, atol=tolerance)


@pytest.mark.parametrize(
    ("name", "container_format", "codec", "rate", "video", "options"),
    [
        ("speech.m4a", "ipod", "aac", 16000, False, {}),
        ("phone.amr", "amr", "libopencore_amrnb", 8000, False, {"bit_rate": 12200}),
        ("clip.mp4", "mp4", "aac", 16000, True, {}),
    ],
)
def test_pyav_formats_round_trip(
    tmp_path: Path,
    name: str,
    container_format: str,
    codec: str,
    rate: int,
    video: bool,
    options: dict[str, int],
) -> None:
    path = write_with_pyav(
        tmp_path / name,
        container_format,
        codec,
        rate,
        sine(440.0, 0.5, rate),
        video=video,
        **options,
    )
    decoded, native_rate = read_audio(path)
    assert native_rate == rate
    assert abs(len(decoded) / rate - 0.5) < 0.1  # codecs add priming/padding samples
    assert abs(dominant_frequency(decoded, rate) - 440.0) < 10.0
    at_16k = load_audio(path, 16000)
    assert abs(len(at_16k) / 16000 - len(decoded) / rate) < 0.01


def test_bytes_input_uses_both_decoders(tmp_path: Path) -> None:
    flac = tmp_path / "a.flac"
    sf.write(flac, sine(), SAMPLE_RATE)
    m4a = write_with_pyav(tmp_path / "a.m4a", "ipod", "aac", SAMPLE_RATE, sine())
    from_flac = load_audio(flac.read_bytes(), name="upload.flac")
    from_m4a = load_audio(m4a.read_bytes(), name="upload.m4a")
    np.testing.assert_allclose(from_flac, load_audio(flac), atol=0)
    assert abs(dominant_frequency(from_m4a, SAMPLE_RATE) - 440.0) < 10.0


@pytest.mark.parametrize("ext", [".sln", ".ulaw", ".alaw"])
def test_headerless_telephony_files_decode_by_extension(tmp_path: Path, ext: str) -> None:
    """Asterisk's raw 8 kHz formats have no header: the extension names them, on disk and for named bytes."""
    wav = sine(1000.0, 1.0, rate=8000)
    path = tmp_path / f"prompt{ext}"
    if ext == ".sln":
        path.write_bytes(np.round(wav * 32767).astype("<i2").tobytes())
    else:
        law = {".ulaw": "mulaw", ".alaw": "alaw"}[ext]
        write_with_pyav(path, law, f"pcm_{law}", 8000, wav)
    out = load_audio(path, None)
    assert out.size == wav.size
    assert np.corrcoef(out, wav)[0, 1] > 0.999
    at16k = load_audio(path.read_bytes(), 16000, name=f"upload{ext}")
    assert abs(at16k.size - 2 * wav.size) <= 2
    with pytest.raises(AudioError, match="cannot be decoded as audio"):
        load_audio(path.read_bytes(), None)  # no name, no extension: not guessed
    assert path in list(iter_media_files([tmp_path]))


def test_multichannel_is_averaged(tmp_path: Path) -> None:
    left, right = sine(440.0, amp=0.6), sine(440.0, amp=0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-6)


def test_mp3_without_length_header_is_decoded_fully(tmp_path: Path) -> None:
    # libsndfile stops at a bit-rate guess for such files; the PyAV path must read it all.
    rng = np.random.default_rng(0)
    quiet = sine(200.0, 1.0, amp=0.001)
    loud = (0.3 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32)
    path = tmp_path / "vbr.mp3"
    with av.open(str(path), "w", format="mp3", options={"write_xing": "0"}) as out:
        stream = out.add_stream("libmp3lame", rate=SAMPLE_RATE, layout="mono")
        stream.codec_context.qscale = 4
        pcm = (np.concatenate([quiet, loud]) * 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    decoded, _ = read_audio(path)
    assert len(decoded) >= 2 * SAMPLE_RATE


# ----------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing-here.wav"
    assert_audio_error(lambda: load_audio(path), str(path), "no such file")


def test_directory(tmp_path: Path) -> None:
    assert_audio_error(lambda: load_audio(tmp_path), str(tmp_path), "directory")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    assert_audio_error(lambda: load_audio(path), "empty.wav", "0 bytes")


def test_text_renamed_to_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("Meeting notes: call the bank on Monday.\n" * 20)
    assert_audio_error(lambda: load_audio(path), "notes.wav", "text file, not audio")


def test_png_renamed_to_mp3(tmp_path: Path) -> None:
    path = tmp_path / "photo.mp3"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    assert_audio_error(lambda: load_audio(path), "photo.mp3", "PNG image, not audio")


def test_random_bytes_with_name(tmp_path: Path) -> None:
    junk = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    assert_audio_error(lambda: load_audio(junk, name="upload.ogg"), "upload.ogg", "cannot be")


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3"])
def test_truncated_file(tmp_path: Path, ext: str) -> None:
    whole = tmp_path / f"whole.{ext}"
    sf.write(whole, sine(440.0, 1.0), SAMPLE_RATE)
    data = whole.read_bytes()
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(data[: len(data) // 2])
    assert_audio_error(lambda: load_audio(path), f"cut.{ext}", "truncated")


def test_wav_header_only(tmp_path: Path) -> None:
    whole = tmp_path / "whole.wav"
    sf.write(whole, sine(), SAMPLE_RATE)
    path = tmp_path / "header.wav"
    path.write_bytes(whole.read_bytes()[:30])
    assert_audio_error(lambda: load_audio(path), "header.wav", "truncated or corrupt")


def test_zero_samples(tmp_path: Path) -> None:
    path = tmp_path / "nothing.wav"
    sf.write(path, np.zeros(0, np.float32), SAMPLE_RATE)
    assert_audio_error(lambda: load_audio(path), "nothing.wav", "no audio samples")


def test_digital_silence(tmp_path: Path) -> None:
    path = tmp_path / "silent.flac"
    sf.write(path, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    assert_audio_error(lambda: load_audio(path), "silent.flac", "digital silence")
    assert np.all(load_audio(path, allow_silence=True) == 0)


def test_nan_samples(tmp_path: Path) -> None:
    wav = sine()
    wav[100] = np.nan
    path = tmp_path / "broken.wav"
    sf.write(path, wav, SAMPLE_RATE, subtype="FLOAT")
    assert_audio_error(lambda: load_audio(path), "broken.wav", "NaN or infinite")


@pytest.mark.parametrize("rate", [1000, 500000])
def test_absurd_native_rate(tmp_path: Path, rate: int) -> None:
    path = tmp_path / f"rate{rate}.wav"
    sf.write(path, np.full(4000, 0.1, np.float32), rate)
    assert_audio_error(lambda: load_audio(path), path.name, f"{rate} Hz")


@pytest.mark.parametrize("rate", [0, 100, 10**7, 16000.5, True])
def test_bad_requested_rate(tmp_path: Path, rate: object) -> None:
    path = tmp_path / "fine.wav"
    sf.write(path, sine(), SAMPLE_RATE)
    assert_audio_error(lambda: load_audio(path, rate), "fine.wav", "requested sample_rate")  # type: ignore[arg-type]


def test_video_without_audio(tmp_path: Path) -> None:
    path = write_with_pyav(tmp_path / "mute.mp4", "mp4", None, SAMPLE_RATE, None, video=True)
    assert_audio_error(lambda: load_audio(path), "mute.mp4", "video without an audio track")


def test_too_long_is_rejected_from_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "long.flac"
    sf.write(path, sine(440.0, 1.0), SAMPLE_RATE)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded although the header is over the limit")

    monkeypatch.setattr(sf.SoundFile, "read", no_decoding)
    assert_audio_error(lambda: load_audio(path, max_duration=0.5), "long.flac", "1.00 s long")


def test_too_long_video_stops_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_with_pyav(tmp_path / "long.m4a", "ipod", "aac", SAMPLE_RATE, sine(440.0, 1.0))
    assert_audio_error(lambda: load_audio(path, max_duration=0.3), "long.m4a", "over the limit")
    # Without a usable header duration, the decoding itself is bounded.
    monkeypatch.setattr(audio_decode, "_header_duration", lambda container, audio: 0.0)
    assert_audio_error(lambda: load_audio(path, max_duration=0.3), "long.m4a", "stopped decoding")


def test_fifo_does_not_hang(tmp_path: Path) -> None:
    path = tmp_path / "pipe.wav"
    try:
        os.mkfifo(path)
    except (AttributeError, OSError):
        pytest.skip("named pipes are not available here")
    assert_audio_error(lambda: load_audio(path), "pipe.wav", "not a regular file")


# ----------------------------------------------------------------------------- signal


def test_resample_keeps_frequency_and_is_deterministic() -> None:
    wav = sine(1000.0, 1.0, rate=44100)
    first = resample(wav, 44100, 16000)
    assert first.dtype == np.float32
    assert abs(len(first) - 16000) <= 1
    assert abs(dominant_frequency(first, 16000) - 1000.0) < 2.0
    np.testing.assert_array_equal(first, resample(wav, 44100, 16000))
    with pytest.raises(ValueError, match="sample rate"):
        resample(wav, 44100, 0)


def test_to_mono_conventions() -> None:
    left, right = sine(amp=0.4), sine(amp=0.2)
    expected = (left + right) / 2
    np.testing.assert_allclose(to_mono(np.stack([left, right])), expected, atol=1e-7)
    np.testing.assert_allclose(to_mono(np.stack([left, right], axis=1)), expected, atol=1e-7)
    np.testing.assert_array_equal(to_mono(left), left)
    with pytest.raises(ValueError, match="channels"):
        to_mono(np.zeros((2, 2, 2)))


def rms_db(wav: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(wav.astype(np.float64) ** 2)))


def test_loudness_normalize_hits_target_ignoring_pauses() -> None:
    silence = np.zeros(SAMPLE_RATE // 2, np.float32)
    speech = sine(300.0, 1.0, amp=0.02)
    out = loudness_normalize(np.concatenate([silence, speech, silence]), SAMPLE_RATE, -23.0)
    active = out[len(silence) : len(silence) + len(speech)]
    assert abs(rms_db(active) - -23.0) < 1.0
    assert np.all(out[: len(silence)] == 0)


def test_loudness_normalize_never_clips() -> None:
    rng = np.random.default_rng(0)
    spiky = (0.01 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32)
    spiky[::1000] = 0.9  # a high crest factor: the target gain would clip
    out = loudness_normalize(spiky, SAMPLE_RATE, target_db=-6.0)
    assert np.abs(out).max() <= 10 ** (-1 / 20) + 1e-6
    silent = np.zeros(100, np.float32)
    np.testing.assert_array_equal(loudness_normalize(silent, SAMPLE_RATE), silent)


def test_speech_regions_finds_a_burst() -> None:
    rng = np.random.default_rng(0)
    wav = (1e-4 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32)
    start, end = int(1.0 * SAMPLE_RATE), int(2.2 * SAMPLE_RATE)
    wav[start:end] += sine(500.0, 1.2, amp=0.5)
    regions = speech_regions(wav, SAMPLE_RATE)
    assert len(regions) == 1
    assert abs(regions[0][0] - 1.0) <= 0.05
    assert abs(regions[0][1] - 2.2) <= 0.05
    assert speech_regions(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE) == []


def test_speech_regions_bridges_short_pauses_and_drops_blips() -> None:
    wav = np.zeros(3 * SAMPLE_RATE, np.float32)
    wav[8000:16000] = sine(500.0, 0.5)  # 0.5-1.0 s
    wav[17600:24000] = sine(500.0, 0.4)  # 1.1-1.5 s: a 0.1 s pause, bridged
    wav[40000:40800] = sine(500.0, 0.05)  # 2.5 s: a 50 ms blip, dropped
    regions = speech_regions(wav, SAMPLE_RATE)
    assert len(regions) == 1
    assert abs(regions[0][0] - 0.5) <= 0.05 and abs(regions[0][1] - 1.5) <= 0.05


def test_trim_silence_keeps_padding() -> None:
    wav = np.concatenate([np.zeros(SAMPLE_RATE), sine(500.0, 1.0), np.zeros(SAMPLE_RATE)])
    trimmed = trim_silence(wav, SAMPLE_RATE, pad_s=0.1)
    assert abs(len(trimmed) / SAMPLE_RATE - 1.2) <= 0.07
    assert trim_silence(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE).size == 0


# ----------------------------------------------------------------------------- writing


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_write_audio_round_trip_with_metadata(tmp_path: Path, ext: str) -> None:
    path = tmp_path / "new" / "deeper" / f"fake.{ext}"
    wav = sine()
    wav[:10] = 2.0  # out of range: clipped, not wrapped
    metadata = {"comment": "synthetic speech generated by voicefake", "software": "voicefake"}
    assert write_audio(path, wav, SAMPLE_RATE, metadata=metadata) == path
    with sf.SoundFile(path) as written:
        assert written.subtype == "PCM_16"
        assert written.comment == metadata["comment"]
        assert written.software.startswith("voicefake")
    decoded = load_audio(path)
    assert np.abs(decoded[:10] - 1.0).max() < 1e-3
    np.testing.assert_allclose(decoded[10:], wav[10:], atol=1e-4)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files


def test_write_audio_refuses_to_overwrite(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "out.wav", sine(), SAMPLE_RATE)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="force"):
        write_audio(path, sine(880.0), SAMPLE_RATE)
    assert path.read_bytes() == before
    write_audio(path, sine(880.0), SAMPLE_RATE, force=True)
    assert abs(dominant_frequency(load_audio(path), SAMPLE_RATE) - 880.0) < 5.0


def test_write_audio_failure_leaves_nothing(tmp_path: Path) -> None:
    bad = sine()
    bad[5] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        write_audio(tmp_path / "x.wav", bad, SAMPLE_RATE)
    with pytest.raises(ValueError, match=r"\.wav, \.flac"):
        write_audio(tmp_path / "x.mp3", sine(), SAMPLE_RATE)
    with pytest.raises(ValueError, match="metadata"):
        write_audio(tmp_path / "x.wav", sine(), SAMPLE_RATE, metadata={"voice": "x"})
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- files


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"voicefake" * 1000)
    assert sha256_file(path) == hashlib.sha256(b"voicefake" * 1000).hexdigest()


def test_iter_media_files(tmp_path: Path) -> None:
    for name in ["b/2.wav", "a.mp3", "b/1.MP4", "notes.txt", ".hidden/x.wav", "b/._y.wav"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    single = tmp_path / "notes.txt"
    found = iter_media_files([tmp_path, single])
    assert found == [tmp_path / "a.mp3", tmp_path / "b/1.MP4", tmp_path / "b/2.wav", single]
    missing = tmp_path / "gone"
    assert_audio_error(lambda: iter_media_files([missing]), str(missing), "no such file")
    (tmp_path / "empty").mkdir()
    assert_audio_error(lambda: iter_media_files([tmp_path / "empty"]), "empty", "no audio")


# ----------------------------------------------------------------------------- real data


@pytest.mark.data
def test_every_file_in_the_shared_data_decodes(data_root: Path) -> None:
    with (data_root / "manifest.csv").open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) > 0
    problems = []
    for row in rows:
        try:
            wav = load_audio(data_root / row["path"], 16000)
        except AudioError as exc:
            problems.append(str(exc))
            continue
        error = abs(len(wav) / 16000 - float(row["duration_s"]))
        if error > 0.1:
            problems.append(f"{row['path']}: {len(wav) / 16000:.3f} s vs {row['duration_s']}")
    assert not problems, f"{len(problems)} of {len(rows)} files: {problems[:10]}"


# ----------------------------------------------------------------------------- channels


def test_channels_kept_apart_on_request(tmp_path: Path) -> None:
    """mono=False gives (T, channels) from both decoders (soundfile: wav; PyAV: AAC in m4a),
    each channel its own signal; the default still averages them."""
    left, right = sine(440.0, 0.5), sine(1000.0, 0.5, amp=0.25)
    wav_path = tmp_path / "call.wav"
    sf.write(wav_path, np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    frames = load_audio(wav_path, mono=False)
    assert frames.shape == (left.size, 2) and frames.dtype == np.float32
    np.testing.assert_allclose(frames, np.stack([left, right], axis=1), atol=1e-6)
    np.testing.assert_allclose(load_audio(wav_path), frames.mean(axis=1), atol=1e-6)
    assert load_audio(wav_path, 8000, mono=False).shape == (left.size // 2, 2)

    m4a = tmp_path / "call.m4a"
    with av.open(str(m4a), "w", format="ipod") as out:
        stream = out.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        pcm = (np.stack([left, right]) * 32767).astype(np.int16).T.reshape(1, -1)  # packed s16
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        frame.sample_rate = SAMPLE_RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    decoded = load_audio(m4a, mono=False)
    assert decoded.ndim == 2 and decoded.shape[1] == 2
    middle = decoded[2000:6000]
    assert abs(dominant_frequency(middle[:, 0], SAMPLE_RATE) - 440.0) < 10.0
    assert abs(dominant_frequency(middle[:, 1], SAMPLE_RATE) - 1000.0) < 10.0
    mono = tmp_path / "mono.wav"
    sf.write(mono, left, SAMPLE_RATE)
    assert load_audio(mono, mono=False).shape == (left.size, 1)
