"""Baseline vs follow-up from masks: change map, changed areas, both VASIs and the response.

Everything here is pure NumPy/OpenCV on arrays; the photos and the network stay outside
(:mod:`vitiseg.compare.pairs` wires them in). The change map lives in the baseline frame.

Change classes (:class:`ChangeClass`), for pixels that both visits show as skin:

- ``REPIGMENTED``: depigmented at baseline, not at follow-up;
- ``NEW``: not depigmented at baseline, depigmented at follow-up;
- ``STABLE``: depigmented at both visits;
- ``UNAFFECTED``: depigmented at neither.

Everything else (outside the follow-up's field of view, or skin at one visit only, e.g.
hair or clothing in the way) is ``NOT_COMPARED``: it is neither repigmentation nor spread.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

import cv2
import numpy as np

from vitiseg.compare.align import Alignment, common_area, warp_to_baseline
from vitiseg.vasi import (
    LevelReference,
    RegionScore,
    Response,
    VasiConfig,
    response,
    score_region,
    score_region_labelled,
)

logger = logging.getLogger(__name__)

ScoredWithin = Literal["common_area", "each_photo"]


class ChangeClass(IntEnum):
    """Values of the change map, (H, W) uint8 in the baseline frame."""

    NOT_COMPARED = 0
    UNAFFECTED = 1
    STABLE = 2
    REPIGMENTED = 3
    NEW = 4


@dataclass(frozen=True)
class ChangeAreas:
    """Areas of the change map.

    Attributes:
        compared_px: Pixels that both visits show as skin (the map's compared area).
        unaffected_px: Compared pixels depigmented at neither visit.
        stable_px: Depigmented at both (or within ``tolerance_px`` of it, see
            :func:`change_labels`).
        repigmented_px: Depigmented at baseline only.
        new_px: Depigmented at follow-up only.
        baseline_lesion_px: ``stable_px + repigmented_px``.
        followup_lesion_px: ``stable_px + new_px``.
        repigmented_share: ``repigmented_px / baseline_lesion_px``; None when no baseline
            lesion was compared.
        pixels_per_cm: Baseline scale used for the cm² fields, or None.
        compared_cm2, stable_cm2, repigmented_cm2, new_cm2, baseline_lesion_cm2,
            followup_lesion_cm2: The same areas in cm² when calibrated, else None.
    """

    compared_px: int
    unaffected_px: int
    stable_px: int
    repigmented_px: int
    new_px: int
    baseline_lesion_px: int
    followup_lesion_px: int
    repigmented_share: float | None
    pixels_per_cm: float | None
    compared_cm2: float | None
    stable_cm2: float | None
    repigmented_cm2: float | None
    new_cm2: float | None
    baseline_lesion_cm2: float | None
    followup_lesion_cm2: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def change_labels(
    baseline_skin: np.ndarray,
    baseline_lesion: np.ndarray,
    followup_skin: np.ndarray,
    followup_lesion: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    tolerance_px: int = 0,
) -> np.ndarray:
    """Label each pixel with its :class:`ChangeClass`; all masks in the same frame.

    Args:
        baseline_skin: (H, W) bool skin at baseline (lesion pixels count as skin).
        baseline_lesion: (H, W) bool depigmented at baseline.
        followup_skin: (H, W) bool skin at follow-up, already in the baseline frame.
        followup_lesion: (H, W) bool depigmented at follow-up, in the baseline frame.
        valid: (H, W) bool pixels both photos show; None = all.
        tolerance_px: Registration tolerance in pixels. A pixel that changed class but lies
            within this distance of the other visit's lesion is counted ``STABLE``, so a
            border shifted by residual misalignment is not reported as change. 0 = exact.

    Returns:
        (H, W) uint8 change map.
    """
    masks = [
        np.asarray(m, bool)
        for m in (baseline_skin, baseline_lesion, followup_skin, followup_lesion)
    ]
    shape = masks[1].shape
    if valid is None:
        valid = np.ones(shape, bool)
    for name, mask in zip(
        ("baseline_skin", "baseline_lesion", "followup_skin", "followup_lesion", "valid"),
        [*masks, valid],
        strict=True,
    ):
        if mask.shape != shape:
            raise ValueError(f"{name} shape {mask.shape} differs from {shape}")
    if tolerance_px < 0:
        raise ValueError(f"tolerance_px: must be >= 0, got {tolerance_px}")
    base_skin, base_lesion, follow_skin, follow_lesion = masks
    compared = np.asarray(valid, bool) & (base_skin | base_lesion) & (follow_skin | follow_lesion)
    base_lesion = base_lesion & compared
    follow_lesion = follow_lesion & compared
    if tolerance_px:
        near_follow = _dilate(follow_lesion, tolerance_px)
        near_base = _dilate(base_lesion, tolerance_px)
    else:
        near_follow, near_base = follow_lesion, base_lesion

    labels = np.full(shape, ChangeClass.NOT_COMPARED, np.uint8)
    labels[compared] = ChangeClass.UNAFFECTED
    labels[base_lesion & ~near_follow] = ChangeClass.REPIGMENTED
    labels[follow_lesion & ~near_base] = ChangeClass.NEW
    # Lesion at both, or a changed pixel within the tolerance of the other visit's lesion.
    labels[(base_lesion & near_follow) | (follow_lesion & near_base)] = ChangeClass.STABLE
    return labels


def change_areas(labels: np.ndarray, pixels_per_cm: float | None = None) -> ChangeAreas:
    """Count the change map's classes, in pixels and (when calibrated) cm².

    Args:
        labels: (H, W) uint8 change map from :func:`change_labels`.
        pixels_per_cm: Scale of the baseline frame in pixels per cm, or None.
    """
    if pixels_per_cm is not None and not (math.isfinite(pixels_per_cm) and pixels_per_cm > 0):
        raise ValueError(f"pixels_per_cm: must be a positive number, got {pixels_per_cm}")
    counts = np.bincount(labels.ravel(), minlength=len(ChangeClass))
    unaffected, stable, repigmented, new = (
        int(counts[c])
        for c in (
            ChangeClass.UNAFFECTED,
            ChangeClass.STABLE,
            ChangeClass.REPIGMENTED,
            ChangeClass.NEW,
        )
    )
    compared = unaffected + stable + repigmented + new
    baseline_lesion, followup_lesion = stable + repigmented, stable + new

    def cm2(pixels: int) -> float | None:
        return None if pixels_per_cm is None else pixels / pixels_per_cm**2

    return ChangeAreas(
        compared_px=compared,
        unaffected_px=unaffected,
        stable_px=stable,
        repigmented_px=repigmented,
        new_px=new,
        baseline_lesion_px=baseline_lesion,
        followup_lesion_px=followup_lesion,
        repigmented_share=repigmented / baseline_lesion if baseline_lesion else None,
        pixels_per_cm=pixels_per_cm,
        compared_cm2=cm2(compared),
        stable_cm2=cm2(stable),
        repigmented_cm2=cm2(repigmented),
        new_cm2=cm2(new),
        baseline_lesion_cm2=cm2(baseline_lesion),
        followup_lesion_cm2=cm2(followup_lesion),
    )


@dataclass(frozen=True, eq=False)
class Comparison:
    """One body region photographed at baseline and at follow-up.

    Attributes:
        region: VASI region name.
        baseline: Region score at baseline.
        followup: Region score at follow-up.
        response: Improvement and VASI50/75/90 flags (:func:`vitiseg.vasi.response`).
        alignment: How the follow-up was put into the baseline frame.
        scored_within: ``"common_area"`` when both VASIs were measured on the skin both
            photos show (reliable alignment), ``"each_photo"`` when each photo was scored on
            its own because the alignment was unreliable.
        labels: (H, W) uint8 :class:`ChangeClass` map in the baseline frame; None when the
            alignment was unreliable.
        areas: Areas of ``labels``; None with it.
        notes: Plain-language remarks for the report.
        retake_share: The share of the model's comparisons of photos with no change that
            moved at least as much (:mod:`vitiseg.compare.retake`); None when not known
            (no record for the model or its settings, or an unaligned pair).
    """

    region: str
    baseline: RegionScore
    followup: RegionScore
    response: Response
    alignment: Alignment
    scored_within: ScoredWithin
    labels: np.ndarray | None
    areas: ChangeAreas | None
    notes: tuple[str, ...] = ()
    retake_share: float | None = None

    @property
    def area_improvement(self) -> float | None:
        """The improvement of the affected extent alone (hand units, levels left out); None
        for a zero baseline. Steadier than the VASI's between unchanged photos, but blind
        to pigment returning inside a patch (docs/compare_and_cohort.md)."""
        before = self.baseline.hand_units_affected
        return 1 - self.followup.hand_units_affected / before if before > 0 else None

    @property
    def followup_levels_held(self) -> int:
        """Follow-up patches that kept their baseline level (``hold_levels_within``)."""
        return sum(patch.level_held for patch in self.followup.patches)

    def to_dict(self, *, patches: bool = False) -> dict[str, Any]:
        """JSON-ready summary (no arrays). ``patches``: include each score's patch list."""

        def score(region_score: RegionScore) -> dict[str, Any]:
            data = region_score.to_dict()
            if not patches:
                data.pop("patches", None)
            return data

        return {
            "region": self.region,
            "baseline_vasi": self.baseline.vasi,
            "followup_vasi": self.followup.vasi,
            **{
                k: v
                for k, v in self.response.to_dict().items()
                if k not in ("baseline", "followup")
            },
            "scored_within": self.scored_within,
            "areas": None if self.areas is None else self.areas.to_dict(),
            "alignment": self.alignment.to_dict(),
            "baseline_score": score(self.baseline),
            "followup_score": score(self.followup),
            "area_improvement": self.area_improvement,
            "followup_levels_held": self.followup_levels_held,
            "retake_share": self.retake_share,
            "notes": list(self.notes),
        }


def compare_masks(
    baseline_skin: np.ndarray | None,
    baseline_lesion: np.ndarray,
    followup_skin: np.ndarray | None,
    followup_lesion: np.ndarray,
    alignment: Alignment,
    region: str,
    *,
    pixels_per_cm: float | None = None,
    followup_pixels_per_cm: float | None = None,
    body_surface_cm2: float | None = None,
    roi: np.ndarray | None = None,
    tolerance_px: int = 0,
    config: VasiConfig | None = None,
    baseline_depigmented: np.ndarray | None = None,
    followup_depigmented: np.ndarray | None = None,
    followup_in_baseline_frame: bool = False,
    hold_levels_within: float | None = None,
    follow_baseline_patches: bool = False,
) -> Comparison:
    """Score both visits of one region and map what changed.

    With a reliable alignment the follow-up masks are warped into the baseline frame
    (nearest neighbour) and both visits are scored on the same skin: the common area of
    the two photos (and ``roi``). Otherwise each photo is scored on its own, no change map
    is made, and a note says why.

    Args:
        baseline_skin: (H, W) bool skin mask of the baseline photo; None = all skin.
        baseline_lesion: (H, W) bool depigmentation mask of the baseline photo.
        followup_skin: (H', W') bool skin mask in the follow-up photo's own frame.
        followup_lesion: (H', W') bool depigmentation mask in the follow-up frame.
        alignment: From :func:`vitiseg.compare.align.align_images` (or
            :func:`~vitiseg.compare.align.identity_alignment`).
        region: VASI region name, e.g. ``"face"``.
        pixels_per_cm: Baseline photo scale; gives cm² areas and, with
            ``body_surface_cm2``, calibrated VASI (:func:`vitiseg.vasi.score_region`).
        followup_pixels_per_cm: Follow-up photo scale, used only when the photos are
            scored separately; None = the same as the baseline.
        body_surface_cm2: Patient's body surface area in cm², or None.
        roi: (H, W) bool region of interest in the baseline frame (e.g. the F-VASI face
            area); with an unreliable alignment it applies to the baseline photo only.
        tolerance_px: Registration tolerance of the change map, see :func:`change_labels`.
        config: VASI settings; None for the defaults.
        baseline_depigmented, followup_depigmented: (H, W) / (H', W') bool depigmented
            pixels from a model with a depigmented output, whose lesion masks then outline
            whole patches: levels come from them and the change map compares them (pigment
            returning inside a patch is repigmentation). None: the lesion masks are the
            depigmented skin.
        followup_in_baseline_frame: The follow-up masks come from the follow-up photo
            already warped into the baseline frame (shape (H, W)): they are used as they
            are. Needs a reliable alignment.
        hold_levels_within: With a reliable alignment, a follow-up patch lying at least
            half inside one baseline patch keeps that patch's level when its depigmented
            share moved by less than this (:class:`~vitiseg.vasi.LevelReference`); None:
            each visit's levels are snapped from its own shares.
        follow_baseline_patches: With a reliable alignment, cut the follow-up's patch
            extents along the baseline's patches before grading them, so patches that
            merge or split between the visits are graded as at baseline
            (:func:`~vitiseg.vasi.patches.partition_by_reference`).

    Returns:
        The comparison; ``labels`` and ``areas`` are None when the alignment is unreliable.
    """
    config = config or VasiConfig()
    baseline_lesion = np.asarray(baseline_lesion, bool)
    followup_lesion = np.asarray(followup_lesion, bool)
    baseline_skin = _skin_or_all(baseline_skin, baseline_lesion)
    followup_skin = _skin_or_all(followup_skin, followup_lesion)
    # Without a depigmented output the lesion mask is the depigmented skin.
    baseline_depigmented = _bool_or(baseline_depigmented, baseline_lesion)
    followup_depigmented = _bool_or(followup_depigmented, followup_lesion)
    expected = {
        "baseline": (
            alignment.baseline_shape,
            baseline_lesion.shape,
            baseline_skin.shape,
            baseline_depigmented.shape,
        ),
        "follow-up": (
            alignment.baseline_shape if followup_in_baseline_frame else alignment.followup_shape,
            followup_lesion.shape,
            followup_skin.shape,
            followup_depigmented.shape,
        ),
    }
    for visit, (aligned_shape, *mask_shapes) in expected.items():
        if any(tuple(shape) != tuple(aligned_shape) for shape in mask_shapes):
            raise ValueError(
                f"{visit} masks {mask_shapes} do not match the alignment's {aligned_shape}"
            )
    if roi is not None and np.asarray(roi).shape != baseline_lesion.shape:
        raise ValueError(f"roi shape {np.asarray(roi).shape} differs from the baseline's")
    scale = {
        "pixels_per_cm": pixels_per_cm,
        "body_surface_cm2": body_surface_cm2,
        "config": config,
    }

    if followup_in_baseline_frame and (not alignment.reliable or alignment.homography is None):
        raise ValueError("follow-up masks in the baseline frame need a reliable alignment")
    if not alignment.reliable or alignment.homography is None:
        baseline = score_region(
            baseline_skin,
            baseline_lesion,
            region,
            roi=roi,
            depigmented=baseline_depigmented,
            **scale,
        )
        follow_scale = {**scale, "pixels_per_cm": followup_pixels_per_cm or pixels_per_cm}
        followup = score_region(
            followup_skin,
            followup_lesion,
            region,
            depigmented=followup_depigmented,
            **follow_scale,
        )
        note = (
            f"alignment unreliable ({alignment.reason}): each photo scored on its own and no "
            "change map made; check that the photos show the same region from a similar view"
        )
        return Comparison(
            region=region,
            baseline=baseline,
            followup=followup,
            response=response(baseline, followup, config),
            alignment=alignment,
            scored_within="each_photo",
            labels=None,
            areas=None,
            notes=(note,),
        )

    common = common_area(alignment)
    if roi is not None:
        common &= np.asarray(roi, bool)
    if followup_in_baseline_frame:
        warped_skin, warped_lesion = followup_skin, followup_lesion
        warped_depigmented = followup_depigmented
    else:
        warped_skin = warp_to_baseline(followup_skin, alignment, nearest=True)
        warped_lesion = warp_to_baseline(followup_lesion, alignment, nearest=True)
        warped_depigmented = warp_to_baseline(followup_depigmented, alignment, nearest=True)
    # In the baseline frame the follow-up has the baseline's scale.
    baseline, baseline_labels = score_region_labelled(
        baseline_skin,
        baseline_lesion,
        region,
        roi=common,
        depigmented=baseline_depigmented,
        **scale,
    )
    reference = None
    if hold_levels_within is not None or follow_baseline_patches:
        reference = LevelReference(
            baseline_labels,
            baseline.patches,
            hold_levels_within or 0.0,
            follow_patches=follow_baseline_patches,
        )
    followup = score_region(
        warped_skin,
        warped_lesion,
        region,
        roi=common,
        depigmented=warped_depigmented,
        level_reference=reference,
        **scale,
    )
    labels = change_labels(
        baseline_skin,
        baseline_depigmented,
        warped_skin,
        warped_depigmented,
        common,
        tolerance_px=tolerance_px,
    )
    notes = []
    if alignment.overlap < 0.9:
        notes.append(
            f"the photos share {alignment.overlap:.0%} of the baseline frame; both visits "
            "were scored on that common area only"
        )
    return Comparison(
        region=region,
        baseline=baseline,
        followup=followup,
        response=response(baseline, followup, config),
        alignment=alignment,
        scored_within="common_area",
        labels=labels,
        areas=change_areas(labels, pixels_per_cm),
        notes=tuple(notes),
    )


def _bool_or(mask: np.ndarray | None, fallback: np.ndarray) -> np.ndarray:
    return fallback if mask is None else np.asarray(mask, bool)


def _skin_or_all(skin: np.ndarray | None, lesion: np.ndarray) -> np.ndarray:
    return np.ones(lesion.shape, bool) if skin is None else np.asarray(skin, bool)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    size = 2 * radius + 1
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return cv2.dilate(mask.astype(np.uint8), disk).astype(bool)
