"""The model's Dice beside a second annotator's, on photos a set holds more than once.

A Dice target on hand-drawn outlines only means something next to what people reach: on
photos annotated twice, one annotator's mask scored against the other's is the figure a
model cannot be expected to beat. ``vitiligo-web`` holds 11 photos as byte-identical
copies with masks by different people; the evaluation finds such copies in any set and
reports, over the same photos, both annotators' agreement and the model's Dice.

Pairs where both masks are empty are left out (nothing was drawn, so nothing was agreed on);
every other pair follows the evaluation's empty-mask policy. Each repeated photo weighs
the same, however many times it was annotated.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vitiseg.data.dataset_format import Case
from vitiseg.data.identical_files import identical_file_groups
from vitiseg.io.images import read_mask
from vitiseg.metrics.segmentation import MaskScores, score_masks

# The outputs whose masks a person draws; the depigmented masks come from generators.
ANNOTATED_KINDS = ("lesion", "skin")


def repeated_photos(cases: Sequence[Case]) -> list[list[Case]]:
    """Groups of two or more cases whose image files are byte-identical, in case order."""
    groups = identical_file_groups([case.image_path for case in cases])
    return [[cases[index] for index in group] for group in groups]


def _annotated_mask(case: Case, kind: str) -> np.ndarray | None:
    """The case's mask of ``kind`` as evaluation scores it (skin includes the lesions)."""
    path = case.mask_path(kind)
    if path is None:
        return None
    mask = read_mask(path)
    lesion_path = case.mask_path("lesion")
    if kind == "skin" and lesion_path is not None:
        mask = mask | read_mask(lesion_path)
    return mask


def agreement_of_kind(
    groups: Sequence[Sequence[Case]],
    model_scores: Mapping[str, MaskScores | None],
    kind: str,
) -> dict[str, Any] | None:
    """Annotators' and the model's mean Dice over the repeated photos annotated with
    ``kind`` (None when none is). ``model_scores``: case_id -> the model's scores of that
    output against the case's own mask."""
    photos = []
    for group in groups:
        masks = {case.case_id: _annotated_mask(case, kind) for case in group}
        masks = {case_id: mask for case_id, mask in masks.items() if mask is not None}
        pairs = [
            (a, b) for a, b in itertools.combinations(masks, 2) if masks[a].any() or masks[b].any()
        ]
        model = {c: s.dice for c in masks if (s := model_scores.get(c)) is not None}
        if not pairs or len(model) < 2:
            continue
        # Dice is symmetric, so one score per pair; HD95 is not needed here.
        annotators = [score_masks(masks[a], masks[b], with_hd95=False).dice for a, b in pairs]
        photos.append(
            {
                "case_ids": list(masks),
                "annotator_dice": float(np.mean(annotators)),
                "annotator_pairs": len(pairs),
                "model_dice": float(np.mean(list(model.values()))),
            }
        )
    return agreement_over_photos(photos) if photos else None


def agreement_over_photos(photos: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The block of :func:`agreement_of_kind` from its ``per_photo`` entries (also for
    entries joined from several evaluations)."""
    annotator = float(np.mean([p["annotator_dice"] for p in photos]))
    model = float(np.mean([p["model_dice"] for p in photos]))
    return {
        "photos": len(photos),
        "cases": sum(len(p["case_ids"]) for p in photos),
        "annotator_dice": annotator,
        "model_dice": model,
        "model_minus_annotator": model - annotator,
        "per_photo": list(photos),
    }


def annotator_agreement(cases: Sequence[Case], results: Sequence[Any]) -> dict[str, Any]:
    """Per annotated kind with repeated photos, :func:`agreement_of_kind`; {} when the
    set holds no photo twice. ``results``: the evaluation's per-case results (anything
    with ``case_id`` and a ``lesion`` and ``skin`` score, as ``CaseResult``)."""
    groups = repeated_photos(cases)
    if not groups:
        return {}
    found = {
        kind: agreement_of_kind(groups, {r.case_id: getattr(r, kind) for r in results}, kind)
        for kind in ANNOTATED_KINDS
    }
    return {kind: block for kind, block in found.items() if block is not None}
