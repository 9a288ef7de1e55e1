"""Structured pruning of a Vocos-architecture vocoder: the start of a smaller, faster student.

Keeps the ``--num-layers`` ConvNeXt blocks that contribute most (in their original order) and,
in each, the ``--intermediate-dim`` hidden channels that contribute most, and writes the result
as a checkpoint. The pruned model is close to the original but not equal; fine-tune it by
distillation from the original (``configs/cpu_distill_small.yaml``):

    python recipes/vocoder/prune.py --checkpoint vocoder --num-layers 6 --intermediate-dim 384 \
        --out runs/vocoder-pruned
    python recipes/vocoder/train.py --config recipes/vocoder/configs/cpu_distill_small.yaml \
        --run runs/vocoder-small-distill --init runs/vocoder-pruned

A hidden channel's contribution is the norm of its input weights times the norm of its
(layer-scaled) output weights; a block's is the sum over its channels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from voicefake.checkpoint import Checkpoint
from voicefake.config import run_recipe
from voicefake.vocoder.model import Vocoder, VocoderConfig


def channel_importance(state: dict[str, torch.Tensor], block: str) -> torch.Tensor:
    """(intermediate_dim,) contribution of each hidden channel of one ConvNeXt block."""
    w1 = state[f"{block}.pwconv1.weight"].float()  # (H, D)
    w2 = state[f"{block}.pwconv2.weight"].float()  # (D, H)
    gamma = state[f"{block}.gamma"].float()  # (D,)
    return w1.norm(dim=1) * (w2 * gamma[:, None]).norm(dim=0)


def prune(vocoder: Vocoder, num_layers: int, intermediate_dim: int) -> Vocoder:
    """A smaller Vocos vocoder initialised from ``vocoder``'s most important blocks and channels."""
    config = vocoder.config
    if config.architecture != "vocos":
        raise ValueError(f"pruning needs the vocos architecture, not {config.architecture!r}")
    if not 1 <= num_layers <= config.num_layers or not 1 <= intermediate_dim <= config.intermediate_dim:
        raise ValueError(f"prune to at most {config.num_layers} layers and {config.intermediate_dim} "
                         f"hidden channels, got {num_layers} and {intermediate_dim}")
    state = vocoder.state_dict()
    blocks = [f"generator.blocks.{i}" for i in range(config.num_layers)]
    score = torch.stack([channel_importance(state, b).sum() for b in blocks])
    keep = sorted(score.topk(num_layers).indices.tolist())
    small = Vocoder(config.replace(num_layers=num_layers, intermediate_dim=intermediate_dim), vocoder.mel)
    new = {k: v for k, v in state.items() if not k.startswith("generator.blocks.")}
    for target, source in enumerate(keep):
        old = blocks[source]
        channels = channel_importance(state, old).topk(intermediate_dim).indices.sort().values
        for name in ("dwconv.weight", "dwconv.bias", "norm.weight", "norm.bias", "gamma", "pwconv2.bias"):
            new[f"generator.blocks.{target}.{name}"] = state[f"{old}.{name}"]
        new[f"generator.blocks.{target}.pwconv1.weight"] = state[f"{old}.pwconv1.weight"][channels]
        new[f"generator.blocks.{target}.pwconv1.bias"] = state[f"{old}.pwconv1.bias"][channels]
        new[f"generator.blocks.{target}.pwconv2.weight"] = state[f"{old}.pwconv2.weight"][:, channels]
    small.load_state_dict(new)
    return small


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="vocoder", help="the vocoder to prune (default: bundled)")
    parser.add_argument("--num-layers", type=int, required=True)
    parser.add_argument("--intermediate-dim", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    checkpoint = Checkpoint.load(args.checkpoint)
    if checkpoint.kind != "vocoder":
        raise SystemExit(f"{args.checkpoint}: a {checkpoint.kind} checkpoint, not a vocoder")
    vocoder = checkpoint.build()
    assert isinstance(vocoder, Vocoder) and isinstance(vocoder.config, VocoderConfig)
    small = prune(vocoder, args.num_layers, args.intermediate_dim)
    metadata = {**checkpoint.metadata, "pruned_from": checkpoint.name,
                "lineage": f"{checkpoint.metadata.get('lineage', '')}; pruned to {args.num_layers} layers x "
                           f"{args.intermediate_dim} hidden channels (recipes/vocoder/prune.py)"}
    path = Checkpoint.from_module(small, "vocoder", vocoder.mel, metadata).save(args.out)
    params = sum(p.numel() for p in small.parameters())
    print(f"pruned {checkpoint.name}: {args.num_layers} layers x {args.intermediate_dim}, {params / 1e6:.2f} M parameters -> {path}")


if __name__ == "__main__":
    run_recipe(main)
