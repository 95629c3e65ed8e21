"""Overlays of the worst cases, so failures can be looked at."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vitiseg.evaluation.evaluate import CaseResult
from vitiseg.io.atomic import write_jpeg_atomic, write_text_atomic

TRUE_COLOUR = (0, 255, 0)  # truth outlines, RGB
PREDICTED_COLOUR = (255, 0, 255)


def outline_overlay(
    rgb: np.ndarray, truth: np.ndarray | None, predicted: np.ndarray
) -> np.ndarray:
    """(H, W, 3) uint8 copy of ``rgb`` with truth (green) and prediction (magenta) outlines."""
    canvas = rgb.copy()
    thickness = max(1, round(max(rgb.shape[:2]) / 300))
    for mask, colour in ((truth, TRUE_COLOUR), (predicted, PREDICTED_COLOUR)):
        if mask is None:
            continue
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(canvas, contours, -1, colour, thickness)
    return canvas


def write_gallery(results: Sequence[CaseResult], folder: Path) -> Path:
    """Write one JPEG per case and an HTML index (every value escaped)."""
    rows = []
    for rank, result in enumerate(results, 1):
        masks = result.masks
        kind = "lesion" if "lesion_true" in masks else "skin"
        overlay = outline_overlay(masks["rgb"], masks.get(f"{kind}_true"), masks[f"{kind}_pred"])
        name = f"{rank:02d}.jpg"
        write_jpeg_atomic(folder / name, overlay)
        scores = result.lesion or result.skin
        dice = f"{scores.dice:.3f}" if scores else "–"
        rows.append(
            f"<figure><img src='{name}' width='320'><figcaption>"
            f"{html.escape(result.case_id)} — {kind} Dice {dice} — "
            f"{html.escape(result.stratum)}</figcaption></figure>"
        )
    page = (
        "<!doctype html><meta charset='utf-8'><title>Worst cases</title>"
        "<p>Green: annotation. Magenta: model.</p>" + "\n".join(rows)
    )
    index = folder / "index.html"
    write_text_atomic(index, page)
    return index
