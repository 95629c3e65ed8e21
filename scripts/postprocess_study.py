#!/usr/bin/env python3
"""Which lesion threshold and mask clean-up suit a model? Chosen on train, reported on val.

The real lesion labels are coarse hand-drawn polygons: filled, smooth, without the specks
and pinholes a pixel classifier produces. This study runs a model once over a dataset's
train and val cases (optionally with flip TTA), then scores every combination of lesion
threshold and morphological clean-up (closing, hole filling, removal of small components)
against the labels. The setting is picked on the TRAIN cases only, so the val figure it
prints is not tuned on val.

    python scripts/postprocess_study.py --checkpoint RUN/model --dataset DATA/vitiligo-web \
        --split-file RUN/split.json [--tta] [--scales 0.75 1.0 1.25]
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
from vitiseg.inference.postprocess import LesionPostprocess, lesion_mask
from vitiseg.inference.predictor import Predictor
from vitiseg.io.images import read_mask, read_rgb
from vitiseg.metrics.segmentation import score_masks

THRESHOLDS = (0.3, 0.4, 0.5, 0.6)
SKIN_GATES = (0.0, 0.1, 0.3, 0.5)
CLOSE_FRACTIONS = (0.0, 0.01, 0.02, 0.04)
MIN_AREA_FRACTIONS = (0.0, 0.0005, 0.002)
FILL_HOLES = (False, True)
CLEAN_UP_FIELDS = ("skin_gate", "close_fraction", "min_area_fraction", "fill_holes")


def predictions(predictor: Predictor, cases) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for case in cases:
        prediction = predictor.predict(read_rgb(case.image_path))
        out.append((prediction.lesion, prediction.skin, read_mask(case.mask_path("lesion"))))
    return out


def mean_dice(pairs, setting: LesionPostprocess, threshold: float) -> float:
    scores = [
        score_masks(lesion_mask(lesion, skin, threshold, setting), truth, with_hd95=False).dice
        for lesion, skin, truth in pairs
    ]
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split-file", required=True)
    parser.add_argument("--tta", action="store_true")
    parser.add_argument(
        "--scales", type=float, nargs="+", default=[1.0], help="sizes to average over"
    )
    parser.add_argument("--json", help="also write every setting's scores here")
    args = parser.parse_args()

    cases = {c.case_id: c for c in load_dataset(args.dataset) if c.mask_path("lesion")}
    split = load_split(args.split_file)
    folds = split[Path(args.dataset).name]  # split.json is keyed by dataset folder name
    predictor = Predictor.from_folder(args.checkpoint, tta=args.tta, scales=tuple(args.scales))
    pairs = {
        fold: predictions(predictor, [cases[i] for i in folds[fold] if i in cases])
        for fold in ("train", "val")
    }
    print(
        f"{len(pairs['train'])} train, {len(pairs['val'])} val cases; "
        f"tta={args.tta}, scales={args.scales}"
    )
    rows = []
    for threshold, gate, close, min_area, fill in itertools.product(
        THRESHOLDS, SKIN_GATES, CLOSE_FRACTIONS, MIN_AREA_FRACTIONS, FILL_HOLES
    ):
        setting = LesionPostprocess(
            skin_gate=gate, close_fraction=close, min_area_fraction=min_area, fill_holes=fill
        )
        rows.append(
            {
                "threshold": threshold,
                **setting.to_dict(),
                "train_dice": mean_dice(pairs["train"], setting, threshold),
                "val_dice": mean_dice(pairs["val"], setting, threshold),
            }
        )

    def best_where(keep) -> dict:
        return max((r for r in rows if keep(r)), key=lambda r: r["train_dice"])

    def only(field: str):
        # threshold 0.5 and every clean-up step off except ``field``
        return lambda r: (
            r["threshold"] == 0.5 and all(not r[name] for name in CLEAN_UP_FIELDS if name != field)
        )

    table = [("threshold 0.5, no clean-up", best_where(only("")))]
    table += [(f"threshold 0.5, {name} only", best_where(only(name))) for name in CLEAN_UP_FIELDS]
    table.append(("best on train", best_where(lambda r: True)))
    print(train_val_table(table))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
