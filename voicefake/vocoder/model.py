"""Mel-spectrogram to waveform generators of the HiFi-GAN family.

Two generator architectures share one config and one interface ``mel -> wav``:

* ``"vocos"`` (default, bundled): a ConvNeXt backbone at the frame rate predicts STFT
  magnitude and phase, and an inverse STFT makes the waveform (Siuzdak, 2023). All the
  network runs at the frame rate, so it is several times faster on a CPU than upsampling.
* ``"hifigan"``: transposed-convolution upsampling with multi-receptive-field residual
  blocks (Kong et al., 2020); V1 and V3 sizes are available for comparison and GPU recipes.

Shapes: ``mel`` is (B, M, F) natural-log mel from :class:`voicefake.audio.features.MelSpectrogram`;
the output is (B, T) with ``T = num_samples(F, mel)``, values in [-1, 1].
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from voicefake.audio.features import MelConfig, istft, num_samples
from voicefake.vocoder.phase import context_frames, head_filterbank, polar, refine


@dataclass(frozen=True)
class VocoderConfig:
    """Generator architecture and size.

    Attributes:
        architecture: "vocos" or "hifigan".
        dim / intermediate_dim / num_layers / kernel_size: Vocos ConvNeXt backbone.
        head_n_fft: Vocos inverse-STFT size (hop = the mel hop length; window = head_n_fft).
        upsample_rates / upsample_kernel_sizes / upsample_initial_channel: HiFi-GAN; the
            product of the rates must equal the mel hop length.
        resblock: HiFi-GAN residual block type "1" (V1/V2) or "2" (V3).
        resblock_kernel_sizes / resblock_dilations: HiFi-GAN MRF blocks.
        phase_head: Vocos phase output. "frame": each frame's phase is predicted on its own
            (as in Vocos). "accumulate": a per-frame phase advance is predicted too and summed
            over frames, so a steady input can give a steady tone at any frequency (a
            frame-local head can only repeat the same phase every hop, which moves steady
            partials to multiples of sample_rate / hop_length).
        phase_iterations: Vocos inference only (never in training): when > 0, the head's
            magnitude is rescaled to match the input mel and the phase is refined by this
            many fast Griffin-Lim iterations started from the predicted phase
            (:mod:`voicefake.vocoder.phase`); 0 outputs the head's STFT as it is. The
            default of a checkpoint; callers can override it per call.
    """

    architecture: Literal["vocos", "hifigan"] = "vocos"
    dim: int = 192
    intermediate_dim: int = 576
    num_layers: int = 8
    kernel_size: int = 7
    head_n_fft: int = 640
    upsample_rates: tuple[int, ...] = (5, 4, 4, 2)
    upsample_kernel_sizes: tuple[int, ...] = (10, 8, 8, 4)
    upsample_initial_channel: int = 512
    resblock: Literal["1", "2"] = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    phase_head: Literal["frame", "accumulate"] = "frame"
    phase_iterations: int = 0

    def __post_init__(self) -> None:
        if self.phase_iterations < 0:
            raise ValueError(f"VocoderConfig.phase_iterations must be >= 0, got {self.phase_iterations}")
        if self.phase_iterations and self.architecture != "vocos":
            raise ValueError("VocoderConfig.phase_iterations needs the vocos architecture (an STFT head)")
        if self.phase_head not in ("frame", "accumulate"):
            raise ValueError(f"VocoderConfig.phase_head must be 'frame' or 'accumulate', got {self.phase_head!r}")
        if self.architecture not in ("vocos", "hifigan"):
            raise ValueError(f"VocoderConfig.architecture must be 'vocos' or 'hifigan', got {self.architecture!r}")
        if self.resblock not in ("1", "2"):
            raise ValueError(f"VocoderConfig.resblock must be '1' or '2', got {self.resblock!r}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("VocoderConfig: upsample_rates and upsample_kernel_sizes differ in length")

    @classmethod
    def tiny(cls) -> VocoderConfig:
        """A few thousand parameters, for tests."""
        return cls(dim=16, intermediate_dim=32, num_layers=1, head_n_fft=640)

    @classmethod
    def small(cls) -> VocoderConfig:
        """The bundled 16 kHz model."""
        return cls()

    @classmethod
    def hifigan_v1(cls) -> VocoderConfig:
        """HiFi-GAN V1 at hop 160 (16 kHz, 10 ms)."""
        return cls(architecture="hifigan")

    @classmethod
    def hifigan_v3(cls) -> VocoderConfig:
        """HiFi-GAN V3 at hop 160."""
        return cls(
            architecture="hifigan", upsample_rates=(5, 4, 8), upsample_kernel_sizes=(10, 8, 16),
            upsample_initial_channel=256, resblock="2", resblock_kernel_sizes=(3, 5, 7),
            resblock_dilations=((1, 2), (2, 6), (3, 12)),
        )

    @classmethod
    def vocos_base(cls) -> VocoderConfig:
        """The published Vocos size (dim 512, 8 layers), for GPU recipes and speed tables."""
        return cls(dim=512, intermediate_dim=1536, num_layers=8, head_n_fft=1024)

    def replace(self, **changes: object) -> VocoderConfig:
        """Returns a copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> pointwise MLP with GELU -> layer scale, residual."""

    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, D, F) -> (B, D, F)."""
        y = self.dwconv(x).transpose(1, 2)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class VocosGenerator(nn.Module):
    """ConvNeXt backbone + inverse-STFT head."""

    filters: torch.Tensor

    def __init__(self, config: VocoderConfig, mel: MelConfig) -> None:
        super().__init__()
        self.hop_length = mel.hop_length
        self.mel_config = mel
        self.n_fft = config.head_n_fft
        if self.n_fft < self.hop_length:
            raise ValueError(f"head_n_fft {self.n_fft} must be >= mel hop_length {self.hop_length}")
        self.embed = nn.Conv1d(mel.n_mels, config.dim, config.kernel_size, padding=config.kernel_size // 2)
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)
        scale = 1.0 / config.num_layers
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(config.dim, config.intermediate_dim, config.kernel_size, scale)
            for _ in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.head = nn.Linear(config.dim, self.n_fft + 2)
        self.advance: nn.Linear | None = None
        if config.phase_head == "accumulate":
            # zero at the start: a model fine-tuned from a "frame" head starts out unchanged
            self.advance = nn.Linear(config.dim, self.n_fft // 2 + 1)
            nn.init.zeros_(self.advance.weight)
            nn.init.zeros_(self.advance.bias)
        # the refinement's mel filters on the head's STFT grid, made once
        self.register_buffer("filters", head_filterbank(mel, self.n_fft, self.n_fft), persistent=False)

    def spectrum_parts(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(log-magnitude, frame phase, phase advance or None), each (B, n_fft/2+1, F).

        The phase is ``frame phase + cumulative sum of the advance`` over frames
        (:meth:`spectrum`); every part depends only on a bounded neighbourhood of input
        frames, which is what chunked decoding relies on.
        """
        x = self.norm(self.embed(mel).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        h = self.final_norm(x.transpose(1, 2))
        log_mag, phase = self.head(h).transpose(1, 2).float().chunk(2, dim=1)
        advance = None if self.advance is None else self.advance(h).transpose(1, 2).float()
        return log_mag, phase, advance

    def spectrum(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The predicted STFT before the inverse: (log-magnitude, phase), each (B, n_fft/2+1, F).

        Frame ``f`` is centred on sample ``f * hop_length`` (``torch.stft(center=True)``
        framing, Hann window of ``head_n_fft``), so the spectral losses can compare it with
        the STFT of the real audio directly.
        """
        log_mag, phase, advance = self.spectrum_parts(mel)
        if advance is not None:
            # The running sum's gradient is truncated to its own frame (value unchanged): a
            # loss at frame t moves the advance at t only. Through the full sum, the phase and
            # group-delay distances of every later frame add up (30-45x the gradient of the
            # instantaneous-frequency distance, the advance's own target; see
            # docs/benchmarks/vocoder.md, session 5).
            phase = phase + accumulate_phase(advance).detach() + (advance - advance.detach())
        return log_mag, phase

    def forward(self, mel: torch.Tensor, phase_iterations: int = 0) -> torch.Tensor:
        return self.synthesize(*self.spectrum(mel), mel=mel, phase_iterations=phase_iterations)

    def synthesize(self, log_mag: torch.Tensor, phase: torch.Tensor, mel: torch.Tensor | None = None,
                   phase_iterations: int = 0) -> torch.Tensor:
        """Inverse STFT of a (log-magnitude, phase) pair from :meth:`spectrum`.

        With ``phase_iterations`` > 0 and the input ``mel``, the pair is refined first
        (:func:`voicefake.vocoder.phase.refine`).
        """
        if phase_iterations:
            if mel is None:
                raise ValueError("phase refinement needs the input mel")
            return refine(log_mag, phase, mel.float(), self.mel_config, self.n_fft, phase_iterations,
                          filters=self.filters)
        # clamp keeps exp() finite early in training (as in Vocos)
        spec = polar(torch.exp(log_mag).clamp(max=1e2), phase)
        length = num_samples_for(phase.shape[-1], self.hop_length)
        if length == 0:  # a single frame spans no samples; the inverse STFT cannot make 0 of them
            return spec.real.new_zeros(spec.shape[0], 0)
        return istft(spec, self.n_fft, self.hop_length, self.n_fft, length)


def accumulate_phase(advance: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
    """Running sum over frames (last axis) of a phase advance, wrapped into [-pi, pi).

    Summed in float64 so that hours of frames lose no precision; ``start`` (B, K) is the
    accumulated phase before the first frame (0 when None), which chunked decoding carries.
    """
    total = torch.cumsum(advance.double(), dim=-1)
    if start is not None:
        total = total + start.double()[..., None]
    return (torch.remainder(total + math.pi, 2 * math.pi) - math.pi).to(advance.dtype)


def num_samples_for(frames: int, hop_length: int) -> int:
    """Output length for ``frames`` centred frames (same rule as features.num_samples)."""
    return max(0, frames - 1) * hop_length


class ResBlock(nn.Module):
    """HiFi-GAN multi-receptive-field residual block (type 1: two convs per dilation)."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2)
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2)
            for _ in (dilations if kind == "1" else ())
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs1):
            y = conv(F.leaky_relu(x, 0.1))
            if self.kind == "1":
                y = self.convs2[i](F.leaky_relu(y, 0.1))
            x = x + y
        return x


class HiFiGANGenerator(nn.Module):
    """Transposed-conv upsampling with MRF residual blocks."""

    def __init__(self, config: VocoderConfig, mel: MelConfig) -> None:
        super().__init__()
        if math.prod(config.upsample_rates) != mel.hop_length:
            raise ValueError(
                f"HiFi-GAN upsample_rates {config.upsample_rates} multiply to "
                f"{math.prod(config.upsample_rates)}, but the mel hop_length is {mel.hop_length}"
            )
        ch = config.upsample_initial_channel
        self.pre = nn.Conv1d(mel.n_mels, ch, 7, padding=3)
        self.ups = nn.ModuleList()
        self.mrfs = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True)):
            out = ch // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(out * 2, out, kernel, rate, padding=(kernel - rate) // 2))
            self.mrfs.append(nn.ModuleList(
                ResBlock(out, k, d, config.resblock)
                for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilations, strict=True)
            ))
        self.post = nn.Conv1d(ch // 2 ** len(config.upsample_rates), 1, 7, padding=3)
        self.hop_length = mel.hop_length

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.pre(mel)
        for up, blocks in zip(self.ups, self.mrfs, strict=True):
            x = up(F.leaky_relu(x, 0.1))
            x = torch.stack([block(x) for block in cast(nn.ModuleList, blocks)]).mean(dim=0)
        x = torch.tanh(self.post(F.leaky_relu(x)))
        return x[:, 0, : num_samples_for(mel.shape[-1], self.hop_length)]


class Vocoder(nn.Module):
    """A mel-to-waveform generator built from a :class:`VocoderConfig` and a :class:`MelConfig`.

    Example:
        >>> voc = Vocoder(VocoderConfig.tiny(), MelConfig())
        >>> voc(torch.zeros(1, 80, 11)).shape
        torch.Size([1, 1600])
    """

    takes_mel = True

    def __init__(self, config: VocoderConfig, mel: MelConfig | None = None) -> None:
        super().__init__()
        if mel is None:
            raise ValueError("Vocoder needs the MelConfig it is trained on")
        self.config = config
        self.mel = mel
        cls = VocosGenerator if config.architecture == "vocos" else HiFiGANGenerator
        self.generator = cls(config, mel)

    def forward(self, mel: torch.Tensor, spectrum: bool = False, phase_iterations: int | None = None) -> Any:
        """mel: (B, M, F) log-mel; returns (B, T) waveform, T = num_samples(F, mel).

        ``phase_iterations``: the Vocos head's refinement (``VocoderConfig.phase_iterations``,
        the default when None); ignored with ``spectrum=True``.

        ``spectrum=True`` (training, vocos architecture only) returns ``(wav, log_mag, phase)``:
        the waveform and the head's STFT prediction, for the spectral losses. It is a forward
        argument, not a separate method, so a DistributedDataParallel wrapper sees the call.
        """
        if mel.dim() != 3 or mel.shape[1] != self.mel.n_mels:
            raise ValueError(f"expected mel of shape (B, {self.mel.n_mels}, F), got {tuple(mel.shape)}")
        if spectrum:
            if not isinstance(self.generator, VocosGenerator):
                raise ValueError("spectrum=True needs the vocos architecture's STFT head")
            log_mag, phase = self.generator.spectrum(mel)
            return self.generator.synthesize(log_mag, phase).clamp(-1.0, 1.0), log_mag, phase
        if isinstance(self.generator, VocosGenerator):
            wav = self.generator(mel, self.phase_iterations(phase_iterations))
        else:
            if phase_iterations:
                raise ValueError("phase_iterations needs the vocos architecture (an STFT head)")
            wav = self.generator(mel)
        assert wav.shape[-1] == num_samples(mel.shape[-1], self.mel)
        return wav.clamp(-1.0, 1.0)

    def phase_iterations(self, override: int | None = None) -> int:
        """The refinement iterations a call uses: ``override``, else the config's."""
        iterations = self.config.phase_iterations if override is None else override
        if iterations < 0:
            raise ValueError(f"phase_iterations must be >= 0, got {iterations}")
        return iterations

    def receptive_field(self, phase_iterations: int | None = None) -> int:
        """Frames of context each side that influence an output frame (for chunked decoding)."""
        cfg = self.config
        if cfg.architecture == "vocos":
            head = (cfg.num_layers + 1) * (cfg.kernel_size // 2) + cfg.head_n_fft // self.mel.hop_length + 1
            return head + context_frames(cfg.head_n_fft, self.mel.hop_length, self.phase_iterations(phase_iterations))
        per_stage = sum(
            sum(d * (k - 1) // 2 for d in dils) * (2 if cfg.resblock == "1" else 1)
            for k, dils in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilations, strict=True)
        )
        return 3 + 1 + per_stage // 2 + 4  # generous: later stages are finer than a frame
