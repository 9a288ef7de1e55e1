"""espeak-ng through its C library (bundled by the ``espeakng-loader`` wheel), in-process.

espeak-ng is a formant synthesiser: intelligible in many languages, robotic in timbre. voicefake
uses its speech only as content (words, timing, intonation) that voice conversion then moves
into the target voice. The library is not thread-safe, so calls are serialised with a lock.
"""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np

_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_PARAMETERS = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}


class EspeakError(RuntimeError):
    """espeak-ng is missing or refused the input."""


class _Engine:
    """The one initialised library handle; collects samples through the synth callback."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as err:  # pragma: no cover - a declared dependency
            raise EspeakError("text to speech needs the espeakng-loader package: pip install espeakng-loader") from err
        os.environ.setdefault("ESPEAK_DATA_PATH", espeakng_loader.get_data_path())
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = self.lib.espeak_Initialize(_OUTPUT_SYNCHRONOUS, 0, ctypes.c_char_p(data), 0)
        if self.sample_rate <= 0:
            raise EspeakError(f"espeak-ng failed to initialise (data at {data.decode()})")
        self.chunks: list[np.ndarray] = []
        self.callback = _CALLBACK(self._collect)  # keep a reference: ctypes does not
        self.lib.espeak_SetSynthCallback(self.callback)
        self.lock = threading.Lock()

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), count: int, events: ctypes.c_void_p) -> int:  # type: ignore[valid-type]
        if count > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise EspeakError(f"espeak-ng has no voice {voice!r} (try en-us, en, en-gb-x-rp, de, fr, es, it; a variant is added as en-us+klatt)")
            self.lib.espeak_SetParameter(_PARAMETERS["rate"], rate, 0)
            self.lib.espeak_SetParameter(_PARAMETERS["pitch"], pitch, 0)
            self.chunks = []
            data = text.encode("utf-8") + b"\0"
            status = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            self.lib.espeak_Synchronize()
            if status != 0:
                raise EspeakError(f"espeak-ng failed on the text (status {status})")
            wav = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        return wav.astype(np.float32) / 32768.0


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def speak(text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50) -> tuple[np.ndarray, int]:
    """Renders ``text`` with espeak-ng: ``(float32 waveform, sample rate)``.

    Args:
        text: UTF-8 text (one or more sentences).
        voice: an espeak-ng voice / language name.
        rate: words per minute (80-450).
        pitch: base pitch 0-100.
    """
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Engine()
    return _engine.synth(text, voice, rate, pitch), _engine.sample_rate
