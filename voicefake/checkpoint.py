"""The one checkpoint format for every model kind.

A checkpoint is a directory::

    my-vocoder/
      config.json          # format_version, kind, voicefake_version, model, mel, metadata
      model.safetensors    # the state dict only (no pickle anywhere)

The mapping from ``kind`` to ``(ConfigClass, ModelClass)`` is written in code (:data:`KINDS`),
never read from the file, so moving code never breaks old checkpoints. Loading is strict:
unknown config keys, missing or unexpected weights and an unsupported format version raise
:class:`CheckpointError` naming the file and the key.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from voicefake import __version__
from voicefake.audio.features import MelConfig
from voicefake.config import ConfigError, from_dict, to_dict

FORMAT_VERSION = 1

# kind -> (module, config class, model class). Imported lazily so that loading one kind
# never imports the others. A kind is added when its capability ships learned weights
# (lip-sync and the watermark are DSP today).
KINDS: dict[str, tuple[str, str, str]] = {
    "speaker": ("voicefake.speaker.model", "SpeakerEncoderConfig", "SpeakerEncoder"),
    "vocoder": ("voicefake.vocoder.model", "VocoderConfig", "Vocoder"),
    "detection": ("voicefake.detection.model", "DetectorConfig", "Detector"),
    "content": ("voicefake.conversion.model", "ContentEncoderConfig", "ContentEncoder"),
    "conversion": ("voicefake.conversion.model", "DecoderConfig", "ConversionDecoder"),
    "voice": ("voicefake.conversion.voice", "VoiceConfig", "VoiceProfile"),
}

BUNDLED_DIR = Path(__file__).parent / "models"
# name -> folder under voicefake/models/. These ship inside the package and work offline.
BUNDLED: dict[str, str] = {
    "speaker": "speaker-16k",
    "vocoder": "vocoder-16k",
    "detection": "detector-16k",
    "content": "content-16k",
    "conversion": "conversion-16k",  # the decoder api.convert uses for a voice known only by its embedding
    "conversion-ref": "conversion-ref-16k",  # the decoder api.convert uses for recorded speech (reads reference frames)
    "conversion-call": "conversion-call-16k",  # ... when those frames come from a call (narrowband reference)
    "conversion-espeak": "conversion-espeak-16k",  # the decoder api.clone uses for espeak-ng's speech
    "conversion-flite": "conversion-flite-16k",  # the decoder api.clone uses for flite's speech
    "conversion-adapt": "conversion-adapt-16k",  # the decoder api.finetune_voice adapts to one voice
}


class CheckpointError(ValueError):
    """A checkpoint directory is missing, malformed or incompatible."""


def model_classes(kind: str) -> tuple[type, type[nn.Module]]:
    """Returns ``(ConfigClass, ModelClass)`` registered for ``kind``."""
    if kind not in KINDS:
        raise CheckpointError(f"unknown checkpoint kind {kind!r}; known: {sorted(KINDS)}")
    module_name, config_name, model_name = KINDS[kind]
    module = importlib.import_module(module_name)
    return getattr(module, config_name), getattr(module, model_name)


def unwrap(module: nn.Module) -> nn.Module:
    """Strips DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if hasattr(module, "_orig_mod"):
            module = module._orig_mod  # type: ignore[assignment]  # torch.compile
        elif isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            module = module.module
        else:
            return module


def resolve(path_or_name: str | os.PathLike[str]) -> Path:
    """A bundled model name (``"vocoder"``) or a checkpoint directory -> its directory.

    A bare bundled name always means the bundled model, even if the working directory holds a
    folder of that name (an output folder called ``detection`` must not shadow the detector);
    write ``./detection`` for such a folder.
    """
    text = str(path_or_name)
    if isinstance(path_or_name, str) and text in BUNDLED:
        return BUNDLED_DIR / BUNDLED[text]
    return Path(path_or_name)


@dataclass
class Checkpoint:
    """An in-memory checkpoint: config plus weights.

    Attributes:
        kind: one of :data:`KINDS`.
        model: the model dataclass as a plain dict.
        mel: the :class:`MelConfig` as a dict, or None for models without audio features.
        metadata: free-form JSON (training step, data summary, metrics, licence, notes).
        state_dict: tensor name -> tensor.
    """

    kind: str
    model: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    mel: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    voicefake_version: str = __version__
    source: Path | None = field(default=None, compare=False, repr=False)
    """The directory it was loaded from (for error messages), or None."""

    @property
    def model_config(self) -> Any:
        """The model config dataclass (strictly parsed)."""
        config_cls, _ = model_classes(self.kind)
        return from_dict(config_cls, self.model, "model")

    @property
    def mel_config(self) -> MelConfig | None:
        """The mel config the model was trained with, or None."""
        return None if self.mel is None else from_dict(MelConfig, self.mel, "mel")

    @property
    def name(self) -> str:
        """``<name>@<version>`` for reports, from metadata (falls back to the kind)."""
        meta = self.metadata
        return f"{meta.get('name', self.kind)}@{meta.get('version', self.voicefake_version)}"

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        kind: str,
        mel: MelConfig | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Checkpoint:
        """Captures ``module`` (which must have a dataclass ``.config``) as a checkpoint."""
        module = unwrap(module)
        config_cls, model_cls = model_classes(kind)
        if not isinstance(module, model_cls):
            raise CheckpointError(f"kind {kind!r} expects {model_cls.__name__}, got {type(module).__name__}")
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        return cls(
            kind=kind,
            model=to_dict(module.config),
            mel=None if mel is None else to_dict(mel),
            metadata=dict(metadata or {}),
            state_dict=state,
        )

    def build(self, device: str | torch.device = "cpu") -> nn.Module:
        """Rebuilds the module, loads the weights strictly and moves it to ``device``."""
        _, model_cls = model_classes(self.kind)
        config = self.model_config
        module = model_cls(config, self.mel_config) if _takes_mel(model_cls) else model_cls(config)
        expected = module.state_dict()
        missing = sorted(set(expected) - set(self.state_dict))
        unexpected = sorted(set(self.state_dict) - set(expected))
        where = self.source / "model.safetensors" if self.source else f"{self.kind} checkpoint"
        if missing or unexpected:
            raise CheckpointError(
                f"{where}: weights do not match the model: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        for key, tensor in self.state_dict.items():
            if tensor.shape != expected[key].shape:
                raise CheckpointError(
                    f"{where}: weight {key!r} has shape {tuple(tensor.shape)}, "
                    f"model expects {tuple(expected[key].shape)}"
                )
        cast = {k: v.to(expected[k].dtype) for k, v in self.state_dict.items()}
        module.load_state_dict(cast, strict=True)
        return module.to(device)

    def save(self, path: str | os.PathLike[str], half: bool = False) -> Path:
        """Writes the directory atomically (a temporary sibling, then a rename).

        Args:
            path: target directory; replaced if it exists (other files in it, such as a
                MODEL_CARD.md, are kept).
            half: store floating weights as float16 (release checkpoints; loads as float32).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            state = {
                k: (v.half() if half and v.is_floating_point() else v).contiguous()
                for k, v in self.state_dict.items()
            }
            save_file(state, str(tmp / "model.safetensors"))
            (tmp / "config.json").write_text(json.dumps(self._header(), indent=2) + "\n")
            # mkdtemp makes 0700 folders; a checkpoint shipped in a package must be readable
            os.chmod(tmp, 0o755)
            for child in tmp.iterdir():
                os.chmod(child, 0o644)
            if path.exists():
                for extra in path.iterdir():  # keep what lives beside the weights (MODEL_CARD.md)
                    if extra.is_file() and extra.name not in ("config.json", "model.safetensors"):
                        shutil.copy2(extra, tmp / extra.name)
                        os.chmod(tmp / extra.name, 0o644)
                old = path.with_name(path.name + ".old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    def _header(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "kind": self.kind,
            "voicefake_version": self.voicefake_version,
            "model": self.model,
            "mel": self.mel,
            "metadata": self.metadata,
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Reads a checkpoint directory (or a bundled name such as ``"vocoder"``) strictly."""
        path = resolve(path)
        config_path, weights_path = path / "config.json", path / "model.safetensors"
        if not path.is_dir():
            raise CheckpointError(f"{path}: not a checkpoint directory (expected config.json + model.safetensors)")
        for needed in (config_path, weights_path):
            if not needed.is_file():
                raise CheckpointError(f"{path}: missing {needed.name}")
        try:
            header = json.loads(config_path.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{config_path}: invalid JSON ({err})") from err
        return cls(
            **_check_header(header, config_path), state_dict=_read_weights(weights_path), source=path
        )


def _check_header(header: Any, where: Path) -> dict[str, Any]:
    allowed = {"format_version", "kind", "voicefake_version", "model", "mel", "metadata"}
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}: expected a JSON object")
    unknown = sorted(set(header) - allowed)
    if unknown:
        raise CheckpointError(f"{where}: unknown key(s) {unknown}")
    for key in ("format_version", "kind", "model"):
        if key not in header:
            raise CheckpointError(f"{where}: missing key {key!r}")
    if header["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: format_version {header['format_version']!r} is not supported "
            f"(this voicefake reads {FORMAT_VERSION}); upgrade voicefake or re-export"
        )
    if header["kind"] not in KINDS:
        raise CheckpointError(f"{where}: unknown kind {header['kind']!r}; known: {sorted(KINDS)}")
    config_cls, _ = model_classes(header["kind"])
    try:
        from_dict(config_cls, header["model"], "model")
        if header.get("mel") is not None:
            from_dict(MelConfig, header["mel"], "mel")
    except ConfigError as err:
        raise CheckpointError(f"{where}: {err}") from err
    return {
        "kind": header["kind"],
        "model": header["model"],
        "mel": header.get("mel"),
        "metadata": header.get("metadata") or {},
        "format_version": header["format_version"],
        "voicefake_version": header.get("voicefake_version", "unknown"),
    }


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own SafetensorError type
        raise CheckpointError(f"{path}: unreadable safetensors file ({err})") from err


def _takes_mel(model_cls: type) -> bool:
    return bool(getattr(model_cls, "takes_mel", False))


def check_same_mel(a: Checkpoint, b: Checkpoint) -> None:
    """Raises if two chained checkpoints (e.g. synthesiser -> vocoder) disagree on the mel."""
    if a.mel != b.mel:
        diff = sorted(
            k for k in set(a.mel or {}) | set(b.mel or {})
            if (a.mel or {}).get(k) != (b.mel or {}).get(k)
        )
        raise CheckpointError(
            f"mel configs differ between the {a.kind} and {b.kind} checkpoints in {diff}; "
            "chain only models trained on the same MelConfig"
        )


def average_checkpoints(checkpoints: list[Checkpoint]) -> Checkpoint:
    """The element-wise mean of several checkpoints of one model (a "model soup").

    Meant for runs fine-tuned from the same initial weights (for example with different
    seeds), whose weights stay close enough to be averaged. Floating tensors, batch-norm
    running statistics included, are averaged in float32 and kept in the first checkpoint's
    dtype; integer tensors (batch-norm counters) must be equal. The metadata is the first
    checkpoint's, with ``averaged_from`` naming the inputs.

    Raises:
        CheckpointError: fewer than two checkpoints, or they differ in kind, model config,
            mel config, tensor names, shapes or integer tensors.
    """
    if len(checkpoints) < 2:
        raise CheckpointError("averaging needs at least two checkpoints")
    first = checkpoints[0]
    for other in checkpoints[1:]:
        where = other.source or other.name
        # compared as configs, so a checkpoint saved before a config gained a defaulted option
        # still matches one saved after it
        if other.kind != first.kind or (other.model_config, other.mel_config) != (first.model_config, first.mel_config):
            raise CheckpointError(f"{where}: kind, model or mel config differs from the first checkpoint's; "
                                  "average only runs of the same model")
        if set(other.state_dict) != set(first.state_dict):
            raise CheckpointError(f"{where}: tensor names differ from the first checkpoint's")
    state: dict[str, torch.Tensor] = {}
    for key, tensor in first.state_dict.items():
        tensors = [c.state_dict[key] for c in checkpoints]
        if any(t.shape != tensor.shape for t in tensors):
            raise CheckpointError(f"tensor {key!r} has different shapes: {[tuple(t.shape) for t in tensors]}")
        if tensor.is_floating_point():
            state[key] = torch.stack([t.float() for t in tensors]).mean(0).to(tensor.dtype)
        elif all(torch.equal(t, tensor) for t in tensors[1:]):
            state[key] = tensor.clone()
        else:
            raise CheckpointError(f"integer tensor {key!r} differs between the checkpoints; cannot average it")
    metadata = dict(first.metadata)
    metadata["averaged_from"] = [str(c.source) if c.source else c.name for c in checkpoints]
    return Checkpoint(kind=first.kind, model=first.model, mel=first.mel, metadata=metadata, state_dict=state)
