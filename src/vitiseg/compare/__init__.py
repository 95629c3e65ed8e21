"""Baseline vs follow-up: alignment, change maps and per-patient comparisons.

NumPy/OpenCV/Pillow only (no torch, no Hydra); the segmentation model is passed in as a
function. Definitions and limits are in ``docs/compare_and_cohort.md``. Typical use::

    from vitiseg.compare import align_images, compare_masks

    alignment = align_images(baseline_rgb, followup_rgb)
    result = compare_masks(b_skin, b_lesion, f_skin, f_lesion, alignment, "face")
    result.response.improvement, result.areas.repigmented_px
"""

from __future__ import annotations

from vitiseg.compare.align import (
    Alignment,
    AlignSettings,
    align_images,
    common_area,
    identity_alignment,
    warp_to_baseline,
)
from vitiseg.compare.change import (
    ChangeAreas,
    ChangeClass,
    Comparison,
    change_areas,
    change_labels,
    compare_masks,
)
from vitiseg.compare.pairs import PairResult, compare_photos, write_pair_outputs

__all__ = [
    "AlignSettings",
    "Alignment",
    "ChangeAreas",
    "ChangeClass",
    "Comparison",
    "PairResult",
    "align_images",
    "change_areas",
    "change_labels",
    "common_area",
    "compare_masks",
    "compare_photos",
    "identity_alignment",
    "warp_to_baseline",
    "write_pair_outputs",
]
