#!/usr/bin/env python3
"""How visible is the depigmentation of each Fitzpatrick type? A study of a labelled set.

    python scripts/depigmentation_contrast_by_type.py DATA/painted-heldout

For a set with exact depigmented truth and a skin type per case (the painted and procedural
sets, ``lesion_label=both``), prints per type: the median L* lift of the truly depigmented
pixels over the normal skin around them, and the Dice of the colour rule
(:func:`vitiseg.inference.depigmentation.depigmented_by_colour`) given the TRUE outline and
skin. No network runs: it measures the photos, so a gap between types here is in the data
(pale skin has little pigment to lose), not in a model.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from vitiseg.data.dataset_format import load_dataset
from vitiseg.inference.depigmentation import MIN_LIFT, lift_above_normal_skin
from vitiseg.io.images import read_mask, read_rgb


def case_contrast(rgb, skin, outline, depigmented) -> tuple[float, float] | None:
    """(median L* lift of the depigmented pixels, colour-rule Dice inside the true outline),
    or None without depigmented pixels or normal skin to compare with."""
    lift = lift_above_normal_skin(rgb, skin, outline)
    if lift is None or not depigmented.any():
        return None
    by_colour = outline & (lift > MIN_LIFT)  # the colour rule, as depigmented_by_colour
    dice = 2.0 * (by_colour & depigmented).sum() / (by_colour.sum() + depigmented.sum())
    return float(np.median(lift[depigmented])), float(dice)


def contrast_by_type(dataset: Path) -> dict[int, list[tuple[float, float]]]:
    by_type: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for case in load_dataset(dataset):
        if not (case.fitzpatrick and case.skin_mask_path and case.depigmented_mask_path):
            continue
        measured = case_contrast(
            read_rgb(case.image_path),
            read_mask(case.skin_mask_path) > 0,
            read_mask(case.lesion_mask_path) > 0,
            read_mask(case.depigmented_mask_path) > 0,
        )
        if measured is not None:
            by_type[int(case.fitzpatrick)].append(measured)
    return dict(sorted(by_type.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="a set with masks/depigmented and types")
    args = parser.parse_args()
    by_type = contrast_by_type(args.dataset)
    if not by_type:
        print(f"{args.dataset}: no case with a skin type, skin and depigmented masks")
        return 1
    for skin_type, rows in by_type.items():
        lifts, dices = np.array(rows).T
        print(
            f"type {skin_type}: {len(rows):3d} photos, median L* lift of the depigmented pixels "
            f"{np.median(lifts):5.1f}, colour rule inside the true outline Dice {dices.mean():.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
