#!/usr/bin/env python3
"""Train the benchmark's peer: the U-Net a user would otherwise write.

A segmentation_models_pytorch ``Unet("resnet34", encoder_weights=None, classes=2)``
trained the plain way (eager fp32, NCHW, AdamW with cosine decay, no weight averaging)
on exactly the data vitiseg's default model saw: the same datasets, sampling shares,
train/validation split (``split.json`` of a vitiseg run), augmentation and masked
BCE + Dice loss, for the same wall-clock budget. The state_dict with the best validation
lesion Dice is written for ``scripts/benchmark.py --peer-weights``.

    .venv/bin/python scripts/train_peer.py --split-file RUN/split.json --minutes 45 \\
        --dataset DATA/vitiligo-web:0.7 --dataset DATA/skin-photos:0.3 --out PEER_DIR

segmentation_models_pytorch is needed for this script only (no pretrained weights are
downloaded: ``encoder_weights=None``).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import build_peer  # noqa: E402  (the same network the benchmark times)

from vitiseg.data.augment import AugmentSettings, training_transform
from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import load_split
from vitiseg.data.torch_dataset import IMAGENET_MEAN, IMAGENET_STD, SegmentationDataset, load_case
from vitiseg.training.loss import masked_bce_dice
from vitiseg.training.settings import DatasetSpec, TrainSettings
from vitiseg.training.trainer import _epoch_draws, _learning_rate, validate


def parse_dataset(text: str) -> DatasetSpec:
    path, _, weight = text.partition(":")
    return DatasetSpec(Path(path).resolve(), float(weight or 1.0), Path(path).name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=parse_dataset, action="append", required=True)
    parser.add_argument("--split-file", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=45.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--samples-per-epoch", type=int, default=256)
    parser.add_argument("--long-side", type=int, default=448)
    parser.add_argument("--crop", type=int, default=288)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    split = load_split(args.split_file)
    train_cases, val_cases = [], {}
    for spec in args.dataset:
        by_id = {c.case_id: c for c in load_dataset(spec.path)}
        train_cases += [
            load_case(by_id[i], spec.label, args.long_side) for i in split[spec.label]["train"]
        ]
        val_ids = split[spec.label]["val"][:80]
        val_cases[spec.label] = [load_case(by_id[i], spec.label, args.long_side) for i in val_ids]
    # The same cosine schedule as vitiseg's trainer, without warm-up.
    settings = TrainSettings(
        samples_per_epoch=args.samples_per_epoch, seed=args.seed, lr=args.lr, warmup_steps=0
    )
    dataset = SegmentationDataset(
        train_cases,
        training_transform(AugmentSettings(crop=args.crop)),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        seed=args.seed,
    )
    model = build_peer()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    select = args.dataset[0].label
    budget = args.minutes * 60
    started, epoch, step, best, rows = time.monotonic(), 0, 0, -math.inf, []
    while time.monotonic() - started < budget:
        draws = _epoch_draws(
            train_cases, args.dataset, settings.seed, epoch, settings.samples_per_epoch
        )
        dataset.set_epoch(epoch, draws)
        loader = DataLoader(dataset, batch_size=args.batch_size, drop_last=True)
        losses = []
        model.train()
        for batch in loader:
            progress = min((time.monotonic() - started) / budget, 1.0)
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(settings, step, progress)
            step += 1
            logits = model(batch["image"])
            loss, _ = masked_bce_dice(logits, batch["targets"], batch["valid"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
        epoch += 1
        results = validate(model, val_cases, torch.device("cpu"), IMAGENET_MEAN, IMAGENET_STD)
        dice = results[select].get("lesion", {}).get("dice", math.nan)
        minutes = (time.monotonic() - started) / 60
        rows.append(
            {
                "epoch": epoch,
                "minutes": round(minutes, 2),
                "loss": np.mean(losses),
                "val_lesion_dice": dice,
            }
        )
        print(
            f"epoch {epoch}  loss {np.mean(losses):.4f}  "
            f"val {select} lesion Dice {dice:.4f}  ({minutes:.1f} min)",
            flush=True,
        )
        if dice > best:
            best = dice
            torch.save(model.state_dict(), args.out / "peer.pt")
        with open(args.out / "metrics.csv", "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    print(f"best val lesion Dice {best:.4f} after {epoch} epochs; weights: {args.out / 'peer.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
