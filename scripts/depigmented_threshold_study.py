#!/usr/bin/env python3
"""Which depigmented threshold gets the affected fraction right? Chosen on training-side photos.

VASI levels come from the depigmented share of each patch, so the threshold of a
three-output model's depigmented output is chosen by the error of the affected fraction
(depigmented share of skin), not by Dice. The model runs once over the first ``--limit``
photos (sorted by case id) of each dataset, restricted to ``--part`` of the split file for
datasets the file names; every threshold is then scored from the same probabilities.
Use training-side photos only (for example painted photos made from training skin photos,
and training skin photos without vitiligo, whose truth is 0), so the guard sets stay unseen.
With ``--seeds S1 S2 ...`` the threshold stays the model's and each S is tried as a
hysteresis seed instead: a depigmented patch is kept only if it holds a pixel at or above S.

    python scripts/depigmented_threshold_study.py --checkpoint RUN/model \\
        --dataset DATA/both/painted-train-split --dataset DATA/skin-photos \\
        --split-file RUN/split.json --part train --limit 120 [--json OUT.json]

Ship the chosen value with ``scripts/ship_default_model.py --depigmented-threshold T``
(or ``--depigmented-seed S``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import load_split
from vitiseg.evaluation.calibration import affected_fraction_errors, least_error_threshold
from vitiseg.evaluation.evaluate import affected_fraction, read_truth, true_affected_fraction
from vitiseg.inference.predictor import Predictor
from vitiseg.io.images import read_rgb

THRESHOLDS = tuple(round(0.5 + 0.05 * step, 2) for step in range(7))  # 0.50 ... 0.80


def chosen_cases(dataset: str, split: dict | None, part: str, limit: int) -> list:
    cases = sorted(load_dataset(dataset), key=lambda case: case.case_id)
    if split is not None and Path(dataset).name in split:
        keep = set(split[Path(dataset).name][part])
        cases = [case for case in cases if case.case_id in keep]
    return cases[:limit] if limit else cases


def affected_fractions(
    predictor: Predictor, cases, settings: dict[float, dict]
) -> tuple[list[float], dict[float, list]]:
    """True fractions and, per setting (thresholds entries by value tried), predicted ones
    (photos without truth skipped)."""
    truths: list[float] = []
    predicted: dict[float, list[float]] = {value: [] for value in settings}
    for case in cases:
        truth = true_affected_fraction(read_truth(case))
        if truth is None:
            continue
        rgb = read_rgb(case.image_path)
        prediction = predictor.predict(rgb)
        skin, lesion = predictor.masks(prediction, rgb)
        truths.append(truth)
        for value, thresholds in settings.items():
            predictor.metadata.thresholds.update(thresholds)
            depigmented = predictor.depigmented_mask(prediction, lesion, rgb, skin)
            predicted[value].append(affected_fraction(depigmented, skin))
    return truths, predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", action="append", required=True)
    parser.add_argument("--split-file", default=None)
    parser.add_argument("--part", default="train", choices=("train", "val"))
    parser.add_argument("--limit", type=int, default=0, help="first N photos of each dataset")
    parser.add_argument("--seeds", type=float, nargs="+", help="hysteresis seeds to try")
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args()

    predictor = Predictor.from_folder(args.checkpoint)
    if predictor.metadata.output_names[-1] != "depigmented":
        sys.exit(f"{args.checkpoint}: the model has no depigmented output")
    split = load_split(args.split_file) if args.split_file else None
    model_threshold = predictor.metadata.thresholds.get("depigmented", 0.5)
    if args.seeds:
        tried, kind = [model_threshold, *args.seeds], "hysteresis seed"
        settings = {s: {"depigmented_seed": None if s == model_threshold else s} for s in tried}
    else:
        tried, kind = THRESHOLDS, "threshold"
        settings = {t: {"depigmented": t, "depigmented_seed": None} for t in THRESHOLDS}
    all_truths: list[float] = []
    all_predicted: dict[float, list[float]] = {value: [] for value in settings}
    tables = {}
    for dataset in args.dataset:
        truths, predicted = affected_fractions(
            predictor, chosen_cases(dataset, split, args.part, args.limit), settings
        )
        if not truths:
            sys.exit(f"{dataset}: no photos with skin and lesion or depigmented masks")
        tables[Path(dataset).name] = affected_fraction_errors(truths, predicted)
        all_truths += truths
        for value in settings:
            all_predicted[value] += predicted[value]
        print(f"{dataset}: {len(truths)} photos")
    tables["all"] = affected_fraction_errors(all_truths, all_predicted)
    chosen = least_error_threshold(tables["all"])
    names = list(tables)
    print(f"| {kind} | " + " | ".join(f"{n}: MAE (bias), pp" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for threshold in tried:
        cells = [
            f"{100 * tables[n][threshold]['mae']:.2f} ({100 * tables[n][threshold]['bias']:+.2f})"
            for n in names
        ]
        mark = " (chosen)" if threshold == chosen else ""
        print(f"| {threshold:.2f}{mark} | " + " | ".join(cells) + " |")
    print(f"chosen depigmented {kind}: {chosen:.2f}")
    if args.json:
        record = {
            "kind": kind,
            "chosen": chosen,
            "tables": {n: {str(t): v for t, v in table.items()} for n, table in tables.items()},
        }
        Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
