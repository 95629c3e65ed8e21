#!/usr/bin/env python3
"""Seconds per training step of a model folder's architecture, by memory layout and compiler.

    python scripts/train_step_benchmark.py [--checkpoint models/default] \
        [--modes channels_last,nchw,compile] [--steps 6] [--threads 2]

Random weights, random batches (the trainer's batch size and crop by default), the
trainer's loss and optimiser: only the network's forward and backward pass is timed, not
augmentation. Prints the first step (where `torch.compile` compiles) and the median of the
steps after it. Decides trainer settings such as `trainer.channels_last` on a given CPU
(docs/performance.md, "On a CPU without AVX-512").
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from vitiseg.models.metadata import load_metadata
from vitiseg.models.unet import build_model
from vitiseg.training.loss import masked_bce_dice

MODES = ("channels_last", "nchw", "compile")


def time_steps(
    arch: str, model_kwargs: dict, mode: str, steps: int, batch: int, crop: int
) -> tuple[float, float]:
    """(first step, median later step) in seconds for one mode."""
    torch.manual_seed(0)
    layout = torch.contiguous_format if mode == "nchw" else torch.channels_last
    model = build_model(arch, **model_kwargs).to(memory_format=layout).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    network = torch.compile(model) if mode == "compile" else model
    images = torch.randn(batch, 3, crop, crop).contiguous(memory_format=layout)
    outputs = int(model_kwargs.get("out_channels", 2))
    targets = (torch.rand(batch, outputs, crop, crop) > 0.7).float()
    valid = torch.ones_like(targets)

    def step() -> float:
        started = time.perf_counter()
        loss, _ = masked_bce_dice(
            network(images).float(), targets, valid, output_weights=(1.0,) * outputs
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - started

    first = step()
    return first, statistics.median(step() for _ in range(steps))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("models/default"))
    parser.add_argument("--modes", default="channels_last,nchw")
    parser.add_argument("--steps", type=int, default=6, help="timed steps after the first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=288)
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    torch.set_num_threads(args.threads)
    metadata = load_metadata(args.checkpoint)
    print(
        f"{metadata.arch} from {args.checkpoint}, batch {args.batch_size} x {args.crop} px, "
        f"{args.threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    for mode in modes:
        first, median = time_steps(
            metadata.arch, metadata.model_kwargs, mode, args.steps, args.batch_size, args.crop
        )
        print(f"{mode:>14}: first step {first:6.2f} s, then {median:6.3f} s per step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
