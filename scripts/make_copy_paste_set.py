#!/usr/bin/env python3
"""A training set of real vitiligo patches pasted onto other people's skin (copy-paste).

Donor patches come from one part of a run's split of a lesion-annotated set, targets from
the same part of a skin-annotated set, so validation patients stay unseen
(vitiseg.synth.copy_paste explains the paste):

    python scripts/make_copy_paste_set.py --donors DATA/vitiligo-web \
        --targets DATA/skin-photos --split-file RUN/split.json --part train \
        --n 300 --out DATA/copy-paste
    vitiseg-train "dataset=[...,DATA/copy-paste]" ...

Each case has masks/skin (the target's) and masks/lesion (the pasted polygons inside
skin); no masks/depigmented, since a polygon is an outline, not exact pixels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from vitiseg.data.dataset_format import Case, load_dataset, write_cases_csv
from vitiseg.data.resize import resize_long_side
from vitiseg.data.splits import deterministic_rng, load_split
from vitiseg.io.atomic import write_jpeg_atomic, write_png_atomic, write_text_atomic
from vitiseg.io.images import read_mask, read_rgb
from vitiseg.paths import inside_checkout
from vitiseg.synth.copy_paste import cut_donor_patches, render_copy_paste_case


def _part_cases(dataset: Path, split_file: Path, part: str, kind: str) -> list[Case]:
    wanted = set(load_split(split_file)[dataset.name][part])
    return [c for c in load_dataset(dataset) if c.case_id in wanted and c.mask_path(kind)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--donors", type=Path, required=True)
    parser.add_argument("--targets", type=Path, required=True)
    parser.add_argument("--split-file", type=Path, required=True)
    parser.add_argument("--part", default="train", choices=("train", "val", "test"))
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--long-side", type=int, default=448)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if inside_checkout(args.out):
        print(f"error: {args.out} is inside the source checkout; images derived from real "
              "photos must stay out of the repository", file=sys.stderr)  # fmt: skip
        return 2

    patches = []
    for case in _part_cases(args.donors, args.split_file, args.part, "lesion"):
        rgb = resize_long_side(read_rgb(case.image_path), args.long_side)
        mask = resize_long_side(read_mask(case.lesion_mask_path), args.long_side, nearest=True)
        patches += cut_donor_patches(rgb, mask, case.case_id)
    targets = _part_cases(args.targets, args.split_file, args.part, "skin")
    if not patches or not targets:
        print(f"error: no {args.part} donor patches or skin targets", file=sys.stderr)
        return 2
    print(f"{len(patches)} donor patches, {len(targets)} target photos")

    rows, provenance = [], ["case_id,target,donors"]
    for index in range(args.n):
        rng = deterministic_rng(args.seed, "copy-paste", index)
        target = targets[int(rng.integers(len(targets)))]
        rgb = resize_long_side(read_rgb(target.image_path), args.long_side)
        skin = resize_long_side(read_mask(target.skin_mask_path), args.long_side, nearest=True) > 0
        if skin.sum() < 2000:
            continue
        photo, lesion, donors = render_copy_paste_case(rgb, skin, patches, rng)
        if not lesion.any():
            continue
        case_id = f"copypaste{args.seed}_{index:05d}"
        write_jpeg_atomic(args.out / "images" / f"{case_id}.jpg", photo, quality=92)
        write_png_atomic(
            args.out / "masks" / "skin" / f"{case_id}.png", skin.astype(np.uint8) * 255
        )
        write_png_atomic(
            args.out / "masks" / "lesion" / f"{case_id}.png", lesion.astype(np.uint8) * 255
        )
        rows.append({"case_id": case_id, "patient_id": f"src-{target.patient_id}"})
        provenance.append(f"{case_id},{target.case_id},{'|'.join(donors)}")
    write_cases_csv(args.out / "cases.csv", rows)
    write_text_atomic(args.out / "provenance.csv", "\n".join(provenance) + "\n")
    print(f"{len(rows)} photos written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
