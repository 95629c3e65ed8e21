"""Region VASI from masks, and T-VASI / F-VASI from region scores (``docs/vasi.md``).

Two modes for a patch's hand units:

- ``region_share`` (default): the photo shows the whole region, so
  ``patch hand units = region hand units * patch area / visible skin area``;
- ``calibrated`` (``pixels_per_cm`` and ``body_surface_cm2`` given):
  ``patch hand units = patch area cm² / (body surface cm² * hand_unit_percent / 100)``.

Region VASI = sum of ``patch hand units * level``, never more than the region's hand units.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from vitiseg.vasi._records import JsonRecord
from vitiseg.vasi.config import VasiConfig
from vitiseg.vasi.patches import (
    PatchExtent,
    binarize,
    extents_of_labels,
    labelled_patch_extents,
    largest_overlaps,
    merge_radius,
    partition_by_reference,
    snap_level,
)

logger = logging.getLogger(__name__)

Mode = Literal["region_share", "calibrated"]

# A calibrated photo showing this much more skin than its region's table value is more
# likely mis-calibrated or mislabelled than unusually large; say so in the log.
_VISIBLE_EXCESS_WARNING = 1.25


def mosteller_bsa_cm2(height_cm: float, weight_kg: float) -> float:
    """Body surface area by Mosteller (1987): ``sqrt(height_cm * weight_kg / 3600)`` m².

    Args:
        height_cm: Body height in cm.
        weight_kg: Body weight in kg.

    Returns:
        Body surface area in cm² (1 m² = 10 000 cm²).
    """
    if not (height_cm > 0 and weight_kg > 0):
        raise ValueError(f"height_cm and weight_kg must be > 0, got {height_cm}, {weight_kg}")
    return math.sqrt(height_cm * weight_kg / 3600.0) * 10_000.0


@dataclass(frozen=True)
class Patch(JsonRecord):
    """One scored depigmented patch.

    Attributes:
        label: 1-based label in raster order of the patch's first pixel; in a follow-up
            cut along its baseline's patches (:attr:`LevelReference.follow_patches`), the
            label of the baseline patch it continues.
        area_px: Patch extent in pixels (depigmented pixels plus merged specks).
        lesion_px: Depigmented pixels within the extent.
        depigmented_share: ``lesion_px / area_px`` before snapping.
        level: VASI depigmentation level as a fraction (1.0, 0.9, 0.75, 0.5, 0.25, 0.1).
        hand_units: Extent in hand units.
        vasi: ``hand_units * level``.
        area_cm2: Extent in cm² when ``pixels_per_cm`` is known, else None.
        bbox: (min_row, min_col, max_row, max_col) in pixels, max exclusive.
        centroid: (row, col) in pixels.
        level_held: The level is the baseline patch's, kept because the share barely moved
            (a follow-up scored with a :class:`LevelReference`), not snapped from its own.
    """

    label: int
    area_px: int
    lesion_px: int
    depigmented_share: float
    level: float
    hand_units: float
    vasi: float
    area_cm2: float | None
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    level_held: bool = False


@dataclass(frozen=True)
class LevelReference:
    """A baseline's scored patches, to score its follow-up against (comparisons).

    A follow-up patch lying at least half inside one baseline patch keeps that patch's
    level when its depigmented share differs from the baseline patch's by less than
    ``within``: a share that barely moved near a cut point (say 0.379 -> 0.364 across the
    0.375 between levels 50 % and 25 %) would otherwise halve the patch's VASI with no
    visible change.

    With ``follow_patches`` the follow-up's extents are first cut along the baseline's
    patches (:func:`~vitiseg.vasi.patches.partition_by_reference`), so two baseline patches
    that the follow-up's outline bridges are still graded apart, and one that it breaks in
    two is graded whole.

    Attributes:
        labels: (H, W) int label image of the baseline's patch extents, in the frame the
            follow-up is scored in (from :func:`score_region_labelled`).
        patches: The baseline's kept patches (their ``label`` indexes ``labels``).
        within: Largest share move, exclusive, that keeps the baseline's level (0: none
            is kept).
        follow_patches: Cut the follow-up's extents along the baseline's kept patches.
    """

    labels: np.ndarray
    patches: tuple[Patch, ...]
    within: float
    follow_patches: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.within <= 1:
            raise ValueError(f"within must be between 0 and 1, not {self.within}")

    def kept_labels(self) -> np.ndarray:
        """``labels`` with the extents the baseline dropped (too small or faint) cleared."""
        kept = [patch.label for patch in self.patches]
        return np.where(np.isin(self.labels, kept), self.labels, 0)

    def held_levels(self, labels: np.ndarray, extents: Sequence[PatchExtent]) -> dict[int, float]:
        """The baseline level each of ``extents`` (labelled in ``labels``) keeps, by
        label; extents that keep none are left out."""
        by_label = {patch.label: patch for patch in self.patches}
        overlaps = largest_overlaps(labels, self.labels)
        held = {}
        for extent in extents:
            other, shared_px = overlaps.get(extent.label, (0, 0))
            baseline = by_label.get(other)
            if baseline is None or 2 * shared_px < extent.area_px:
                continue
            if abs(extent.depigmented_share - baseline.depigmented_share) < self.within:
                held[extent.label] = baseline.level
        return held


@dataclass(frozen=True)
class RegionScore(JsonRecord):
    """VASI of one photo of one body region.

    Attributes:
        region: Region name from the config table.
        mode: ``"region_share"`` or ``"calibrated"``.
        skin_px: Visible skin pixels: (skin | lesion) & roi.
        lesion_px: Depigmented pixels within visible skin.
        affected_fraction: Patch extents (kept patches) / visible skin, in [0, 1].
        lesion_fraction: ``lesion_px / skin_px`` (raw pixel share, no patches, no levels).
        hand_units_region: The region's hand units from the table.
        hand_units_visible: Visible skin in hand units (equals the region's in region-share
            mode; measured in calibrated mode).
        hand_units_affected: Sum of the kept patches' hand units (not capped).
        vasi: Region VASI, ``min(sum(hand_units * level), hand_units_region)``.
        uncapped_vasi: The sum before the cap.
        capped: Whether the cap changed the value.
        patches: The kept patches.
        merge_radius_px: Merge radius used, in pixels.
        min_patch_area_px: Smallest kept extent used, in pixels.
        dropped_small: Extents dropped for being smaller than ``min_patch_area_px``.
        dropped_faint: Extents dropped for a depigmented share below the lowest cut point.
        pixels_per_cm: Calibration, when given.
        body_surface_cm2: Body surface area, when given.
        visible_skin_cm2: Visible skin in cm² when ``pixels_per_cm`` is known.
        mean_lesion_probability: Mean lesion probability over the pixels called depigmented,
            when probabilities were passed and any pixel was called; else None.
    """

    region: str
    mode: Mode
    skin_px: int
    lesion_px: int
    affected_fraction: float
    lesion_fraction: float
    hand_units_region: float
    hand_units_visible: float
    hand_units_affected: float
    vasi: float
    uncapped_vasi: float
    capped: bool
    patches: tuple[Patch, ...]
    merge_radius_px: float
    min_patch_area_px: float
    dropped_small: int
    dropped_faint: int
    pixels_per_cm: float | None
    body_surface_cm2: float | None
    visible_skin_cm2: float | None
    mean_lesion_probability: float | None


def score_region(
    skin: np.ndarray | None, lesion: np.ndarray, region: str, **options: Any
) -> RegionScore:
    """Score one photo of one body region (arguments as :func:`score_region_labelled`)."""
    return score_region_labelled(skin, lesion, region, **options)[0]


def score_region_labelled(
    skin: np.ndarray | None,
    lesion: np.ndarray,
    region: str,
    *,
    roi: np.ndarray | None = None,
    pixels_per_cm: float | None = None,
    body_surface_cm2: float | None = None,
    config: VasiConfig | None = None,
    depigmented: np.ndarray | None = None,
    level_reference: LevelReference | None = None,
) -> tuple[RegionScore, np.ndarray]:
    """Score one photo of one body region, and label its patch extents.

    Args:
        skin: (H, W) skin mask (bool / integer, non-zero = skin) or float probabilities in
            [0, 1]; None when every pixel is skin. Lesion pixels count as skin either way.
        lesion: (H, W) depigmented mask or probabilities, as ``skin``.
        region: Region name in ``config.regions`` (e.g. ``"face"``).
        roi: (H, W) region of interest (bool / integer); for F-VASI the face area as
            defined in docs/vasi.md. Pixels outside it are ignored. None = whole image.
        pixels_per_cm: Image scale in pixels per cm, if known.
        body_surface_cm2: The patient's body surface area in cm² (see
            :func:`mosteller_bsa_cm2`). With ``pixels_per_cm`` it selects calibrated mode.
        config: VASI settings; None for the defaults.
        depigmented: (H, W) mask or probabilities of the depigmented pixels, from a model
            whose ``lesion`` outlines whole patches (pigment islands included): patches
            then take their extent from ``lesion`` and their level from the depigmented
            share inside it. None: ``lesion`` is the depigmented skin.
        level_reference: The baseline's patches when this photo is a follow-up in the
            baseline frame: a patch whose share barely moved keeps its baseline level, and
            the extents may be cut along the baseline's patches (:class:`LevelReference`).
            None: every level is snapped from its own share.

    Returns:
        The region score, whose patches are every connected extent that passes the minimum
        area and the lowest cut point (never only the largest); and the (H, W) int label
        image of the extents (a patch's ``label``; dropped extents keep theirs).

    Raises:
        KeyError: ``region`` is not in the config's table.
        ValueError: shapes differ, probabilities are outside [0, 1], or a calibration value
            is not positive.
    """
    config = config or VasiConfig()
    hand_units_region = config.hand_units(region)
    threshold = config.probability_threshold
    lesion_mask = binarize(lesion, threshold, "lesion")
    shape = lesion_mask.shape
    skin_mask = np.ones(shape, bool) if skin is None else binarize(skin, threshold, "skin")
    roi_mask = np.ones(shape, bool) if roi is None else binarize(roi, 0.5, "roi")
    for name, array in (("skin", skin_mask), ("roi", roi_mask)):
        if array.shape != shape:
            raise ValueError(f"{name} shape {array.shape} differs from lesion shape {shape}")
    visible = (skin_mask | lesion_mask) & roi_mask
    for name, value in (("pixels_per_cm", pixels_per_cm), ("body_surface_cm2", body_surface_cm2)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name}: must be a positive number, got {value}")
    lesion_in = lesion_mask & visible
    depigmented_in = None
    if depigmented is not None:
        depigmented_mask = binarize(depigmented, threshold, "depigmented")
        if depigmented_mask.shape != shape:
            raise ValueError(
                f"depigmented shape {depigmented_mask.shape} differs from lesion shape {shape}"
            )
        depigmented_in = depigmented_mask & lesion_in
    skin_px = int(visible.sum())
    # Depigmented pixels: the level and lesion_fraction are about pigment, not outlines.
    lesion_px = int((lesion_in if depigmented_in is None else depigmented_in).sum())
    mean_probability = _mean_probability(lesion, lesion_in)

    calibrated = pixels_per_cm is not None and body_surface_cm2 is not None
    mode: Mode = "calibrated" if calibrated else "region_share"
    if (pixels_per_cm is None) != (body_surface_cm2 is None):
        logger.debug("%s: calibrated mode needs both pixels_per_cm and body_surface_cm2", region)
    px_per_cm2 = None if pixels_per_cm is None else pixels_per_cm**2
    hand_unit_cm2 = body_surface_cm2 * config.hand_unit_percent / 100.0 if calibrated else None

    radius = merge_radius(skin_px, config.merge_radius_px, config.merge_radius_fraction)
    min_area = _min_patch_area_px(config, skin_px, px_per_cm2)
    patches: list[Patch] = []
    dropped_small = dropped_faint = 0
    if level_reference is not None and level_reference.labels.shape != shape:
        raise ValueError(
            f"level reference shape {level_reference.labels.shape} differs from lesion shape "
            f"{shape}"
        )
    labels, extents = labelled_patch_extents(
        lesion_in, visible, radius, config.connectivity, depigmented_in
    )
    if level_reference is not None and level_reference.follow_patches:
        labels = partition_by_reference(labels, level_reference.kept_labels())
        counted = lesion_in if depigmented_in is None else depigmented_in
        extents = extents_of_labels(labels, counted)
    held_levels = level_reference.held_levels(labels, extents) if level_reference else {}
    for extent in extents:
        if extent.area_px < min_area:
            dropped_small += 1
            continue
        share = extent.depigmented_share
        level = held_levels.get(extent.label, snap_level(share, config.levels, config.cut_points))
        if level is None:
            dropped_faint += 1
            continue
        area_cm2 = None if px_per_cm2 is None else extent.area_px / px_per_cm2
        if hand_unit_cm2 is not None and area_cm2 is not None:
            hand_units = area_cm2 / hand_unit_cm2
        else:
            hand_units = hand_units_region * extent.area_px / skin_px
        patches.append(
            Patch(
                label=extent.label,
                area_px=extent.area_px,
                lesion_px=extent.lesion_px,
                depigmented_share=share,
                level=level,
                hand_units=hand_units,
                vasi=hand_units * level,
                area_cm2=area_cm2,
                bbox=extent.bbox,
                centroid=extent.centroid,
                level_held=extent.label in held_levels,
            )
        )

    visible_cm2 = None if px_per_cm2 is None else skin_px / px_per_cm2
    if hand_unit_cm2 is not None and visible_cm2 is not None:
        hand_units_visible = visible_cm2 / hand_unit_cm2
        if hand_units_visible > _VISIBLE_EXCESS_WARNING * hand_units_region:
            logger.warning(
                "%s: visible skin is %.3g hand units but the region has %.3g; "
                "check pixels_per_cm, body_surface_cm2 and the region label",
                region,
                hand_units_visible,
                hand_units_region,
            )
    else:
        hand_units_visible = hand_units_region if skin_px else 0.0
    uncapped = math.fsum(patch.vasi for patch in patches)
    vasi = min(uncapped, hand_units_region)
    affected_px = sum(patch.area_px for patch in patches)
    score = RegionScore(
        region=region,
        mode=mode,
        skin_px=skin_px,
        lesion_px=lesion_px,
        affected_fraction=affected_px / skin_px if skin_px else 0.0,
        lesion_fraction=lesion_px / skin_px if skin_px else 0.0,
        hand_units_region=hand_units_region,
        hand_units_visible=hand_units_visible,
        hand_units_affected=math.fsum(patch.hand_units for patch in patches),
        vasi=vasi,
        uncapped_vasi=uncapped,
        capped=uncapped > hand_units_region,
        patches=tuple(patches),
        merge_radius_px=radius,
        min_patch_area_px=min_area,
        dropped_small=dropped_small,
        dropped_faint=dropped_faint,
        pixels_per_cm=pixels_per_cm,
        body_surface_cm2=body_surface_cm2,
        visible_skin_cm2=visible_cm2,
        mean_lesion_probability=mean_probability,
    )
    return score, labels


def _min_patch_area_px(config: VasiConfig, skin_px: int, px_per_cm2: float | None) -> float:
    """The largest of the minimum patch areas that apply, in pixels."""
    minimums = [float(config.min_patch_area_px), config.min_patch_area_fraction * skin_px]
    if config.min_patch_area_cm2 is not None and px_per_cm2 is not None:
        minimums.append(config.min_patch_area_cm2 * px_per_cm2)
    return max(minimums)


def _mean_probability(lesion: np.ndarray, lesion_in: np.ndarray) -> float | None:
    array = np.asarray(lesion)
    if not np.issubdtype(array.dtype, np.floating) or not lesion_in.any():
        return None
    return float(array[lesion_in].mean(dtype=np.float64))


@dataclass(frozen=True)
class RegionContribution(JsonRecord):
    """One region's VASI after combining its photos.

    Attributes:
        region: Region name.
        vasi: Combined region VASI (capped at ``hand_units_region``).
        hand_units_region: The region's hand units.
        n_photos: Photos combined.
        mode: Scoring mode shared by the photos.
        in_t_vasi: Whether it counts towards T-VASI under the config.
        capped: Whether the cap changed the combined value.
    """

    region: str
    vasi: float
    hand_units_region: float
    n_photos: int
    mode: Mode
    in_t_vasi: bool
    capped: bool


@dataclass(frozen=True)
class TotalScore(JsonRecord):
    """T-VASI and F-VASI of one patient visit.

    Attributes:
        t_vasi: Sum of the included regions' VASI.
        f_vasi: VASI of the face region, or None when no face photo was scored.
        t_vasi_max: Sum of the included regions' hand units among those scored.
        contributions: Per region, in config table order.
        regions_missing: Regions that count in T-VASI but had no photo (a T-VASI without
            them covers only part of the body).
        include_head_neck_in_t_vasi: The config switch that was applied.
    """

    t_vasi: float
    f_vasi: float | None
    t_vasi_max: float
    contributions: tuple[RegionContribution, ...]
    regions_missing: tuple[str, ...]
    include_head_neck_in_t_vasi: bool


def combine_photos(
    scores: Sequence[RegionScore], config: VasiConfig | None = None
) -> RegionContribution:
    """Combine several photos (views) of the same region into one region VASI.

    Region-share mode: the visible-skin-weighted mean of the photos' VASI (weights in cm²
    when every photo is calibrated in pixels per cm, else in pixels), i.e. the views are
    treated as parts of one surface. Calibrated mode: the uncapped sums add up (the views
    show different skin) and the total is capped at the region's hand units.

    Raises:
        ValueError: no scores, mixed regions, or mixed modes.
    """
    config = config or VasiConfig()
    if not scores:
        raise ValueError("combine_photos needs at least one RegionScore")
    regions = {score.region for score in scores}
    modes = {score.mode for score in scores}
    if len(regions) != 1 or len(modes) != 1:
        raise ValueError(f"cannot combine regions {sorted(regions)} / modes {sorted(modes)}")
    region, mode = regions.pop(), modes.pop()
    hand_units_region = config.hand_units(region)
    if any(not math.isclose(s.hand_units_region, hand_units_region) for s in scores):
        raise ValueError(f"{region}: scores were made with another region table")
    if mode == "calibrated":
        uncapped = math.fsum(score.uncapped_vasi for score in scores)
    else:
        if all(score.visible_skin_cm2 is not None for score in scores):
            weights = [float(score.visible_skin_cm2) for score in scores]  # type: ignore[arg-type]
        else:
            weights = [float(score.skin_px) for score in scores]
        total_weight = math.fsum(weights)
        uncapped = (
            math.fsum(s.vasi * w for s, w in zip(scores, weights, strict=True)) / total_weight
            if total_weight > 0
            else 0.0
        )
    return RegionContribution(
        region=region,
        vasi=min(uncapped, hand_units_region),
        hand_units_region=hand_units_region,
        n_photos=len(scores),
        mode=mode,
        in_t_vasi=config.in_t_vasi(region),
        capped=uncapped > hand_units_region,
    )


def total_vasi(
    region_scores: Iterable[RegionScore], config: VasiConfig | None = None
) -> TotalScore:
    """Sum region scores into T-VASI; report F-VASI and each region's contribution.

    Photos of the same region are first combined with :func:`combine_photos`. Head and
    neck regions count in T-VASI only when ``config.include_head_neck_in_t_vasi``; F-VASI
    is reported either way.

    Args:
        region_scores: Scores of one patient visit, any order, several per region allowed.
        config: The config the scores were made with; None for the defaults.
    """
    config = config or VasiConfig()
    by_region: dict[str, list[RegionScore]] = defaultdict(list)
    for score in region_scores:
        config.hand_units(score.region)  # unknown regions fail here, with the known list
        by_region[score.region].append(score)
    contributions = tuple(
        combine_photos(by_region[name], config) for name in config.regions if name in by_region
    )
    included = [c for c in contributions if c.in_t_vasi]
    face = next((c for c in contributions if c.region == config.face_region), None)
    missing = tuple(
        name for name in config.regions if name not in by_region and config.in_t_vasi(name)
    )
    return TotalScore(
        t_vasi=math.fsum(c.vasi for c in included),
        f_vasi=None if face is None else face.vasi,
        t_vasi_max=math.fsum(c.hand_units_region for c in included),
        contributions=contributions,
        regions_missing=missing,
        include_head_neck_in_t_vasi=config.include_head_neck_in_t_vasi,
    )
