"""Overlays of the worst cases, so failures can be looked at."""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vitiseg.data.dataset_format import Case
from vitiseg.evaluation.evaluate import CaseResult, evaluate_case
from vitiseg.inference.predictor import Predictor
from vitiseg.io.atomic import write_jpeg_atomic, write_text_atomic
from vitiseg.quality import QualityConfig

TRUE_COLOUR = (0, 255, 0)  # truth outlines, RGB
PREDICTED_COLOUR = (255, 0, 255)


@dataclass(frozen=True)
class GalleryPick:
    """One case drawn in the gallery: which output's failure it shows, and the measure."""

    result: CaseResult
    output: str  # "lesion", "depigmented" or "skin": whose masks the overlay draws
    caption: str


# Sections of the gallery, each up to ``count`` cases. Photos without vitiligo are ranked
# apart by their false area: their lesion Dice is 0 or 1 and would not order them.
GALLERY_SECTIONS = (
    ("lesion", "lowest lesion Dice, photos with annotated lesions"),
    ("false_lesion", "largest false affected area, photos annotated without lesions"),
    ("depigmented", "lowest depigmented Dice, photos with exact depigmented masks"),
    ("skin", "lowest skin Dice"),
)


def worst_cases(results: Sequence[CaseResult], count: int) -> dict[str, list[GalleryPick]]:
    """The worst ``count`` cases of each gallery section that has candidates."""
    ranked: dict[str, list[tuple[float, GalleryPick]]] = defaultdict(list)
    for r in results:
        if r.lesion and r.lesion.truth_px > 0:
            pick = GalleryPick(r, "lesion", f"lesion Dice {r.lesion.dice:.3f}")
            ranked["lesion"].append((r.lesion.dice, pick))
        elif r.lesion and r.affected_fraction_predicted > 0:
            share = r.affected_fraction_predicted
            caption = f"false affected area {100 * share:.1f} % of skin"
            ranked["false_lesion"].append((-share, GalleryPick(r, "lesion", caption)))
        if r.depigmented:
            pick = GalleryPick(r, "depigmented", f"depigmented Dice {r.depigmented.dice:.3f}")
            ranked["depigmented"].append((r.depigmented.dice, pick))
        if r.skin:
            ranked["skin"].append(
                (r.skin.dice, GalleryPick(r, "skin", f"skin Dice {r.skin.dice:.3f}"))
            )
    return {
        section: [pick for _, pick in sorted(ranked[section], key=lambda item: item[0])[:count]]
        for section, _ in GALLERY_SECTIONS
        if ranked[section] and count > 0
    }


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


def write_gallery(
    sections: dict[str, list[GalleryPick]],
    masks_by_case: dict[str, dict[str, np.ndarray]],
    folder: Path,
) -> Path:
    """Write one JPEG per pick and an HTML index by section (every value escaped).

    ``masks_by_case`` holds each picked case's photo and masks (``evaluate_case(...,
    keep_masks=True).masks``), so a case in two sections is run through the model once.
    """
    titles = dict(GALLERY_SECTIONS)
    parts = ["<p>Green: annotation. Magenta: model.</p>"]
    for section, picks in sections.items():
        parts.append(f"<h2>{html.escape(titles.get(section, section))}</h2>")
        for rank, pick in enumerate(picks, 1):
            masks = masks_by_case[pick.result.case_id]
            truth, predicted = masks.get(f"{pick.output}_true"), masks[f"{pick.output}_pred"]
            name = f"{section}-{rank:02d}.jpg"
            write_jpeg_atomic(folder / name, outline_overlay(masks["rgb"], truth, predicted))
            parts.append(
                f"<figure><img src='{html.escape(name)}' width='320'><figcaption>"
                f"{html.escape(pick.result.case_id)} — {html.escape(pick.caption)} — "
                f"{html.escape(pick.result.stratum)}</figcaption></figure>"
            )
    if not sections:
        parts.append("<p>No case has an annotated mask to rank.</p>")
    page = "<!doctype html><meta charset='utf-8'><title>Worst cases</title>" + "\n".join(parts)
    index = folder / "index.html"
    write_text_atomic(index, page)
    return index


def draw_worst_cases(
    predictor: Predictor,
    cases: Sequence[Case],
    results: Sequence[CaseResult],
    count: int,
    folder: Path,
    quality: QualityConfig | None = None,
) -> Path:
    """Pick the worst ``count`` cases of each kind of failure, run each picked case through
    the model once more to keep its masks (not held for every case), and write the gallery."""
    sections = worst_cases(results, count)
    by_id = {case.case_id: case for case in cases}
    picked = sorted({pick.result.case_id for picks in sections.values() for pick in picks})
    masks_by_case = {
        case_id: evaluate_case(predictor, by_id[case_id], keep_masks=True, quality=quality).masks
        for case_id in picked
    }
    return write_gallery(sections, masks_by_case, folder)
