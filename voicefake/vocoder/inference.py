"""Chunked (streaming) vocoding of long mels with no seams.

Every output frame of the generator depends only on a bounded neighbourhood of input
frames (:meth:`Vocoder.receptive_field`). Chunks are therefore decoded with that much
context on each side and the context is cut away, so the chunks join into the same waveform
the whole mel would give (up to float rounding), with bounded memory for any length.

A Vocos head that accumulates a phase advance (``phase_head: accumulate``) also depends on
everything before a chunk through that running sum; the sum at each chunk's first frame is
carried from the chunk before, so the joins stay exact.

The head's phase refinement (``phase_iterations``, :mod:`voicefake.vocoder.phase`) is local
in time too; its extra context is part of :meth:`Vocoder.receptive_field`.

``dtype`` bfloat16 runs the network's products in bfloat16 (:mod:`voicefake.nn.precision`);
the refinement stays float32. Rounding is done per element, so chunks still join exactly.
"""

from __future__ import annotations

import torch

from voicefake.nn.precision import autocast
from voicefake.vocoder.model import Vocoder, VocosGenerator, accumulate_phase


def vocode_chunked(vocoder: Vocoder, mel: torch.Tensor, chunk_frames: int = 500,
                   phase_iterations: int | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Vocodes ``mel`` (B, M, F) in chunks of ``chunk_frames``; returns (B, T) float32.

    The result has the same length as ``vocoder(mel)``: ``(F - 1) * hop_length`` samples.
    ``phase_iterations`` overrides the checkpoint's refinement (None: its default).
    ``dtype``: what the network's products run in (float32, or bfloat16 where the CPU has it).
    """
    with autocast(dtype, mel.device):
        return _vocode_chunked(vocoder, mel, chunk_frames, phase_iterations).float()


def _vocode_chunked(vocoder: Vocoder, mel: torch.Tensor, chunk_frames: int,
                    phase_iterations: int | None) -> torch.Tensor:
    if chunk_frames <= 0:
        raise ValueError(f"chunk_frames must be positive, got {chunk_frames}")
    frames = mel.shape[-1]
    hop = vocoder.mel.hop_length
    iterations = vocoder.phase_iterations(phase_iterations)
    context = vocoder.receptive_field(iterations)
    if frames <= chunk_frames + 2 * context:
        return vocoder(mel, phase_iterations=iterations)
    gen = vocoder.generator
    carried = isinstance(gen, VocosGenerator) and gen.advance is not None
    pieces = []
    total = None  # accumulated phase advance up to frame `start` (carried heads only)
    for start in range(0, frames - 1, chunk_frames):
        stop = min(start + chunk_frames, frames - 1)
        lo, hi = max(0, start - context), min(frames, stop + 1 + context)
        if carried:
            assert isinstance(gen, VocosGenerator)
            log_mag, phase, advance = gen.spectrum_parts(mel[..., lo:hi])
            assert advance is not None
            sums = torch.cumsum(advance.double(), dim=-1)
            # the first chunk starts at frame 0 (lo == 0), where the sum starts from 0
            offset = torch.zeros_like(sums[..., 0]) if total is None else total - sums[..., start - lo]
            wav = gen.synthesize(log_mag, phase + accumulate_phase(advance, offset), mel=mel[..., lo:hi],
                                 phase_iterations=iterations).clamp(-1.0, 1.0)
            total = accumulate_phase(advance[..., : stop - lo + 1], offset)[..., -1].double()
        else:
            wav = vocoder(mel[..., lo:hi], phase_iterations=iterations)
        # sample s of the chunk output corresponds to sample (lo * hop + s) of the whole
        pieces.append(wav[..., (start - lo) * hop : (stop - lo) * hop])
    return torch.cat(pieces, dim=-1)
