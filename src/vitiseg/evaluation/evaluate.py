"""Evaluate a model on a dataset: per-case scores, means and strata.

Only outputs with a mask are scored (a missing mask is "not annotated"). The
affected fraction (depigmented share of skin) needs a skin and a lesion mask; its truth is
``masks/depigmented`` where a set has one (``masks/lesion`` then outlines whole patches),
and its prediction the depigmented output of a model that has one. A model's depigmented
output is scored against ``masks/depigmented`` where both exist. Strata use the case's
Fitzpatrick type when cases.csv gives one, else the ITA measured on the true (or,
without a skin mask, predicted) normal skin. Each case also gets the quality flags scoring
would raise, and the summary compares flagged with unflagged cases, so a user can see on
their own labelled photos whether a flag marks the photos the model gets wrong.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from vitiseg.data.dataset_format import MASK_KINDS, Case
from vitiseg.inference.predictor import Predictor
from vitiseg.io.images import ImageReadError, read_mask, read_rgb
from vitiseg.metrics.confidence import patient_bootstrap_ci
from vitiseg.metrics.segmentation import MaskScores, mean_scores, nan_mean, score_masks
from vitiseg.metrics.skin_tone import individual_typology_angle, ita_category
from vitiseg.quality import FLAG_NAMES, QualityConfig, assess_quality

log = logging.getLogger(__name__)


class CaseInputError(ValueError):
    """A case's files do not fit together (the message names the file)."""


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    patient_id: str
    lesion: MaskScores | None
    skin: MaskScores | None
    affected_fraction_true: float | None
    affected_fraction_predicted: float
    stratum: str
    ita_deg: float | None
    quality_flags: tuple[str, ...] = ()
    masks: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    depigmented: MaskScores | None = None
    region: str = ""  # the VASI region cases.csv gives ("" when not recorded)

    @property
    def affected_fraction_error(self) -> float | None:
        if self.affected_fraction_true is None:
            return None
        return self.affected_fraction_predicted - self.affected_fraction_true

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "patient_id": self.patient_id,
            "stratum": self.stratum,
            "region": self.region,
            "ita_deg": self.ita_deg,
            "lesion": self.lesion.to_dict() if self.lesion else None,
            "skin": self.skin.to_dict() if self.skin else None,
            **({"depigmented": self.depigmented.to_dict()} if self.depigmented else {}),
            "affected_fraction_true": self.affected_fraction_true,
            "affected_fraction_predicted": self.affected_fraction_predicted,
            "affected_fraction_error": self.affected_fraction_error,
            "quality_flags": list(self.quality_flags),
        }


# Columns of cases.csv: one row per case, each output's scores flattened (blank = not
# annotated or undefined under the empty-mask policy).
_SCORED_OUTPUTS = ("lesion", "skin", "depigmented")
_SCORE_FIELDS = ("dice", "iou", "sensitivity", "precision", "hd95_px", "truth_px", "predicted_px")
CASE_COLUMNS = (
    "case_id",
    "patient_id",
    "stratum",
    "region",
    "ita_deg",
    *(f"{output}_{name}" for output in _SCORED_OUTPUTS for name in _SCORE_FIELDS),
    "affected_fraction_true",
    "affected_fraction_predicted",
    "affected_fraction_error",
    "quality_flags",
)


def case_rows(results: Sequence[CaseResult]) -> list[dict[str, Any]]:
    """One flat row per case in :data:`CASE_COLUMNS` (for ``cases.csv``)."""
    rows = []
    for result in results:
        case = result.to_dict()
        row = {key: case[key] for key in ("case_id", "patient_id", "stratum", "region", "ita_deg")}
        for output in _SCORED_OUTPUTS:
            scores = case.get(output) or {}
            row.update({f"{output}_{name}": scores.get(name) for name in _SCORE_FIELDS})
        row.update({key: case[key] for key in CASE_COLUMNS if key.startswith("affected_")})
        row["quality_flags"] = ";".join(case["quality_flags"])
        rows.append(row)
    return rows


def affected_fraction(lesion: np.ndarray, skin: np.ndarray) -> float:
    """Lesion pixels as a share of visible skin (skin or lesion) in (H, W) bool masks."""
    visible = int(np.count_nonzero(skin | lesion))
    return float(np.count_nonzero(lesion)) / visible if visible else 0.0


def read_truth(case: Case) -> dict[str, np.ndarray | None]:
    """The case's annotated masks by kind (None where not annotated)."""
    return {kind: (read_mask(p) if (p := case.mask_path(kind)) else None) for kind in MASK_KINDS}


def true_affected_fraction(truth: dict[str, np.ndarray | None]) -> float | None:
    """The depigmented share of annotated skin: exact depigmented pixels where a set has
    them, else the lesion outline; None without a skin mask or either of those."""
    depigmented = truth["depigmented"] if truth["depigmented"] is not None else truth["lesion"]
    if truth["skin"] is None or depigmented is None:
        return None
    return affected_fraction(depigmented, truth["skin"])


# Called with a case and the model's skin, lesion and depigmented (or None) masks.
MaskHook = Callable[[Case, np.ndarray, np.ndarray, np.ndarray | None], None]


def evaluate_case(
    predictor: Predictor,
    case: Case,
    *,
    keep_masks: bool = False,
    quality: QualityConfig | None = None,
    on_masks: MaskHook | None = None,
) -> CaseResult:
    rgb = read_rgb(case.image_path)
    truth = read_truth(case)
    for kind, mask in truth.items():  # before the network runs: a bad case fails fast
        if mask is not None and mask.shape != rgb.shape[:2]:
            raise CaseInputError(
                f"{case.mask_path(kind)}: mask size {mask.shape} differs from "
                f"image {rgb.shape[:2]}"
            )
    prediction = predictor.predict(rgb)
    skin_pred, lesion_pred = predictor.masks(prediction, rgb)
    depigmented_pred = predictor.depigmented_mask(prediction, lesion_pred, rgb, skin_pred)
    if on_masks is not None:  # more measures of the same masks without running the model again
        on_masks(case, skin_pred, lesion_pred, depigmented_pred)
    # As scoring raises them: from the photo and the model's output only, never the truth.
    flags = assess_quality(
        rgb,
        skin_pred,
        prediction.lesion,
        prediction.uncertainty,
        quality,
        lesion=lesion_pred,
        skin_probability=prediction.skin,
        depigmented=depigmented_pred,
    ).flags
    lesion_scores = (
        score_masks(lesion_pred, truth["lesion"]) if truth["lesion"] is not None else None
    )
    skin_scores = None
    if truth["skin"] is not None:
        skin_true = truth["skin"] | (truth["lesion"] if truth["lesion"] is not None else False)
        skin_scores = score_masks(skin_pred, skin_true)
    depigmented_scores = None
    if truth["depigmented"] is not None and depigmented_pred is not None:
        depigmented_scores = score_masks(depigmented_pred, truth["depigmented"])
    depigmented_predicted = depigmented_pred if depigmented_pred is not None else lesion_pred
    affected_true = true_affected_fraction(truth)
    normal_skin = truth["skin"] if truth["skin"] is not None else skin_pred
    lesion_for_tone = truth["lesion"] if truth["lesion"] is not None else lesion_pred
    ita = individual_typology_angle(rgb, normal_skin & ~lesion_for_tone)
    # The recorded Fitzpatrick type wins; otherwise the skin tone measured from the photo.
    stratum = f"fitzpatrick_{case.fitzpatrick}" if case.fitzpatrick else f"ita_{ita_category(ita)}"
    masks = (
        {
            "rgb": rgb,
            "skin_pred": skin_pred,
            "lesion_pred": lesion_pred,
            **({"depigmented_pred": depigmented_pred} if depigmented_pred is not None else {}),
            **{f"{k}_true": v for k, v in truth.items() if v is not None},
            # The skin truth as scored, lesions included, so an overlay draws what was scored.
            **({"skin_true": skin_true} if skin_scores is not None else {}),
        }
        if keep_masks
        else {}
    )
    return CaseResult(
        case.case_id,
        case.patient_id,
        lesion_scores,
        skin_scores,
        affected_true,
        affected_fraction(depigmented_predicted, skin_pred),
        stratum,
        ita,
        flags,
        masks,
        depigmented_scores,
        case.region,
    )


def evaluate_cases(
    predictor: Predictor,
    cases: Sequence[Case],
    quality: QualityConfig | None = None,
    on_masks: MaskHook | None = None,
    skipped: list[tuple[Case, str]] | None = None,
) -> list[CaseResult]:
    """Evaluate every case. With a ``skipped`` list, a case whose photo or masks cannot be
    used (unreadable, a mask of another size) is recorded there with the problem and the
    rest are evaluated; without one, the first such case raises."""
    results = []
    for case in tqdm(cases, desc="evaluating", unit="photo", dynamic_ncols=True):
        try:
            results.append(evaluate_case(predictor, case, quality=quality, on_masks=on_masks))
        except (ImageReadError, CaseInputError) as error:
            if skipped is None:
                raise
            log.warning("skipped %s: %s", case.case_id, error)
            skipped.append((case, str(error)))
    return results


def patient_intervals(rows: Sequence[CaseResult]) -> dict[str, list[float] | None]:
    """95 % patient-bootstrap intervals of the means in a summary block (None: < 2 patients)."""
    columns = {
        "lesion_dice": [(r.lesion.dice if r.lesion else None) for r in rows],
        "lesion_nonempty_dice": [
            (r.lesion.dice if r.lesion and r.lesion.truth_px > 0 else None) for r in rows
        ],
        "skin_dice": [(r.skin.dice if r.skin else None) for r in rows],
        "affected_fraction_mae": [
            (abs(e) if (e := r.affected_fraction_error) is not None else None) for r in rows
        ],
    }
    patients = [r.patient_id for r in rows]
    intervals = {}
    for name, values in columns.items():
        interval = patient_bootstrap_ci(values, patients)
        intervals[name] = list(interval) if interval else None
    return intervals


def summarise(results: Sequence[CaseResult]) -> dict[str, Any]:
    """``{"mean": {...}, "strata": {...}, "cases": [...]}`` for summary.json."""

    def block(rows: Sequence[CaseResult]) -> dict[str, Any]:
        out: dict[str, Any] = {"n_cases": len(rows)}
        lesion = [r.lesion for r in rows if r.lesion]
        nonempty = [r.lesion for r in rows if r.lesion and r.lesion.truth_px > 0]
        skin = [r.skin for r in rows if r.skin]
        depigmented = [r.depigmented for r in rows if r.depigmented]
        if depigmented:
            out["depigmented"] = mean_scores(depigmented)
        if lesion:
            out["lesion"] = mean_scores(lesion)
        if nonempty:
            out["lesion_nonempty"] = mean_scores(nonempty)
        if skin:
            out["skin"] = mean_scores(skin)
        errors = [r.affected_fraction_error for r in rows if r.affected_fraction_error is not None]
        if errors:
            mae, count = nan_mean([abs(e) for e in errors])
            out["affected_fraction"] = {"mae": mae, "bias": float(np.mean(errors)), "n": count}
        out["n_patients"] = len({r.patient_id for r in rows})
        out["ci95_by_patient"] = patient_intervals(rows)
        return out

    strata: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        strata[result.stratum].append(result)
    stratum_blocks = {name: block(rows) for name, rows in sorted(strata.items())}
    by_flag = {
        name: {
            "flagged": block([r for r in results if name in r.quality_flags]),
            "not_flagged": block([r for r in results if name not in r.quality_flags]),
        }
        for name in FLAG_NAMES
        if any(name in r.quality_flags for r in results)
    }
    # Body regions differ in how hard they are (hands and feet against the face); a set
    # whose cases.csv records regions gets a block per region.
    regions: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        regions[result.region or "not recorded"].append(result)
    by_region = {name: block(rows) for name, rows in sorted(regions.items())}
    return {
        "mean": block(results),
        "strata": stratum_blocks,
        "by_region": by_region if len(by_region) > 1 else {},
        "by_quality_flag": by_flag,
        "lesion_dice_gap_between_strata": _dice_gap(stratum_blocks, "lesion_nonempty"),
        # A three-output model against exact truth (masks/depigmented); None otherwise.
        "depigmented_dice_gap_between_strata": _dice_gap(stratum_blocks, "depigmented"),
        "empty_mask_policy": (
            "truth and prediction both empty: Dice=IoU=1, HD95=0, sensitivity/precision "
            "undefined; one empty: Dice=IoU=0, HD95 undefined; undefined values are left out "
            "of means (counts in *_n)."
        ),
        "confidence_intervals": (
            "ci95_by_patient: 2.5th-97.5th percentiles of the mean over 2000 resamples of "
            "whole patients (photos of one patient are not independent); null with fewer "
            "than 2 patients."
        ),
        "cases": [r.to_dict() for r in results],
    }


def _dice_gap(stratum_blocks: dict[str, dict[str, Any]], output: str) -> float | None:
    """Best minus worst stratum's mean Dice of one output (None with fewer than 2 strata)."""
    dice = [
        b[output]["dice"]
        for b in stratum_blocks.values()
        if output in b and b[output]["dice"] is not None
    ]
    return max(dice) - min(dice) if len(dice) > 1 else None


def markdown_table(summary: dict[str, Any]) -> str:
    """A readable table of means overall and per stratum."""
    lines = [
        "| group | n (patients) | lesion Dice [95 % CI] | lesion IoU | lesion HD95 px | "
        "skin Dice [95 % CI] | affected-fraction MAE, pp |",
        "|---|---|---|---|---|---|---|",
    ]
    # A three-output model on a set with exact depigmented masks gets one more column.
    with_depigmented = "depigmented" in summary["mean"]
    if with_depigmented:
        lines = [lines[0] + " depigmented Dice |", lines[1] + "---|"]

    def fmt(value: Any) -> str:
        return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    def percentage_points(share: float | None) -> str:
        return "–" if share is None else f"{100 * share:.1f}"

    def with_interval(value: Any, interval: list[float] | None) -> str:
        return fmt(value) + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")

    groups = [("all", summary["mean"])] + list(summary["strata"].items())
    groups += [(f"region {name}", block) for name, block in summary.get("by_region", {}).items()]
    for flag, halves in (summary.get("by_quality_flag") or {}).items():
        groups += [(f"flag {flag}", halves["flagged"]), (f"no {flag}", halves["not_flagged"])]
    for name, block in groups:
        lesion_key = "lesion_nonempty" if block.get("lesion_nonempty") else "lesion"
        lesion = block.get(lesion_key) or {}
        skin = block.get("skin") or {}
        affected = block.get("affected_fraction") or {}
        intervals = block.get("ci95_by_patient") or {}
        lesion_dice = with_interval(lesion.get("dice"), intervals.get(f"{lesion_key}_dice"))
        depigmented = (block.get("depigmented") or {}).get("dice")
        skin_dice = with_interval(skin.get("dice"), intervals.get("skin_dice"))
        lines.append(
            f"| {name} | {block['n_cases']} ({block.get('n_patients', '?')}) | {lesion_dice} | "
            f"{fmt(lesion.get('iou'))} | {fmt(lesion.get('hd95_px'))} | "
            f"{skin_dice} | {percentage_points(affected.get('mae'))} |"
            + (f" {fmt(depigmented)} |" if with_depigmented else "")
        )
    for kind, block in (summary.get("annotator_agreement") or {}).items():
        lines.append(
            f"\n{kind.capitalize()} on the {block['photos']} photo(s) annotated more than once "
            f"({block['cases']} cases): annotators agree at Dice {block['annotator_dice']:.3f}, "
            f"the model scores {block['model_dice']:.3f} against them "
            f"({block['model_minus_annotator']:+.3f})."
        )
    skipped = summary.get("skipped_cases") or []
    if skipped:
        lines.append(f"\nSkipped (not in any figure above): {len(skipped)} case(s)")
        lines += [f"- {c['case_id']}: {c['problem']}" for c in skipped]
    return "\n".join(lines) + "\n"
