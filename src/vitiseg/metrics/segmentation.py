"""Per-image segmentation metrics, reduced explicitly afterwards.

Empty-mask policy (written down once, used everywhere):
- truth empty and prediction empty: Dice = IoU = 1, sensitivity and precision undefined
  (NaN, left out of means), HD95 = 0;
- truth empty, prediction not: Dice = IoU = precision = 0, sensitivity NaN, HD95 NaN;
- truth not empty, prediction empty: Dice = IoU = sensitivity = 0, precision NaN,
  HD95 NaN.
Means skip NaN and say how many cases they cover.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    fn: int
    tn: int

    @classmethod
    def of(cls, prediction: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None):
        """Counts for (H, W) bool masks, optionally only where ``valid``."""
        if valid is not None:
            prediction, truth = prediction[valid], truth[valid]
        tp = int(np.count_nonzero(prediction & truth))
        fp = int(np.count_nonzero(prediction & ~truth))
        fn = int(np.count_nonzero(~prediction & truth))
        return cls(tp, fp, fn, int(prediction.size) - tp - fp - fn)


@dataclass(frozen=True)
class MaskScores:
    dice: float
    iou: float
    sensitivity: float
    precision: float
    hd95_px: float
    truth_px: int
    predicted_px: int

    def to_dict(self) -> dict[str, float]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


def hd95(prediction: np.ndarray, truth: np.ndarray) -> float:
    """95th percentile of symmetric boundary distances in pixels (policy above)."""
    if not prediction.any() and not truth.any():
        return 0.0
    if not prediction.any() or not truth.any():
        return math.nan

    def boundary(mask: np.ndarray) -> np.ndarray:
        return mask & ~ndimage.binary_erosion(mask, border_value=0)

    pred_edge, truth_edge = boundary(prediction), boundary(truth)
    to_truth = ndimage.distance_transform_edt(~truth_edge)[pred_edge]
    to_pred = ndimage.distance_transform_edt(~pred_edge)[truth_edge]
    return float(np.percentile(np.concatenate([to_truth, to_pred]), 95))


def score_masks(
    prediction: np.ndarray, truth: np.ndarray, *, with_hd95: bool = True
) -> MaskScores:
    """Scores of one (H, W) bool prediction against its truth, with the empty policy."""
    counts = Confusion.of(prediction, truth)
    truth_px, predicted_px = counts.tp + counts.fn, counts.tp + counts.fp
    if truth_px == 0 and predicted_px == 0:
        dice = iou = 1.0
    else:
        dice = 2 * counts.tp / (truth_px + predicted_px)
        iou = counts.tp / (counts.tp + counts.fp + counts.fn)
    return MaskScores(
        dice=dice,
        iou=iou,
        sensitivity=_ratio(counts.tp, truth_px),
        precision=_ratio(counts.tp, predicted_px),
        hd95_px=hd95(prediction, truth) if with_hd95 else math.nan,
        truth_px=truth_px,
        predicted_px=predicted_px,
    )


def nan_mean(values: list[float]) -> tuple[float | None, int]:
    """Mean over the non-NaN values and how many there were."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return (float(np.mean(kept)) if kept else None), len(kept)


def mean_scores(rows: list[MaskScores]) -> dict[str, float | int | None]:
    """Means of each metric over cases (NaN left out), with case counts."""
    summary: dict[str, float | int | None] = {"n": len(rows)}
    for key in ("dice", "iou", "sensitivity", "precision", "hd95_px"):
        mean, count = nan_mean([getattr(r, key) for r in rows])
        summary[key] = mean
        summary[f"{key}_n"] = count
    return summary
