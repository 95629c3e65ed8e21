#!/usr/bin/env python3
"""How well could a perfect model of one label style score against another?

    python scripts/label_style_ceiling.py DATA/painted-eval DATA/painted-eval-outline

Both folders hold the same photos (same case ids) labelled two ways, for example
``vitiseg-synth mode=painted`` with ``lesion_label=exact`` and ``lesion_label=outline`` (the
coarse polygon style of the real annotations). Scoring one labelling against the other is
the ceiling of a model that learned the second style perfectly, measured on the first:
lesion Dice and affected-fraction error, with 95 % patient intervals.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from vitiseg.data.dataset_format import Case, load_dataset
from vitiseg.evaluation.evaluate import affected_fraction
from vitiseg.io.images import read_mask
from vitiseg.metrics.confidence import patient_bootstrap_ci
from vitiseg.metrics.segmentation import score_masks


def lesion_and_skin(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """The case's (H, W) bool lesion and skin masks; both must be annotated."""
    if case.lesion_mask_path is None or case.skin_mask_path is None:
        raise ValueError(f"{case.image_path}: case {case.case_id} needs lesion and skin masks")
    return read_mask(case.lesion_mask_path), read_mask(case.skin_mask_path)


def compare_labellings(truth_case: Case, other_case: Case) -> tuple[float, float]:
    """Lesion Dice of the other labelling against the truth, and its affected-fraction error."""
    truth_lesion, truth_skin = lesion_and_skin(truth_case)
    other_lesion, other_skin = lesion_and_skin(other_case)
    if truth_lesion.shape != other_lesion.shape:
        raise ValueError(
            f"{other_case.image_path}: masks are {other_lesion.shape}, "
            f"the truth's are {truth_lesion.shape}"
        )
    dice = score_masks(other_lesion, truth_lesion, with_hd95=False).dice
    error = affected_fraction(other_lesion, other_skin) - affected_fraction(
        truth_lesion, truth_skin
    )
    return dice, error


def describe(name: str, values: list[float], patients: list[str], scale: float = 1.0) -> str:
    mean = sum(values) / len(values)
    interval = patient_bootstrap_ci(values, patients)
    if interval is None:  # one patient says nothing about the spread between patients
        return f"{name}: {mean * scale:.3f} (one patient: no interval)"
    low, high = (bound * scale for bound in interval)
    return f"{name}: {mean * scale:.3f} (95 % patient interval {low:.3f} to {high:.3f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", type=Path, help="dataset whose labels count as the truth")
    parser.add_argument("other", type=Path, help="the same photos labelled in another style")
    args = parser.parse_args()
    truth_cases = {case.case_id: case for case in load_dataset(args.truth)}
    other_cases = {case.case_id: case for case in load_dataset(args.other)}
    if truth_cases.keys() != other_cases.keys():
        print(f"error: {args.truth} and {args.other} hold different cases", file=sys.stderr)
        return 2
    ids = sorted(truth_cases)
    pairs = [compare_labellings(truth_cases[i], other_cases[i]) for i in ids]
    dice, errors = [d for d, _ in pairs], [e for _, e in pairs]
    patients = [truth_cases[i].patient_id for i in ids]
    print(
        f"{len(ids)} photos, {len(set(patients))} patients: {args.other.name} scored as a "
        f"prediction against {args.truth.name}"
    )
    print(describe("lesion Dice", dice, patients))
    print(describe("affected-fraction error, percentage points", errors, patients, 100))
    print(
        describe(
            "affected-fraction absolute error, percentage points",
            [abs(e) for e in errors],
            patients,
            100,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
