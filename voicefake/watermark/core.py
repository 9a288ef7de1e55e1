"""Keyed spread-spectrum watermark on the speech band's spectral envelope (pure DSP, no weights).

The mark is a tiny keyed +-gain on a grid of time-frequency *cells*: ``n_bands`` mel-spaced
bands between 300 and 3400 Hz (the telephone band) times *chips* of ``chip_frames`` STFT
hops (64 ms). A *block* of ``block_chips`` chips (0.512 s) holds two interleaved patterns:

* **sync** cells: a fixed keyed +-1 pattern, the same in every block. Presence is a
  weighted, normalised correlation of the received, whitened log band energies with it.
* **payload** cells: all 32 coded bits (24 data bits + CRC-8) in every block, each bit on
  ``n_payload_cells / 32`` cells with a keyed scrambling sign. The detector adds the soft
  evidence of every block of the clip (repetition code, soft combining), so a 3 s crop
  still carries six copies.

Why it survives a phone call: everything lives in coarse band energies inside 300-3400 Hz,
which every telephone codec keeps (they code the spectral envelope); log energies make it
gain-invariant, and the detector whitens away the speech envelope (local mean removal).
The 64 ms chips keep part of their contrast through the 128 ms frames of a phase-vocoder
pitch shift (32 ms chips lose it) and outlast the 20 ms frames of CELP codecs. Cropping, splicing and concatenation: the pattern repeats every
block and the detector searches all offsets. Speed +-5 % and pitch shifts: the detector
searches a few (time, frequency) scale pairs.

Imperceptibility and strength: a cell's gain goes as ``energy^-0.75`` (quiet cells carry
most of the mark: they cost the least energy per dB), capped at ``max_db``; the common
level is solved so that the mark has exactly ``snr_db`` against the original. The
detector weights each cell by the gain the same rule would give it (a matched filter).

Shapes: ``T`` samples, ``F`` STFT frames, ``B`` bands (``n_bands``), ``C`` chips.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import uniform_filter, uniform_filter1d

from voicefake.audio.features import istft, stft

SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 128
DEFAULT_KEY = "voicefake-public-watermark-v2"
N_BITS = 32  # coded payload bits: 24 data + CRC-8
_FLOOR = 1e-10  # power floor: keeps logs finite on digital silence


@dataclass(frozen=True)
class WatermarkConfig:
    """The mark's layout and strength (shared by embedder and detector).

    Attributes:
        low_hz: lowest band edge, Hz.
        high_hz: highest band edge, Hz.
        n_bands: mel-spaced bands ``B`` between the edges.
        chip_frames: STFT hops (8 ms) per chip.
        block_chips: chips per block; a block is ``block_chips * chip_frames`` hops.
        n_payload_cells: cells per block carrying the payload (a multiple of 32).
        snr_db: SNR of the marked signal against the original, dB (solved exactly).
        max_db: cap of the per-cell gain, dB.
        floor_db: cells this far below the loudest cell stay unmarked, dB.
        gain_exponent: a cell's gain goes as energy^-gain_exponent (0.5: equal mark energy
            per cell; larger puts more of the mark on quiet cells).
        weight_range_db: the detector weights cells by the embedder's gain rule
            (energy^-gain_exponent) over this range below the loud cells (a matched
            filter), dB.
        min_segment_windows: shortest run of windows the clip statistic is taken over
            (dyadic runs of 6, 12, 24... windows, penalised; see detector.segment_statistic).
        scales: (time, frequency) scale pairs searched by the detector: a speed change by
            resampling scales both (time 1/f, frequency f), a pitch shift only frequency.
        clip_db: whitened features are clipped to +-clip_db (tames onsets' heavy tails).
        threshold: clip-level detection threshold on the statistic (null: ~N(0, 1) max).
        window_threshold: per-window threshold for the localised segments.
    """

    low_hz: float = 300.0
    high_hz: float = 3400.0
    n_bands: int = 32
    chip_frames: int = 8
    block_chips: int = 8
    n_payload_cells: int = 64
    snr_db: float = 30.05
    max_db: float = 5.0
    floor_db: float = 90.0
    weight_range_db: float = 15.0
    gain_exponent: float = 0.75
    min_segment_windows: int = 6
    scales: tuple[tuple[float, float], ...] = (
        (1.0, 1.0), (1 / 1.05, 1.05), (1 / 0.95, 0.95),  # speed +-5 %
        (1.0, 2 ** (1 / 12)), (1.0, 2 ** (-1 / 12)), (1.0, 1.03), (1.0, 0.97))  # pitch
    clip_db: float = 6.0
    threshold: float = 5.5
    window_threshold: float = 3.0

    def __post_init__(self) -> None:
        if self.n_payload_cells % N_BITS or self.n_payload_cells >= self.block_chips * self.n_bands:
            raise ValueError(f"n_payload_cells must be a multiple of {N_BITS} below the block's "
                             f"{self.block_chips * self.n_bands} cells, got {self.n_payload_cells}")

    @property
    def block_frames(self) -> int:
        """STFT hops per block."""
        return self.block_chips * self.chip_frames

    @property
    def block_seconds(self) -> float:
        """Duration of one block (the localisation window), seconds."""
        return self.block_frames * HOP_LENGTH / SAMPLE_RATE


DEFAULT_CONFIG = WatermarkConfig()


@dataclass(frozen=True)
class Pattern:
    """The keyed patterns of one key and config.

    Attributes:
        sync: (block_chips, B) +-1 sync signs, 0 on payload cells.
        payload_index: (n_payload_cells, 2) (chip, band) of each payload cell.
        payload_bit: (n_payload_cells,) which of the 32 coded bits each payload cell carries.
        scramble: (n_payload_cells,) +-1 keyed sign of each payload cell.
    """

    sync: np.ndarray
    payload_index: np.ndarray
    payload_bit: np.ndarray
    scramble: np.ndarray


@functools.lru_cache(maxsize=8)
def make_pattern(key: str, config: WatermarkConfig = DEFAULT_CONFIG) -> Pattern:
    """Derives the sync and payload layout from ``key`` (any string)."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    n_cells = config.block_chips * config.n_bands
    payload_flat = np.sort(rng.permutation(n_cells)[: config.n_payload_cells])
    sync = np.zeros(n_cells)
    is_sync = np.ones(n_cells, dtype=bool)
    is_sync[payload_flat] = False
    for band in range(config.n_bands):
        # balanced per band: a band's steady offset (a hum, a formant, a handset's
        # response) adds nothing to the correlation, however many blocks are summed
        cells = np.flatnonzero(is_sync & (np.arange(n_cells) % config.n_bands == band))
        signs = np.where(np.arange(len(cells)) < len(cells) // 2, 1.0, -1.0)
        if len(cells) % 2:
            signs[-1] = 0.0
        sync[cells] = rng.permutation(signs)
    chips, bands = np.divmod(payload_flat, config.n_bands)
    payload_bit = rng.permutation(np.arange(config.n_payload_cells) % N_BITS)
    scramble = rng.choice([-1.0, 1.0], size=config.n_payload_cells)
    return Pattern(sync.reshape(config.block_chips, config.n_bands),
                   np.stack([chips, bands], axis=1), payload_bit, scramble)


def payload_bits(payload: bytes) -> np.ndarray:
    """(32,) +-1 of the coded payload bits, most significant bit of byte 0 first."""
    if len(payload) != N_BITS // 8:
        raise ValueError(f"payload must be {N_BITS // 8} bytes, got {len(payload)}")
    bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))
    return np.where(bits == 1, 1.0, -1.0)


@functools.lru_cache(maxsize=32)
def band_matrix(scale: float, config: WatermarkConfig = DEFAULT_CONFIG) -> np.ndarray:
    """(B, n_fft // 2 + 1) 0/1 bin-to-band map; band edges multiplied by ``scale``."""
    mel = np.linspace(_hz_to_mel(config.low_hz), _hz_to_mel(config.high_hz), config.n_bands + 1)
    edges = _mel_to_hz(mel) * scale
    freqs = np.arange(N_FFT // 2 + 1) * SAMPLE_RATE / N_FFT
    return ((freqs[None] >= edges[:-1, None]) & (freqs[None] < edges[1:, None])).astype(np.float32)


def _hz_to_mel(hz: float | np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def spectrum(wav: np.ndarray) -> torch.Tensor:
    """(T,) 16 kHz waveform -> (n_fft // 2 + 1, F) complex STFT, F = 1 + T // HOP_LENGTH."""
    tensor = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    if len(tensor) <= N_FFT // 2:  # reflect padding needs more samples than the pad width
        tensor = torch.nn.functional.pad(tensor, (0, N_FFT // 2 + 1 - len(tensor)))
    return stft(tensor, N_FFT, HOP_LENGTH, N_FFT)[:, : 1 + len(wav) // HOP_LENGTH]


# ------------------------------------------------------------------ the detector's feature


def log_band_features(band_power: np.ndarray, config: WatermarkConfig) -> np.ndarray:
    """(F, B) band power -> (F, B) log band energy (dB) summed over one chip ahead."""
    # uniform_filter1d with origin shifts the window to [t, t + chip_frames)
    summed = uniform_filter1d(band_power, config.chip_frames, axis=0, mode="constant",
                              origin=-(config.chip_frames // 2))
    # relative floor: digital silence and dither become a constant, not random dB values
    floor = max(float(summed.max(initial=0.0)) * 1e-9, 1e-12)
    return 10.0 * np.log10(summed + floor)


def whiten(features: np.ndarray, config: WatermarkConfig) -> np.ndarray:
    """Subtracts the local mean over 3 chips x 3 bands (the speech envelope), then clips."""
    # the loudness envelope (syllables, onsets) is common to all bands: remove it first
    features = features - features.mean(axis=1, keepdims=True)
    local = uniform_filter(features, (3 * config.chip_frames, 3), mode="nearest")
    return np.clip(features - local, -config.clip_db, config.clip_db)


def cell_weights(features: np.ndarray, config: WatermarkConfig) -> np.ndarray:
    """(F, B) log band energies (dB) -> (F, B) matched-filter weights in (0, 1].

    The embedder gives quiet cells larger dB gains (~energy^-gain_exponent), so the detector
    trusts them more, down to ``weight_range_db`` below the loud cells (95th percentile).
    """
    ref = float(np.percentile(features, 95)) if features.size else 0.0
    level = np.clip(features - ref, -config.weight_range_db, 0.0)
    return 10.0 ** (-config.gain_exponent * (level + config.weight_range_db) / 10.0)


def detector_features(features: np.ndarray, config: WatermarkConfig) -> np.ndarray:
    """(F, B) log band energies (dB) -> (F, B) weighted whitened features (the sync's input)."""
    return whiten(features, config) * cell_weights(features, config)


# ---------------------------------------------------------------------------------- embed


def chip_signs(num_chips: int, payload: bytes, pattern: Pattern, config: WatermarkConfig
               ) -> np.ndarray:
    """(C, B) +-1 signs of every chip: sync cells plus all payload bits, in every block."""
    blocks = -(-num_chips // config.block_chips)
    chips, bands = pattern.payload_index[:, 0], pattern.payload_index[:, 1]
    block = pattern.sync.copy()
    block[chips, bands] = payload_bits(payload)[pattern.payload_bit] * pattern.scramble
    return np.tile(block, (blocks, 1))[:num_chips]


def solve_gains(energy: np.ndarray, signs: np.ndarray, budget: float, config: WatermarkConfig
                ) -> np.ndarray:
    """(C, B) signed gains in dB, ``min(max_db, level * energy^-gain_exponent)``, whose
    mark energy ``sum((10^(g/20) - 1)^2 * energy)`` equals ``budget`` (bisection on ``level``)."""
    top = float(energy.max(initial=0.0))
    active = (energy > max(top * 10.0 ** (-config.floor_db / 10.0), _FLOOR)) & (signs != 0)
    if not active.any() or budget <= 0:
        return np.zeros_like(signs)
    inverse = np.where(active, np.maximum(energy, _FLOOR) ** -config.gain_exponent, 0.0)

    def mark_energy(level: float) -> tuple[float, np.ndarray]:
        gains = np.minimum(level * inverse, config.max_db)
        return float(((10.0 ** (gains / 20.0) - 1.0) ** 2 * energy).sum()), gains

    low, high = 0.0, 1.0
    while mark_energy(high)[0] < budget and high < 1e12:
        high *= 4.0
    for _ in range(40):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if mark_energy(middle)[0] < budget else (low, middle)
    return mark_energy(low)[1] * signs


def embed_16k(wav: np.ndarray, payload: bytes, key: str = DEFAULT_KEY,
              config: WatermarkConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Marks a 16 kHz waveform; returns the additive mark signal.

    Args:
        wav: (T,) float waveform at 16 kHz.
        payload: 4 bytes (data + CRC, see :mod:`voicefake.watermark.payload`).

    Returns:
        (T,) float32 mark: ``wav + mark`` is the marked signal, at ``config.snr_db``.
    """
    spec = spectrum(wav)
    power = (spec.real**2 + spec.imag**2).numpy().T.astype(np.float64)  # (F, K)
    bands = band_matrix(1.0, config)
    band_power = power @ bands.T  # (F, B)
    num_chips = -(-len(band_power) // config.chip_frames)
    signs = chip_signs(num_chips, payload, make_pattern(key, config), config)
    padded = np.zeros((num_chips * config.chip_frames, config.n_bands))
    padded[: len(band_power)] = band_power
    energy = padded.reshape(num_chips, config.chip_frames, -1).sum(1)  # (C, B)
    budget = float(power.sum()) * 10.0 ** (-config.snr_db / 10.0)
    gains = solve_gains(energy, signs, budget, config)
    frame_gains = np.repeat(gains, config.chip_frames, axis=0)[: len(band_power)]  # (F, B)
    bin_gain = 10.0 ** (frame_gains @ bands / 20.0) - 1.0  # (F, K); 0 outside the bands
    delta = spec * torch.from_numpy(bin_gain.T.astype(np.float32))
    mark = istft(delta, N_FFT, HOP_LENGTH, N_FFT, length=len(wav)).numpy().astype(np.float64)
    # the STFT round trip loses some of the mark (gain steps between cells are not a
    # consistent STFT): land on snr_db, but scale up by at most 2x, so that a clip with
    # little in-band energy (every cell capped) keeps a higher SNR instead of a louder mark.
    mark_energy = float(np.sum(mark**2))
    signal_energy = float(np.sum(np.asarray(wav, dtype=np.float64) ** 2))
    if mark_energy > 0:
        mark *= min(np.sqrt(signal_energy * 10.0 ** (-config.snr_db / 10.0) / mark_energy), 2.0)
    return mark.astype(np.float32)
