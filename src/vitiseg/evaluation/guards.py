"""The figures a candidate model is judged by before it ships, read from vitiseg-eval summaries.

A candidate is evaluated on five guard sets, each in a folder of its own under one evaluation
root: ``real`` (real vitiligo validation photos), ``painted`` and ``synth`` (painted and
procedural photos with exact truth), ``skin`` and ``backdrop`` (photos without vitiligo, as
taken and in front of plain light backdrops, whose true affected fraction is 0).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

GUARD_SETS = ("real", "painted", "synth", "skin", "backdrop")

_DEPIGMENTED_DICE = ("mean", "depigmented", "dice")
_AREA_MAE = ("mean", "affected_fraction", "mae")
_AREA_BIAS = ("mean", "affected_fraction", "bias")
_VASI_MAE = ("vasi_vs_truth", "model_vs_generator", "mae")
_FITZPATRICK_GAP = ("depigmented_dice_gap_between_strata",)
_SKIN_DICE = ("mean", "skin", "dice")

# (label, guard set, keys into summary.json, scale): fractions are shown in percentage points.
GUARD_FIGURES: tuple[tuple[str, str, tuple[str, ...], float], ...] = (
    ("real lesion Dice", "real", ("mean", "lesion", "dice"), 1.0),
    ("painted depigmented Dice", "painted", _DEPIGMENTED_DICE, 1.0),
    ("painted affected-fraction MAE, pp", "painted", _AREA_MAE, 100.0),
    ("painted affected-fraction bias, pp", "painted", _AREA_BIAS, 100.0),
    ("painted VASI MAE", "painted", _VASI_MAE, 1.0),
    ("painted depigmented Fitzpatrick gap", "painted", _FITZPATRICK_GAP, 1.0),
    ("procedural depigmented Dice", "synth", _DEPIGMENTED_DICE, 1.0),
    ("procedural affected-fraction MAE, pp", "synth", _AREA_MAE, 100.0),
    ("procedural affected-fraction bias, pp", "synth", _AREA_BIAS, 100.0),
    ("procedural VASI MAE", "synth", _VASI_MAE, 1.0),
    ("procedural depigmented Fitzpatrick gap", "synth", _FITZPATRICK_GAP, 1.0),
    ("skin photos: false affected fraction, pp", "skin", _AREA_MAE, 100.0),
    ("skin photos: skin Dice", "skin", _SKIN_DICE, 1.0),
    ("backdrops: false affected fraction, pp", "backdrop", _AREA_MAE, 100.0),
    ("backdrops: skin Dice", "backdrop", _SKIN_DICE, 1.0),
)


def _lookup(summary: Mapping | None, keys: Sequence[str]) -> float | None:
    value = summary
    for key in keys:
        if not isinstance(value, Mapping) or value.get(key) is None:
            return None
        value = value[key]
    return float(value)


def guard_figures(summaries: Mapping[str, Mapping | None]) -> dict[str, float | None]:
    """One model's guard figures from its summaries by guard set; None where a set or figure is
    missing (a two-output model has no depigmented figures)."""
    figures = {}
    for label, guard_set, keys, scale in GUARD_FIGURES:
        value = _lookup(summaries.get(guard_set), keys)
        figures[label] = None if value is None else value * scale
    return figures


def mean_and_range(rows: Sequence[Mapping[str, float | None]]) -> dict[str, tuple | None]:
    """Mean, lowest and highest of each figure over several models (seeds of one recipe);
    None when any model lacks the figure, so a mean never silently covers fewer seeds."""
    summary = {}
    for label, *_ in GUARD_FIGURES:
        values = [row.get(label) for row in rows]
        if not values or any(value is None for value in values):
            summary[label] = None
        else:
            summary[label] = (sum(values) / len(values), min(values), max(values))
    return summary


def read_guard_summaries(evaluation_root: Path) -> dict[str, dict | None]:
    """The summary.json of each guard set under one evaluation root (None where absent)."""
    summaries = {}
    for guard_set in GUARD_SETS:
        path = evaluation_root / guard_set / "summary.json"
        summaries[guard_set] = json.loads(path.read_text()) if path.is_file() else None
    if all(summary is None for summary in summaries.values()):
        raise FileNotFoundError(
            f"{evaluation_root}: none of {', '.join(GUARD_SETS)} holds a summary.json"
        )
    return summaries
