"""Two photos of one region: align, segment, compare, and write every output.

The segmentation model is passed in as a function (``segment(rgb) -> (skin, lesion)``, or
``(skin, lesion, depigmented)`` for a model with a depigmented output), so this module
needs no torch and tests can inject masks.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from vitiseg.compare.align import (
    Alignment,
    AlignSettings,
    align_images,
    common_area,
    identity_alignment,
    warp_to_baseline,
)
from vitiseg.compare.change import Comparison, compare_masks
from vitiseg.compare.lighting import (
    LightingChange,
    lighting_change,
    lighting_note,
    matched_lighting_change,
    normal_skin_colour,
    rebalanced,
    unrestorable_share,
    worth_rebalancing,
)
from vitiseg.compare.panels import blink_gif, change_map_image, checkerboard, side_by_side
from vitiseg.compare.retake import RetakeNoise
from vitiseg.io.atomic import (
    write_bytes_atomic,
    write_jpeg_atomic,
    write_json_atomic,
    write_png_atomic,
    write_text_atomic,
)
from vitiseg.io.tables import csv_text
from vitiseg.quality import FLAG_DESCRIPTIONS, QualityConfig, assess_quality
from vitiseg.vasi import VasiConfig

logger = logging.getLogger(__name__)

Segmenter = Callable[[np.ndarray], tuple[np.ndarray, ...]]
# (baseline photo, follow-up warped into the baseline frame) -> the follow-up's masks,
# segmented against the baseline (vitiseg.inference.paired.HoldingSegmenter).
FollowupSegmenter = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]
AlignMethod = Literal["features", "none"]

# The change areas (vitiseg.compare.change.ChangeAreas), empty when no change map was made.
AREA_COLUMNS = (
    "repigmented_px",
    "new_px",
    "stable_px",
    "compared_px",
    "repigmented_cm2",
    "new_cm2",
    "stable_cm2",
    "repigmented_share",
)
# Flat columns of comparison.csv (manifest mode puts patient_id first).
COMPARISON_COLUMNS = (
    "region",
    "baseline_image",
    "followup_image",
    "baseline_vasi",
    "followup_vasi",
    "change",
    "improvement",
    "area_improvement",
    "vasi50",
    "vasi75",
    "vasi90",
    "below_detectable_change",
    "scored_within",
    *AREA_COLUMNS,
    "alignment_reliable",
    "alignment_reason",
    "alignment_method",
    "alignment_inliers",
    "alignment_inlier_ratio",
    "alignment_reprojection_error_px",
    "alignment_ecc_correlation",
    "alignment_overlap",
    "lighting_exposure",
    "lighting_red_blue",
    "lighting_rebalanced",
    "lighting_clipped_share",
    "followup_levels_held",
    "retake_share",
    "notes",
)


@dataclass(frozen=True, eq=False)
class PairResult:
    """A compared photo pair.

    Attributes:
        comparison: Scores, response, change map and alignment.
        aligned_followup: (H, W, 3) uint8 RGB follow-up in the baseline frame (black outside
            its field of view); None when the alignment was unreliable.
        lighting: How the normal skin's exposure and red/blue balance moved between the
            photos; None when either photo shows too little normal skin.
    """

    comparison: Comparison
    aligned_followup: np.ndarray | None
    lighting: LightingChange | None = None


def align_photos(
    baseline_rgb: np.ndarray,
    followup_rgb: np.ndarray,
    method: AlignMethod = "features",
    settings: AlignSettings | None = None,
) -> Alignment:
    """Feature-based alignment, or the identity for photos already registered."""
    if method == "none":
        return identity_alignment(baseline_rgb.shape[:2], followup_rgb.shape[:2])
    if method != "features":
        raise ValueError(f"align method: 'features' or 'none', got {method!r}")
    return align_images(baseline_rgb, followup_rgb, settings)


def segment_photo(
    segment: Segmenter, rgb: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(skin, lesion, depigmented or None) from a segmenter of either form."""
    masks = segment(rgb)
    if len(masks) == 2:
        return masks[0], masks[1], None
    skin, lesion, depigmented = masks
    return skin, lesion, depigmented


def compare_photos(
    baseline_rgb: np.ndarray,
    followup_rgb: np.ndarray,
    segment: Segmenter,
    region: str,
    *,
    align_method: AlignMethod = "features",
    align_settings: AlignSettings | None = None,
    pixels_per_cm: float | None = None,
    followup_pixels_per_cm: float | None = None,
    body_surface_cm2: float | None = None,
    tolerance_px: int = 0,
    config: VasiConfig | None = None,
    quality: QualityConfig | None = None,
    match_lighting: bool = False,
    segment_aligned: bool = False,
    segment_followup: FollowupSegmenter | None = None,
    hold_levels_within: float | None = None,
    follow_baseline_patches: bool = False,
    retake_noise: RetakeNoise | None = None,
) -> PairResult:
    """Align the follow-up to the baseline, segment both and compare them.

    A photo whose skin the model measures as light gets a note: the default model misses
    many lesions there, so the change between visits needs a look (``light_skin`` flag).

    Args:
        baseline_rgb: (H, W, 3) uint8 baseline photo.
        followup_rgb: (H', W', 3) uint8 follow-up photo.
        segment: Photo -> (skin, lesion) (H, W) bool masks, e.g. a predictor's
            ``lambda rgb: predictor.masks(predictor.predict(rgb), rgb)``, or (skin, lesion,
            depigmented) from a model with a depigmented output.
        region: VASI region name.
        align_method: ``"features"`` or ``"none"`` (photos already registered).
        align_settings: Alignment settings; None for the defaults.
        pixels_per_cm, followup_pixels_per_cm, body_surface_cm2, tolerance_px, config:
            As for :func:`vitiseg.compare.change.compare_masks`.
        quality: Thresholds of the quality flags; None for the defaults.
        match_lighting: When the photos are aligned and the follow-up's normal skin differs
            in colour from the baseline's, segment the follow-up again re-balanced channel
            by channel to the baseline's normal skin, and compare those masks (the photos
            written out stay as taken).
        segment_aligned: When the photos are aligned, segment the follow-up warped into
            the baseline frame, so the network sees both visits framed alike, instead of
            segmenting it as taken and warping its masks.
        segment_followup: Used instead of ``segment`` for a follow-up segmented in the
            baseline frame (``segment_aligned`` and a reliable alignment), given the
            baseline photo too, e.g. a :class:`~vitiseg.inference.paired.HoldingSegmenter`
            that keeps the baseline's call where the network's probability barely moved.
        hold_levels_within, follow_baseline_patches: As for
            :func:`vitiseg.compare.change.compare_masks`.
        retake_noise: The model's comparisons of photos with no change (its folder's
            ``evaluation.retake_noise``, measured with these settings): the comparison,
            when aligned, gets the share of them that moved as much (``retake_share``),
            and a note when that share reaches ``quality.max_retake_noise_share``.
    """
    alignment = align_photos(baseline_rgb, followup_rgb, align_method, align_settings)
    baseline_masks = segment_photo(segment, baseline_rgb)
    # Same condition as compare_masks' change map.
    aligned_ok = alignment.reliable and alignment.homography is not None
    aligned = warp_to_baseline(followup_rgb, alignment) if aligned_ok else None
    in_baseline_frame = segment_aligned and aligned is not None
    followup_seen = aligned if in_baseline_frame else followup_rgb

    def segment_followup_photo(rgb: np.ndarray) -> tuple:
        if in_baseline_frame and segment_followup is not None:
            return segment_photo(lambda photo: segment_followup(baseline_rgb, photo), rgb)
        return segment_photo(segment, rgb)

    followup_masks = segment_followup_photo(followup_seen)
    baseline_visit = (baseline_rgb, *baseline_masks[:2])
    followup_visit = (followup_seen, *followup_masks[:2])
    lighting = _lighting(baseline_visit, followup_visit, alignment, aligned, in_baseline_frame)
    segmented_followup = followup_seen
    if match_lighting and lighting and lighting.pixel_matched and worth_rebalancing(lighting):
        segmented_followup = rebalanced(followup_seen, lighting)
        followup_masks = segment_followup_photo(segmented_followup)
        clipped = unrestorable_share(followup_seen, followup_masks[0], lighting)
        lighting = dataclasses.replace(lighting, rebalanced=True, clipped_share=clipped)
    comparison = compare_masks(
        *baseline_masks[:2],
        *followup_masks[:2],
        alignment,
        region,
        pixels_per_cm=pixels_per_cm,
        followup_pixels_per_cm=followup_pixels_per_cm,
        body_surface_cm2=body_surface_cm2,
        tolerance_px=tolerance_px,
        config=config,
        baseline_depigmented=baseline_masks[2],
        followup_depigmented=followup_masks[2],
        followup_in_baseline_frame=in_baseline_frame,
        hold_levels_within=hold_levels_within,
        follow_baseline_patches=follow_baseline_patches,
    )
    visits = (
        ("baseline photo", baseline_rgb, baseline_masks),
        ("follow-up photo", segmented_followup, followup_masks),
    )
    light_skin_notes = [
        light_skin_note(label, rgb, masks[0], masks[1], quality) for label, rgb, masks in visits
    ]
    quality = quality or QualityConfig()
    lighting_text = lighting and lighting_note(
        lighting, quality.max_lighting_change, quality.max_rebalance_clipped_share
    )
    extra_notes = [note for note in (lighting_text, *light_skin_notes) if note]
    improvement = comparison.response.improvement
    if retake_noise and comparison.scored_within == "common_area" and improvement is not None:
        share = retake_noise.share_at_least(improvement)
        comparison = dataclasses.replace(comparison, retake_share=share)
        if share >= quality.max_retake_noise_share:
            extra_notes.append(retake_noise.note(improvement, share))
    if extra_notes:
        comparison = dataclasses.replace(comparison, notes=(*comparison.notes, *extra_notes))
    return PairResult(comparison=comparison, aligned_followup=aligned, lighting=lighting)


def _lighting(
    baseline: tuple[np.ndarray, np.ndarray, np.ndarray],
    followup: tuple[np.ndarray, np.ndarray, np.ndarray],
    alignment: Alignment,
    aligned_followup: np.ndarray | None,
    followup_in_baseline_frame: bool = False,
) -> LightingChange | None:
    """Pixel-matched on the normal skin both photos show when they are aligned; else (or
    with too little such skin) from each photo's own normal skin. Each visit is (photo,
    skin, lesion); the follow-up's masks are in its own frame unless
    ``followup_in_baseline_frame``."""
    (base_rgb, base_skin, base_lesion), (_, follow_skin, follow_lesion) = baseline, followup
    if aligned_followup is not None:
        normal_followup = follow_skin & ~follow_lesion
        if not followup_in_baseline_frame:
            normal_followup = warp_to_baseline(normal_followup, alignment, nearest=True)
        normal_in_both = base_skin & ~base_lesion & normal_followup & common_area(alignment)
        matched = matched_lighting_change(base_rgb, aligned_followup, normal_in_both)
        if matched is not None:
            return matched
    colours = [normal_skin_colour(*visit) for visit in (baseline, followup)]
    return None if any(c is None for c in colours) else lighting_change(*colours)


def light_skin_note(
    label: str,
    rgb: np.ndarray,
    skin: np.ndarray,
    lesion: np.ndarray,
    quality: QualityConfig | None = None,
) -> str | None:
    """``"<label>: light skin ..."`` when the photo raises the ``light_skin`` flag, else None.

    The default model misses many lesions on light skin, so a change measured there needs a
    look before it is believed.
    """
    if "light_skin" in assess_quality(rgb, skin, config=quality, lesion=lesion).flags:
        return f"{label}: {FLAG_DESCRIPTIONS['light_skin']}"
    return None


def comparison_row(
    comparison: Comparison, lighting: LightingChange | None = None, **identifiers: Any
) -> dict[str, Any]:
    """One flat CSV row (``COMPARISON_COLUMNS`` plus any identifiers given, first)."""
    result = comparison.response
    areas = comparison.areas
    alignment = comparison.alignment
    row: dict[str, Any] = {
        **identifiers,
        "region": comparison.region,
        "baseline_vasi": comparison.baseline.vasi,
        "followup_vasi": comparison.followup.vasi,
        "change": result.change,
        "improvement": result.improvement,
        "area_improvement": comparison.area_improvement,
        "vasi50": result.vasi50,
        "vasi75": result.vasi75,
        "vasi90": result.vasi90,
        "below_detectable_change": result.below_detectable_change,
        "scored_within": comparison.scored_within,
        "alignment_reliable": alignment.reliable,
        "alignment_reason": alignment.reason,
        "alignment_method": alignment.method,
        "alignment_inliers": alignment.inliers,
        "alignment_inlier_ratio": alignment.inlier_ratio,
        "alignment_reprojection_error_px": alignment.reprojection_error_px,
        "alignment_ecc_correlation": alignment.ecc_correlation,
        "alignment_overlap": alignment.overlap,
        "lighting_exposure": None if lighting is None else lighting.exposure,
        "lighting_red_blue": None if lighting is None else lighting.red_blue,
        "lighting_rebalanced": None if lighting is None else lighting.rebalanced,
        "lighting_clipped_share": None if lighting is None else lighting.clipped_share,
        "followup_levels_held": comparison.followup_levels_held,
        "retake_share": comparison.retake_share,
        "notes": " | ".join(comparison.notes),
    }
    for name in AREA_COLUMNS:
        row[name] = None if areas is None else getattr(areas, name)
    return row


def write_pair_outputs(
    out_dir: str | Path,
    result: PairResult,
    baseline_rgb: np.ndarray,
    followup_rgb: np.ndarray,
    *,
    identifiers: Mapping[str, Any] | None = None,
    panels: bool = True,
    panel_max_side: int = 1024,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Write a pair's files into ``out_dir`` and return them by kind (names relative to it).

    Always ``comparison.json``, ``comparison.csv`` and ``side_by_side.jpg`` (with a warning
    banner when the alignment is unreliable). With a reliable alignment also
    ``aligned_followup.jpg``, ``change_map.png`` (colour, legend), ``change_labels.png``
    (raw :class:`~vitiseg.compare.change.ChangeClass` values), ``blink.gif`` and
    ``alignment_check.jpg`` (checkerboard of baseline and aligned follow-up).

    Args:
        out_dir: Folder to write into (created).
        result: From :func:`compare_photos`.
        baseline_rgb: (H, W, 3) uint8 baseline photo.
        followup_rgb: (H', W', 3) uint8 follow-up photo.
        identifiers: Extra leading fields for the JSON and CSV (e.g. image paths).
        panels: Write the picture files (JSON and CSV are always written).
        panel_max_side: Pictures are shrunk to this long side.
        provenance: What made the comparison (disclaimer, model, settings), written as
            ``provenance`` in the JSON.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    comparison = result.comparison
    identifiers = dict(identifiers or {})
    files: dict[str, str] = {}
    if panels:
        files.update(_write_pictures(out_dir, result, baseline_rgb, followup_rgb, panel_max_side))
    row = comparison_row(comparison, result.lighting, **identifiers)
    columns = [*[key for key in identifiers if key not in COMPARISON_COLUMNS], *COMPARISON_COLUMNS]
    write_text_atomic(out_dir / "comparison.csv", csv_text([row], columns))
    files["csv"] = "comparison.csv"
    files["json"] = "comparison.json"
    write_json_atomic(
        out_dir / "comparison.json",
        {
            **identifiers,
            **comparison.to_dict(),
            "lighting": None if result.lighting is None else result.lighting.to_dict(),
            "files": files,
            **({"provenance": dict(provenance)} if provenance else {}),
        },
    )
    return files


def _write_pictures(
    out_dir: Path,
    result: PairResult,
    baseline_rgb: np.ndarray,
    followup_rgb: np.ndarray,
    max_side: int,
) -> dict[str, str]:
    comparison = result.comparison
    files: dict[str, str] = {}
    baseline_small = _shrink(baseline_rgb, max_side)
    if result.aligned_followup is None or comparison.labels is None:
        panel = side_by_side(
            [baseline_small, _shrink(followup_rgb, max_side)],
            ["baseline", "follow-up"],
            banner=f"NOT ALIGNED: {comparison.alignment.reason}",
        )
        write_jpeg_atomic(out_dir / "side_by_side.jpg", panel)
        files["side_by_side"] = "side_by_side.jpg"
        return files

    height, width = baseline_small.shape[:2]
    aligned_small = cv2.resize(
        result.aligned_followup, (width, height), interpolation=cv2.INTER_AREA
    )
    labels_small = cv2.resize(
        comparison.labels, (width, height), interpolation=cv2.INTER_NEAREST_EXACT
    )
    change_map = change_map_image(labels_small, baseline_small, areas=comparison.areas)
    write_jpeg_atomic(out_dir / "aligned_followup.jpg", result.aligned_followup)
    write_png_atomic(out_dir / "change_labels.png", comparison.labels)
    write_png_atomic(out_dir / "change_map.png", change_map)
    response = comparison.response
    improvement = "n/a" if response.improvement is None else f"{100 * response.improvement:+.0f}%"
    panel = side_by_side(
        [baseline_small, aligned_small, change_map[:height]],
        [
            f"baseline VASI {comparison.baseline.vasi:.2f}",
            f"follow-up VASI {comparison.followup.vasi:.2f}",
            f"change (improvement {improvement})",
        ],
    )
    write_jpeg_atomic(
        out_dir / "side_by_side.jpg",
        np.vstack([panel, _pad_width(change_map[height:], panel.shape[1])]),
    )
    write_bytes_atomic(
        out_dir / "blink.gif",
        blink_gif([baseline_small, aligned_small], ["baseline", "follow-up (aligned)"]),
    )
    write_jpeg_atomic(out_dir / "alignment_check.jpg", checkerboard(baseline_small, aligned_small))
    files.update(
        aligned_followup="aligned_followup.jpg",
        change_labels="change_labels.png",
        change_map="change_map.png",
        side_by_side="side_by_side.jpg",
        blink="blink.gif",
        alignment_check="alignment_check.jpg",
    )
    return files


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _pad_width(image: np.ndarray, width: int) -> np.ndarray:
    if image.shape[1] >= width:
        return image[:, :width]
    pad = np.full((image.shape[0], width - image.shape[1], 3), 255, np.uint8)
    return np.hstack([image, pad])
