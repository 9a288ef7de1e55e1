"""Chunked (streaming) vocoding of long mels with no seams.

Every output frame of the generator depends only on a bounded neighbourhood of input
frames (:meth:`Vocoder.receptive_field`). Chunks are therefore decoded with that much
context on each side and the context is cut away, so the chunks join into the same waveform
the whole mel would give (up to float rounding), with bounded memory for any length.
"""

from __future__ import annotations

import torch

from voicefake.vocoder.model import Vocoder


def vocode_chunked(vocoder: Vocoder, mel: torch.Tensor, chunk_frames: int = 500) -> torch.Tensor:
    """Vocodes ``mel`` (B, M, F) in chunks of ``chunk_frames``; returns (B, T).

    The result has the same length as ``vocoder(mel)``: ``(F - 1) * hop_length`` samples.
    """
    if chunk_frames <= 0:
        raise ValueError(f"chunk_frames must be positive, got {chunk_frames}")
    frames = mel.shape[-1]
    hop = vocoder.mel.hop_length
    context = vocoder.receptive_field()
    if frames <= chunk_frames + 2 * context:
        return vocoder(mel)
    pieces = []
    for start in range(0, frames - 1, chunk_frames):
        stop = min(start + chunk_frames, frames - 1)
        lo, hi = max(0, start - context), min(frames, stop + 1 + context)
        wav = vocoder(mel[..., lo:hi])
        # sample s of the chunk output corresponds to sample (lo * hop + s) of the whole
        pieces.append(wav[..., (start - lo) * hop : (stop - lo) * hop])
    return torch.cat(pieces, dim=-1)
