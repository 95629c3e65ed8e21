#!/usr/bin/env python3
"""Which skin threshold and clean-up suit a model? Chosen on train, reported on val.

The skin mask is the denominator of every affected fraction. This study runs a model once
over a dataset's train and val photos that have skin masks, then scores every combination
of skin threshold and clean-up (small skin islands dropped, holes filled) against the
labels. The lesion mask is the model's own (its threshold and clean-up) and is always
counted as skin, as in scoring. The setting is picked by mean skin Dice on the TRAIN photos
only, so the val figure it prints is not tuned on val.

    python scripts/skin_threshold_study.py --checkpoint models/default \
        --dataset DATA/skin-photos --split-file RUN/split.json [--json OUT.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import load_split
from vitiseg.evaluation.calibration import train_val_table
from vitiseg.inference.postprocess import LesionPostprocess, clean_lesion_mask
from vitiseg.inference.predictor import Predictor
from vitiseg.io.images import read_mask, read_rgb
from vitiseg.metrics.segmentation import score_masks

THRESHOLDS = tuple(round(0.3 + 0.1 * step, 1) for step in range(7))  # 0.3 ... 0.9
MIN_AREA_FRACTIONS = (0.0, 0.001, 0.005)
FILL_HOLES = (False, True)


def skin_dice_by_setting(predictor: Predictor, cases, settings) -> np.ndarray:
    """(cases, settings) skin Dice of every photo under every (threshold, min_area_fraction,
    fill_holes) setting."""
    rows = []
    for case in cases:
        rgb = read_rgb(case.image_path)
        truth = read_mask(case.mask_path("skin"))
        prediction = predictor.predict(rgb)
        _, lesion = predictor.masks(prediction, rgb)
        row = []
        for threshold, min_area, fill in settings:
            # The lesion clean-up steps double as skin clean-up: both act on a bool mask.
            cleaning = LesionPostprocess(min_area_fraction=min_area, fill_holes=fill)
            skin = clean_lesion_mask(prediction.skin >= threshold, cleaning) | lesion
            row.append(score_masks(skin, truth, with_hd95=False).dice)
        rows.append(row)
    return np.asarray(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split-file", required=True)
    parser.add_argument("--json", help="also write every setting's scores here")
    args = parser.parse_args()

    cases = {c.case_id: c for c in load_dataset(args.dataset) if c.mask_path("skin")}
    folds = load_split(args.split_file)[Path(args.dataset).name]
    predictor = Predictor.from_folder(args.checkpoint)
    model_threshold = predictor.metadata.thresholds.get("skin", 0.5)
    thresholds = sorted({*THRESHOLDS, model_threshold})  # the model's own is always a row
    settings = list(itertools.product(thresholds, MIN_AREA_FRACTIONS, FILL_HOLES))
    dice = {
        fold: skin_dice_by_setting(
            predictor, [cases[i] for i in folds[fold] if i in cases], settings
        )
        for fold in ("train", "val")
    }
    print(f"{len(dice['train'])} train, {len(dice['val'])} val photos")
    rows = [
        {
            "threshold": threshold,
            "min_area_fraction": min_area,
            "fill_holes": fill,
            "train_dice": float(dice["train"][:, index].mean()),
            "val_dice": float(dice["val"][:, index].mean()),
        }
        for index, (threshold, min_area, fill) in enumerate(settings)
    ]
    current = next(
        r
        for r in rows
        if r["threshold"] == model_threshold and not r["min_area_fraction"] and not r["fill_holes"]
    )
    best_threshold = max(
        (r for r in rows if not r["min_area_fraction"] and not r["fill_holes"]),
        key=lambda r: r["train_dice"],
    )
    best = max(rows, key=lambda r: r["train_dice"])
    table = [
        ("the model's now", current),
        ("best threshold, no clean-up", best_threshold),
        ("best on train", best),
    ]
    print(train_val_table(table, "skin Dice"))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
