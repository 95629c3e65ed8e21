"""Choosing an output's threshold on training-side photos, by the figure VASI depends on."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np


def affected_fraction_errors(
    true_fractions: Sequence[float], predicted_by_threshold: Mapping[float, Sequence[float]]
) -> dict[float, dict[str, float]]:
    """Mean absolute error and bias of the predicted affected fractions at each threshold.

    Args:
        true_fractions: the true affected fraction of each photo.
        predicted_by_threshold: for each threshold, the predicted fraction of the same photos.
    """
    truth = np.asarray(true_fractions, dtype=float)
    table = {}
    for threshold, predicted in predicted_by_threshold.items():
        predicted = np.asarray(predicted, dtype=float)
        if predicted.shape != truth.shape:
            raise ValueError(
                f"threshold {threshold}: {predicted.size} predictions for {truth.size} photos"
            )
        errors = predicted - truth
        table[threshold] = {"mae": float(np.abs(errors).mean()), "bias": float(errors.mean())}
    return table


def least_error_threshold(table: Mapping[float, Mapping[str, float]]) -> float:
    """The threshold with the least mean absolute error; on a tie the lowest threshold,
    so a calibration never moves further from the default than its figures ask."""
    if not table:
        raise ValueError("no thresholds to choose from")
    return min(table, key=lambda threshold: (round(table[threshold]["mae"], 12), threshold))


def train_val_table(labelled_rows: Sequence[tuple[str, Mapping]], figure: str = "Dice") -> str:
    """Markdown table of settings (each row: its fields plus ``train_dice`` and ``val_dice``),
    so a study shows the validation figure beside the training figure it chose by."""
    lines = [f"| setting | train {figure} | val {figure} |", "|---|---|---|"]
    for label, row in labelled_rows:
        setting = {k: v for k, v in row.items() if not k.endswith("_dice")}
        lines.append(
            f"| {label}: {json.dumps(setting)} | {row['train_dice']:.4f} | {row['val_dice']:.4f} |"
        )
    return "\n".join(lines)
