"""Keyed spread-spectrum watermark on the speech band's spectral envelope (pure DSP, no weights).

The mark is a tiny keyed +-gain on a grid of time-frequency *cells*: ``n_bands`` mel-spaced
bands between 300 and 3400 Hz (the telephone band) times *chips* of ``chip_frames`` STFT
hops (32 ms). A *block* of ``block_chips`` chips (0.512 s) holds two interleaved patterns:

* **sync** cells: a fixed keyed +-1 pattern, the same in every block. Presence is a
  normalised correlation of the received, whitened log band energies with it.
* **payload** cells: one byte per block as a biorthogonal Walsh-Hadamard code word
  (128 rows x sign = 8 bits), scrambled by a keyed sign sequence per byte position.
  Four blocks carry the four payload bytes (24 data bits + CRC-8), cyclically.

Why it survives a phone call: everything lives in coarse band energies inside 300-3400 Hz,
which every telephone codec keeps (they code the spectral envelope); log energies make it
gain-invariant, and the detector whitens away the speech envelope (local mean removal).
Cropping, splicing and concatenation: the pattern repeats every block and the detector
searches all circular offsets per 0.5 s window. Speed +-5 % and pitch shifts: the detector
searches a small grid of time and frequency scale factors.

Imperceptibility: the gain of each cell is set so that every marked cell adds the same mark
energy (quiet cells get larger dB changes, loud cells smaller ones, capped), with the total
chosen for a target SNR (``snr_db``) between the marked and the original signal.

Shapes: ``T`` samples, ``F`` STFT frames, ``B`` bands (``n_bands``), ``C`` chips.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from voicefake.audio.features import istft, stft

SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 128
DEFAULT_KEY = "voicefake-public-watermark-v1"
N_POSITIONS = 4  # payload bytes, one per block, cyclic
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
        n_payload_cells: cells per block carrying the payload byte (a power of two).
        snr_db: target SNR of the marked signal against the original, dB.
        max_db: cap of the per-cell gain, dB.
        floor_db: cells this far below the loudest cell stay unmarked, dB.
        time_scales: time scale factors searched by the detector (speed changes).
        freq_scales: frequency scale factors searched by the detector (pitch shifts).
        clip_db: whitened features are clipped to +-clip_db (tames onsets' heavy tails).
        threshold: clip-level detection threshold on the statistic (null: ~N(0, 1) max).
        window_threshold: per-window threshold for the localised segments.
    """

    low_hz: float = 300.0
    high_hz: float = 3400.0
    n_bands: int = 32
    chip_frames: int = 4
    block_chips: int = 16
    n_payload_cells: int = 128
    snr_db: float = 30.5
    max_db: float = 5.0
    floor_db: float = 50.0
    time_scales: tuple[float, ...] = (1 / 1.05, 1.0, 1 / 0.95)
    freq_scales: tuple[float, ...] = (0.944, 0.97, 1.0, 1.03, 1.06)
    clip_db: float = 6.0
    threshold: float = 5.5
    window_threshold: float = 3.0

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
        sync: (C_block, B) +-1 sync signs, 0 on payload cells.
        payload_index: (n_payload_cells, 2) (chip, band) of each payload cell.
        scramble: (N_POSITIONS, n_payload_cells) +-1 keyed sign per byte position.
    """

    sync: np.ndarray
    payload_index: np.ndarray
    scramble: np.ndarray


@functools.lru_cache(maxsize=8)
def make_pattern(key: str, config: WatermarkConfig = DEFAULT_CONFIG) -> Pattern:
    """Derives the sync and payload layout from ``key`` (any string)."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    n_cells = config.block_chips * config.n_bands
    order = rng.permutation(n_cells)
    payload_flat = np.sort(order[: config.n_payload_cells])
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
    scramble = rng.choice([-1.0, 1.0], size=(N_POSITIONS, config.n_payload_cells))
    return Pattern(sync.reshape(config.block_chips, config.n_bands),
                   np.stack([chips, bands], axis=1), scramble)


@functools.lru_cache(maxsize=4)
def hadamard(size: int) -> np.ndarray:
    """(size, size) Sylvester Hadamard matrix of +-1 (``size`` a power of two)."""
    matrix = np.ones((1, 1))
    while len(matrix) < size:
        matrix = np.block([[matrix, matrix], [matrix, -matrix]])
    return matrix


def payload_signs(byte: int, position: int, pattern: Pattern) -> np.ndarray:
    """(n_payload_cells,) +-1 code word of one payload byte at one byte position."""
    size = pattern.scramble.shape[1]
    word = hadamard(size)[byte % size] * (1.0 if byte < size else -1.0)
    return word * pattern.scramble[position]


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


# ---------------------------------------------------------------------------------- embed


def cell_gains_db(power: np.ndarray, signs: np.ndarray, total: float,
                  config: WatermarkConfig) -> np.ndarray:
    """Per-cell gains in dB: equal mark energy per marked cell, total at ``config.snr_db``.

    Args:
        power: (F, B) band power per frame.
        signs: (C, B) +-1 pattern per chip (C = ceil(F / chip_frames)).
        total: energy of the whole signal, in the same (STFT power) units.

    Returns:
        (C, B) signed gain in dB.
    """
    chips = signs.shape[0]
    padded = np.zeros((chips * config.chip_frames, power.shape[1]))
    padded[: len(power)] = power
    energy = padded.reshape(chips, config.chip_frames, -1).sum(1)
    top = float(energy.max(initial=0.0))
    active = energy > max(top * 10.0 ** (-config.floor_db / 10.0), _FLOOR * config.chip_frames)
    if not active.any():
        return np.zeros_like(signs)
    # A gain of g dB changes a cell's amplitude by (10^(g/20) - 1) ~ 0.115 g: mark energy
    # per cell (0.115 g)^2 E. Equal mark energy c^2 per active cell, summed, meets snr_db
    # against the total (all-band) signal energy.
    per_cell = np.sqrt(total * 10.0 ** (-config.snr_db / 10.0) / active.sum())
    gains = np.where(active, per_cell / (0.115 * np.sqrt(np.maximum(energy, _FLOOR))), 0.0)
    return np.minimum(gains, config.max_db) * signs


def chip_signs(num_chips: int, payload: bytes, pattern: Pattern, config: WatermarkConfig
               ) -> np.ndarray:
    """(C, B) +-1 signs of every chip: sync cells plus the payload byte of each block."""
    blocks = -(-num_chips // config.block_chips)
    signs = np.tile(pattern.sync, (blocks, 1))
    chips, bands = pattern.payload_index[:, 0], pattern.payload_index[:, 1]
    for block in range(blocks):
        position = block % N_POSITIONS
        word = payload_signs(payload[position], position, pattern)
        signs[block * config.block_chips + chips, bands] = word
    return signs[:num_chips]


def embed_16k(wav: np.ndarray, payload: bytes, key: str = DEFAULT_KEY,
              config: WatermarkConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Marks a 16 kHz waveform; returns the additive mark signal.

    Args:
        wav: (T,) float waveform at 16 kHz.
        payload: N_POSITIONS bytes (data + CRC, see :mod:`voicefake.watermark.payload`).

    Returns:
        (T,) float32 mark: ``wav + mark`` is the marked signal.
    """
    if len(payload) != N_POSITIONS:
        raise ValueError(f"payload must be {N_POSITIONS} bytes, got {len(payload)}")
    spec = spectrum(wav)
    power = (spec.real**2 + spec.imag**2).numpy().T  # (F, K)
    bands = band_matrix(1.0, config)
    band_power = power @ bands.T  # (F, B)
    num_chips = -(-len(band_power) // config.chip_frames)
    signs = chip_signs(num_chips, payload, make_pattern(key, config), config)
    gains = cell_gains_db(band_power, signs, float(power.sum()), config)
    frame_gains = np.repeat(gains, config.chip_frames, axis=0)[: len(band_power)]  # (F, B)
    bin_gain = 10.0 ** (frame_gains @ bands / 20.0) - 1.0  # (F, K); 0 outside the bands
    delta = spec * torch.from_numpy(bin_gain.T.astype(np.float32))
    mark = istft(delta, N_FFT, HOP_LENGTH, N_FFT, length=len(wav))
    return mark.numpy().astype(np.float32)
