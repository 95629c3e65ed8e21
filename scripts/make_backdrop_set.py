#!/usr/bin/env python3
"""A test set of skin photos in front of plain light backdrops (white walls and sheets).

The shipped model calls white backgrounds depigmented skin. This copies the skin-annotated
photos of one part of a run's split (for example the validation photos no run trained on)
and paints everything outside the skin with a light backdrop (vitiseg.data.augment.
swap_background, seeded per case), keeping the skin and lesion masks:

    python scripts/make_backdrop_set.py --dataset DATA/skin-photos \
        --split-file RUN/split.json --part val --out DATA/backdrop-eval
    vitiseg-eval dataset=DATA/backdrop-eval output=EVAL

Lesion Dice on it is the share of photos with no false lesion at all (the truth is
empty), skin Dice shows whether the backdrop passes for skin.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vitiseg.data.augment import swap_background
from vitiseg.data.dataset_format import load_dataset, write_cases_csv
from vitiseg.data.splits import deterministic_rng, load_split
from vitiseg.io.atomic import write_png_atomic
from vitiseg.io.images import read_mask, read_rgb
from vitiseg.paths import inside_checkout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split-file", type=Path, required=True)
    parser.add_argument("--part", default="val", choices=("train", "val", "test"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if inside_checkout(args.out):
        print(f"error: {args.out} is inside the source checkout; images derived from real "
              "photos must stay out of the repository", file=sys.stderr)  # fmt: skip
        return 2
    wanted = set(load_split(args.split_file)[args.dataset.name][args.part])
    cases = [c for c in load_dataset(args.dataset) if c.case_id in wanted and c.skin_mask_path]
    if not cases:
        print(f"error: no skin-annotated {args.part} cases of {args.dataset}", file=sys.stderr)
        return 2
    rows = []
    for case in cases:
        skin = read_mask(case.skin_mask_path)
        image = swap_background(
            read_rgb(case.image_path), skin, deterministic_rng(args.seed, case.case_id)
        )
        write_png_atomic(args.out / "images" / f"{case.case_id}.png", image)
        write_png_atomic(args.out / "masks" / "skin" / f"{case.case_id}.png", skin)
        if case.lesion_mask_path:
            lesion = read_mask(case.lesion_mask_path)
            write_png_atomic(args.out / "masks" / "lesion" / f"{case.case_id}.png", lesion)
        rows.append({"case_id": case.case_id, "patient_id": case.patient_id, "split": "test"})
    write_cases_csv(args.out / "cases.csv", rows)
    print(f"{len(rows)} photos written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
