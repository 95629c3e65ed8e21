#!/usr/bin/env python3
"""Does a model call lesion where a photo was edited inside a box?

More than half of the `vitiligo-web` photos carry box-level edits: rectangles around the
annotated lesions brightened, darkened or flipped by the export tool (Roboflow's
bounding-box augmentations), so a rectangle of altered skin marks a lesion in the training
labels. A model that learned that shortcut would call lesion wherever a rectangle looks
edited. This probe edits one box of healthy skin on each photo without vitiligo, with each
edit in turn, and measures the share of the box the model then calls lesion (lesion mask
as scoring makes it), paired with the same photo unedited:

- ``brighter`` (x1.3) against ``brighter_blob``, the same gain in a feathered ellipse in
  the box: a lighter patch with and without straight edges (the ellipse covers pi/4 of the
  box, so equal reliance on brightness alone gives the blob about 0.79 of the box's share);
- ``darker`` (x0.75): no vitiligo cue but the edges;
- ``blur`` and ``flip`` (the box's content turned 180 degrees): edges and texture only.

    python scripts/box_edit_probe.py --checkpoint models/default --dataset DATA/skin-photos \
        [--split-file RUN/split.json --part val] [--out probe.json]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from vitiseg.data.box_edits import Box, blend, box_weight, pick_box
from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import load_split
from vitiseg.inference.predictor import Predictor
from vitiseg.io.atomic import write_json_atomic
from vitiseg.io.images import read_mask, read_rgb
from vitiseg.metrics.confidence import patient_bootstrap_ci

EDITS = ("brighter", "brighter_blob", "darker", "blur", "flip")
BRIGHTER_GAIN = 1.3
DARKER_GAIN = 0.75
BLUR_SIGMA_PX = 2.0


def edit_photo(rgb: np.ndarray, box: Box, edit: str) -> np.ndarray:
    """A copy of ``rgb`` (H, W, 3) uint8 with ``edit`` applied in ``box``; the input is kept."""
    if edit not in EDITS:
        raise ValueError(f"edit must be one of {EDITS}, not {edit!r}")
    photo = rgb.astype(np.float32)
    if edit in ("brighter", "brighter_blob"):
        edited = photo * BRIGHTER_GAIN
    elif edit == "darker":
        edited = photo * DARKER_GAIN
    elif edit == "blur":
        edited = cv2.GaussianBlur(photo, (0, 0), BLUR_SIGMA_PX)
    else:
        edited = photo.copy()
        box.view(edited)[:] = box.view(photo)[::-1, ::-1]
    return blend(rgb, edited, box_weight(rgb.shape[:2], box, ellipse=edit == "brighter_blob"))


def probe_cases(dataset: str, split_file: str | None, part: str) -> list:
    """Cases with a skin mask, in one part of the split when a split file is given."""
    cases = [c for c in load_dataset(dataset) if c.mask_path("skin")]
    if split_file is None:
        return cases
    wanted = set(load_split(Path(split_file))[Path(dataset).name][part])
    return [c for c in cases if c.case_id in wanted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True, help="photos without vitiligo, skin masks")
    parser.add_argument("--split-file")
    parser.add_argument("--part", default="val", choices=("train", "val"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="JSON file for the per-photo shares")
    args = parser.parse_args()

    predictor = Predictor.from_folder(args.checkpoint)
    rng = np.random.default_rng(args.seed)
    rows = []
    for case in probe_cases(args.dataset, args.split_file, args.part):
        rgb = read_rgb(case.image_path)
        box = pick_box(read_mask(case.mask_path("skin")) > 0, rng)
        if box is None:
            continue
        row = {"case_id": case.case_id, "patient_id": case.patient_id, "box": asdict(box)}
        for edit in ("none", *EDITS):
            photo = rgb if edit == "none" else edit_photo(rgb, box, edit)
            _, lesion = predictor.masks(predictor.predict(photo), photo)
            row[edit] = float(box.view(lesion).mean())
        rows.append(row)
    if not rows:
        sys.exit(f"{args.dataset}: no photo with a skin box to edit")
    patients = [row["patient_id"] for row in rows]
    print(f"{len(rows)} photos, one box each; share of the box called lesion")
    print(
        "| edit | mean share | paired difference with the unedited photo [95 % interval] "
        "| photos with >= 10 % of the box called |"
    )
    print("|---|---|---|---|")
    for edit in ("none", *EDITS):
        shares = np.array([row[edit] for row in rows])
        line = f"| {edit} | {shares.mean():.1%} | "
        if edit == "none":
            line += "– | "
        else:
            differences = shares - np.array([row["none"] for row in rows])
            low, high = patient_bootstrap_ci(list(differences), patients) or (np.nan, np.nan)
            line += f"{differences.mean():+.1%} [{low:+.1%}, {high:+.1%}] | "
        print(line + f"{int((shares >= 0.1).sum())} |")
    if args.out:
        write_json_atomic(args.out, rows)


if __name__ == "__main__":
    sys.exit(main())
