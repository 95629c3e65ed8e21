"""Pretrain the ResNet-18 encoder on unlabelled photos by masked-image inpainting.

    python scripts/pretrain_masked.py --dataset DATA/vitiligo-web --dataset DATA/skin-photos \
        --split-file runs/split.json --minutes 30 --out runs/ssl
    vitiseg-train ... model.kwargs.encoder_weights=runs/ssl/encoder.pt

Only the training-split photos are read (labels unused), so the validation photos stay
unseen. Writes OUT/encoder.pt (a torchvision state_dict, loaded with weights_only=True),
OUT/last.pt (resumed when present) and OUT/summary.json, with the inpainting error on the
validation photos against filling every blank with the mean.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from vitiseg.data.augment import AugmentSettings, training_transform
from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import load_split
from vitiseg.data.torch_dataset import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SegmentationDataset,
    load_case,
    normalise,
)
from vitiseg.io.atomic import write_json_atomic
from vitiseg.models.unet import build_model
from vitiseg.training.masked_pretraining import (
    PretrainSettings,
    mean_filled_error,
    pretrain,
    reconstruction_error,
)

LONG_SIDE = 448  # the working size of the shipped recipe


def _cases(datasets: list[Path], split_file: Path, part: str) -> list:
    split = load_split(split_file)
    loaded = []
    for root in datasets:
        if root.name not in split:
            raise SystemExit(f"{split_file}: no split for dataset {root.name!r}")
        wanted = set(split[root.name][part])
        loaded += [
            load_case(case, root.name, LONG_SIDE)
            for case in load_dataset(root)
            if case.case_id in wanted
        ]
    return loaded


def _validation_batch(cases: list, size: int, limit: int) -> torch.Tensor:
    """Centre crops of up to ``limit`` validation photos, normalised as in training."""
    crops = []
    for case in cases:
        if len(crops) == limit:
            break
        height, width = case.image.shape[:2]
        top, left = (height - size) // 2, (width - size) // 2
        if top >= 0 and left >= 0:
            crop = case.image[top : top + size, left : left + size]
            crops.append(normalise(crop, IMAGENET_MEAN, IMAGENET_STD))
    return torch.stack(crops)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, action="append", required=True)
    parser.add_argument("--split-file", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=288)
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train_cases = _cases(args.dataset, args.split_file, "train")
    val_cases = _cases(args.dataset, args.split_file, "val")
    print(f"{len(train_cases)} training photos, {len(val_cases)} validation photos")
    augment = AugmentSettings(crop=args.crop, colour=0.3)
    dataset = SegmentationDataset(train_cases, training_transform(augment), seed=args.seed)
    # Fresh draws every pass: the dataset's random stream is keyed by epoch.
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)
    model = build_model("resnet_unet", encoder="resnet18", out_channels=3)
    settings = PretrainSettings(
        minutes=args.minutes,
        max_steps=args.max_steps,
        lr=args.lr,
        block=args.block,
        ratio=args.ratio,
        seed=args.seed,
    )
    result = pretrain(model, loader, settings, args.out)
    images = _validation_batch(val_cases, args.crop, limit=64)
    result |= {
        "validation_photos": len(images),
        "validation_masked_l1": reconstruction_error(model, images, args.block, args.ratio),
        "validation_masked_l1_mean_fill": mean_filled_error(images, args.block, args.ratio),
        "datasets": [str(path) for path in args.dataset],
        "split_file": str(args.split_file),
        "settings": vars(settings),
    }
    write_json_atomic(args.out / "summary.json", result)
    print({k: v for k, v in result.items() if k != "settings"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
