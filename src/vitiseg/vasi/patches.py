"""Pure mask maths: binarising inputs, merging speckles into patches, snapping levels.

A patch's *extent* is its lesion pixels closed with a disk of the merge radius and then
restricted to visible skin. Closing fills pigment specks and notches narrower than the
disk but keeps pigmented islands larger than it outside the patch, so a ring of
depigmentation around normal skin stays a 100 % patch (a plain hole fill would not).
Two lesions separated by more than ``2 * radius`` pixels of other skin stay apart.

A model with a depigmented output gives the patch outline itself (the lesion mask, as
clinicians draw it) and the depigmented pixels inside it; the extent is then the closed
outline and the depigmented share is counted from the depigmented mask.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from skimage import measure

from vitiseg.vasi._records import JsonRecord


def binarize(mask: np.ndarray, threshold: float, name: str) -> np.ndarray:
    """Turn a mask or a probability map into a boolean mask.

    Args:
        mask: (H, W) bool or integer (non-zero = present), or float probabilities in [0, 1].
        threshold: Probabilities at or above it count as present.
        name: Used in error messages.

    Returns:
        (H, W) bool.
    """
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a (H, W) array, got shape {array.shape}")
    if array.dtype == bool:
        return array
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or array.min(initial=0) < 0 or array.max(initial=0) > 1:
            raise ValueError(f"{name}: probabilities must be finite and within [0, 1]")
        return array >= threshold
    if np.issubdtype(array.dtype, np.integer):
        return array != 0
    raise ValueError(f"{name}: unsupported dtype {array.dtype}")


def merge_radius(visible_px: int, radius_px: float | None, radius_fraction: float) -> float:
    """Merge radius in pixels: ``radius_px`` if given, else a share of the skin's size.

    Args:
        visible_px: Visible skin area in pixels.
        radius_px: Fixed radius in pixels, or None.
        radius_fraction: Fraction of the equivalent diameter ``sqrt(4 * visible_px / pi)``.
    """
    if radius_px is not None:
        return float(radius_px)
    return radius_fraction * math.sqrt(4.0 * visible_px / math.pi)


def close_with_disk(mask: np.ndarray, radius: float) -> np.ndarray:
    """Binary closing with the Euclidean disk ``{(dy, dx): dy² + dx² <= radius²}``.

    Done with two distance transforms, so the cost does not grow with the radius. Pixels
    outside the image count as background, so nothing is bridged across the image edge,
    and the result always contains ``mask``.

    Args:
        mask: (H, W) bool.
        radius: Disk radius in pixels; below 1 the mask is returned unchanged.

    Returns:
        (H, W) bool.
    """
    if radius < 1 or not mask.any():
        return mask.copy()
    pad = math.ceil(radius) + 1
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    # Closing never reaches further than the radius beyond the mask's bounding box.
    top, bottom = rows[0], rows[-1] + 1
    left, right = cols[0], cols[-1] + 1
    window = np.pad(mask[top:bottom, left:right], pad)
    dilated = ndimage.distance_transform_edt(~window) <= radius
    closed_window = ndimage.distance_transform_edt(dilated) > radius
    height, width = mask.shape
    y0, x0 = top - pad, left - pad
    # Keep the part of the padded window that lies inside the image.
    sy0, sx0 = max(0, -y0), max(0, -x0)
    sy1 = closed_window.shape[0] - max(0, y0 + closed_window.shape[0] - height)
    sx1 = closed_window.shape[1] - max(0, x0 + closed_window.shape[1] - width)
    closed = np.zeros_like(mask)
    closed[y0 + sy0 : y0 + sy1, x0 + sx0 : x0 + sx1] = closed_window[sy0:sy1, sx0:sx1]
    return closed | mask


def snap_level(share: float, levels: Sequence[float], cut_points: Sequence[float]) -> float | None:
    """Snap a depigmented share to a VASI level.

    Args:
        share: Depigmented pixels / extent pixels, in [0, 1].
        levels: Descending levels, e.g. (1.0, 0.9, 0.75, 0.5, 0.25, 0.1).
        cut_points: Descending lower bounds, one per level, e.g. the midpoints
            (0.95, 0.825, 0.625, 0.375, 0.175, 0.05).

    Returns:
        The first level whose cut point ``share`` reaches, or None when it is below all
        of them (the patch is dropped as noise).
    """
    for level, cut in zip(levels, cut_points, strict=True):
        if share >= cut:
            return float(level)
    return None


@dataclass(frozen=True)
class PatchExtent(JsonRecord):
    """One connected patch extent in pixel units, before scoring.

    Attributes:
        label: 1-based label in raster order.
        area_px: Extent area in pixels.
        lesion_px: Depigmented pixels inside the extent.
        bbox: (min_row, min_col, max_row, max_col), max exclusive.
        centroid: (row, col) of the extent in pixels.
    """

    label: int
    area_px: int
    lesion_px: int
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]

    @property
    def depigmented_share(self) -> float:
        return self.lesion_px / self.area_px


def patch_extents(
    lesion: np.ndarray, visible: np.ndarray, radius: float, **options: Any
) -> list[PatchExtent]:
    """Connected patch extents of the lesion mask within visible skin (arguments as
    :func:`labelled_patch_extents`)."""
    return labelled_patch_extents(lesion, visible, radius, **options)[1]


def labelled_patch_extents(
    lesion: np.ndarray,
    visible: np.ndarray,
    radius: float,
    connectivity: int = 2,
    depigmented: np.ndarray | None = None,
) -> tuple[np.ndarray, list[PatchExtent]]:
    """Connected patch extents of the lesion mask within visible skin, and their labels.

    Args:
        lesion: (H, W) bool, depigmented pixels, or the outlined patches when
            ``depigmented`` is given (already restricted to ``visible``).
        visible: (H, W) bool, visible skin.
        radius: Merge radius in pixels (see :func:`close_with_disk`).
        connectivity: 1 = 4-neighbours, 2 = 8-neighbours.
        depigmented: (H, W) bool, the depigmented pixels inside ``lesion``; None when
            ``lesion`` is itself the depigmented skin.

    Returns:
        (H, W) int label image (0 outside every extent; extent ``label`` elsewhere), and
        every extent, in raster order of their first pixel; none is dropped here.
    """
    if depigmented is None:
        depigmented = lesion
    elif depigmented.shape != lesion.shape:
        raise ValueError(f"depigmented shape {depigmented.shape} differs from {lesion.shape}")
    extent_mask = close_with_disk(lesion | depigmented, radius) & visible
    labels = measure.label(extent_mask, connectivity=connectivity)
    return labels, extents_of_labels(labels, depigmented)


def extents_of_labels(labels: np.ndarray, depigmented: np.ndarray) -> list[PatchExtent]:
    """The extent of every label present in a label image.

    Args:
        labels: (H, W) int label image, 0 outside every extent; labels need not be
            consecutive, and one label may cover pixels that do not touch.
        depigmented: (H, W) bool, the depigmented pixels (counted inside the extents only).

    Returns:
        One extent per label present, in increasing label order.
    """
    flat = labels.ravel()
    area = np.bincount(flat)
    present = np.flatnonzero(area[1:]) + 1
    if present.size == 0:
        return []
    inside = labels > 0
    lesion_count = np.bincount(flat, weights=(depigmented & inside).ravel(), minlength=area.size)
    centroids = ndimage.center_of_mass(inside, labels, present)
    boxes = ndimage.find_objects(labels)
    extents = []
    for label, centroid in zip(present.tolist(), centroids, strict=True):
        rows, cols = boxes[label - 1]
        extents.append(
            PatchExtent(
                label=label,
                area_px=int(area[label]),
                lesion_px=int(round(lesion_count[label])),
                bbox=(rows.start, cols.start, rows.stop, cols.stop),
                centroid=(float(centroid[0]), float(centroid[1])),
            )
        )
    return extents


def partition_by_reference(labels: np.ndarray, reference_labels: np.ndarray) -> np.ndarray:
    """Cut patch extents along another photo's patches (a follow-up along its baseline's).

    Two baseline patches that one follow-up extent bridges, or one baseline patch that
    falls into two follow-up extents, would otherwise be graded from one mixed share or
    two partial ones; cut along the baseline, each baseline patch is graded again from the
    pixels that continue it.

    Args:
        labels: (H, W) int label image of the extents to cut (0 = none).
        reference_labels: (H, W) int label image of the reference patches, in the same
            frame (0 = none).

    Returns:
        (H, W) int label image: each pixel of an extent that touches a reference patch
        takes the label of the nearest reference patch (so all the pixels continuing one
        reference patch share its label, touching or not); an extent touching none keeps a
        label of its own, above every reference label.
    """
    if labels.shape != reference_labels.shape:
        raise ValueError(f"label images differ in shape: {labels.shape}, {reference_labels.shape}")
    parts = np.zeros(labels.shape, np.int64)
    inside = labels > 0
    if not inside.any():
        return parts
    touching = np.unique(labels[inside & (reference_labels > 0)])
    continuing = np.isin(labels, touching) & inside
    if touching.size:
        # Index of the nearest reference pixel for every pixel (distance to label 0 pixels).
        nearest = ndimage.distance_transform_edt(
            reference_labels == 0, return_distances=False, return_indices=True
        )
        parts[continuing] = reference_labels[nearest[0][continuing], nearest[1][continuing]]
    own = inside & ~continuing
    if own.any():
        offset = int(reference_labels.max())
        _, renumbered = np.unique(labels[own], return_inverse=True)
        parts[own] = offset + 1 + renumbered.ravel()
    return parts


def largest_overlaps(labels: np.ndarray, other_labels: np.ndarray) -> dict[int, tuple[int, int]]:
    """For each label of ``labels``, the label of ``other_labels`` it shares most pixels
    with, and that pixel count (labels with no overlap are left out; 0 is background)."""
    if labels.shape != other_labels.shape:
        raise ValueError(f"label images differ in shape: {labels.shape}, {other_labels.shape}")
    both = (labels > 0) & (other_labels > 0)
    pairs, counts = np.unique(
        np.stack([labels[both], other_labels[both]]), axis=1, return_counts=True
    )
    best: dict[int, tuple[int, int]] = {}
    for (label, other), count in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        if count > best.get(label, (0, 0))[1]:
            best[label] = (other, count)
    return best
