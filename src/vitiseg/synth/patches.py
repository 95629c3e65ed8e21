"""Depigmented patches with a designed VASI level and an exact mask.

A patch is an irregular *extent* (its outline, restricted to skin). Inside it a share of
the pixels equal to the patch's VASI level is depigmented: every pixel for 1.0, all but
small perifollicular pigment specks for 0.9, pigment islands for 0.75, a fine half/half
mix for 0.5, depigmented islands for 0.25 and confetti specks for 0.1. The depigmented
pixels are chosen as the top ``round(level * extent_px)`` values of a random field, so the
share equals the level up to one pixel and always snaps to it.

Patches keep a gap of ``gap_px`` from each other, and all speck sizes and spacings are tied
to the skin's equivalent diameter ``sqrt(4 * skin_px / pi)``, so merging the lesion mask
with a disk of about 2 % of that diameter (what :mod:`vitiseg.vasi` does) recovers
each designed patch as one extent and no two patches merge.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vitiseg.synth.fields import (
    close_disk,
    disk,
    fill_holes,
    largest_component,
    rotated_coords,
    value_noise,
)
from vitiseg.vasi import VasiConfig

LEVELS: tuple[float, ...] = (1.0, 0.9, 0.75, 0.5, 0.25, 0.1)
CUT_POINTS: tuple[float, ...] = (0.95, 0.825, 0.625, 0.375, 0.175, 0.05)

# Extent radius as a fraction of the skin's equivalent diameter; speckled levels need a
# larger extent for their specks to read as one patch.
_RADIUS_FRACTION = (0.045, 0.19)
_RADIUS_FRACTION_SPECKLED = (0.11, 0.2)
_PLACEMENT_ATTEMPTS = 60
# Speckled fills that fall apart into two groups are redrawn this many times per place.
_FILL_ATTEMPTS = 4

log = logging.getLogger(__name__)


def level_band(level: float) -> tuple[float, float]:
    """(low, high) share band that snaps to ``level``: low inclusive, high exclusive (1.0: 1)."""
    index = LEVELS.index(level)
    high = 1.0 + 1e-9 if index == 0 else CUT_POINTS[index - 1]
    return CUT_POINTS[index], high


def snap_share(share: float) -> float | None:
    """The VASI level a depigmented share snaps to (cut points are midpoints), or None."""
    for level, cut in zip(LEVELS, CUT_POINTS, strict=True):
        if share >= cut:
            return level
    return None


def equivalent_diameter(area_px: float) -> float:
    """Diameter in pixels of the disk with ``area_px`` pixels."""
    return math.sqrt(4.0 * max(area_px, 1.0) / math.pi)


@dataclass(frozen=True)
class PatchTruth:
    """Designed truth of one patch.

    Attributes:
        level: Designed VASI level, one of :data:`LEVELS`.
        extent_px: Skin pixels inside the patch outline (pigment specks included).
        depigmented_px: Lesion pixels inside the outline.
        bbox: (row0, col0, row1, col1) of the extent, row1/col1 exclusive.
    """

    level: float
    extent_px: int
    depigmented_px: int
    bbox: tuple[int, int, int, int]

    @property
    def share(self) -> float:
        """Depigmented share of the extent, in [0, 1]."""
        return self.depigmented_px / self.extent_px

    def to_json(self) -> dict[str, object]:
        return {
            "extent_px": self.extent_px,
            "depigmented_px": self.depigmented_px,
            "level": self.level,
            "bbox": list(self.bbox),
        }


@dataclass(frozen=True)
class PatchLayout:
    """All patches of one image.

    Attributes:
        lesion: (H, W) bool, depigmented pixels (exactly ``strength >= 0.5``).
        strength: (H, W) float32 in [0, 1], depigmentation strength, feathered at borders.
        extent_labels: (H, W) int32, k > 0 inside patch k's extent (1-based, as ``patches``).
        pigment_specks: (H, W) bool, pigmented pixels inside extents (repigmentation).
        patches: Truth of each patch, in the order they were placed.
        gap_px: Minimum distance kept between extents, in pixels.
    """

    lesion: np.ndarray
    strength: np.ndarray
    extent_labels: np.ndarray
    pigment_specks: np.ndarray
    patches: tuple[PatchTruth, ...]
    gap_px: int


def choose_levels(rng: np.random.Generator, count: int, first_level: float) -> list[float]:
    """``first_level`` then ``count - 1`` levels drawn uniformly from :data:`LEVELS`."""
    rest = rng.choice(len(LEVELS), size=max(count - 1, 0))
    return [first_level] + [LEVELS[int(i)] for i in rest]


def _irregular_outline(
    rng: np.random.Generator, shape: tuple[int, int], center: tuple[float, float], radius: float
) -> np.ndarray:
    """(h, w) bool blob: a rotated ellipse whose border is pushed by smooth noise."""
    aspect = rng.uniform(1.0, 1.8)
    u, v = rotated_coords(shape, center, rng.uniform(0, math.pi))
    semi_a = radius * math.sqrt(aspect)
    semi_b = radius / math.sqrt(aspect)
    distance = np.sqrt((u / semi_a) ** 2 + (v / semi_b) ** 2)
    # Coarse noise makes lobes and bays (geographic borders), fine noise scallops them.
    border = 0.3 * value_noise(rng, shape, radius * 0.7, octaves=2, persistence=0.45)
    border += 0.07 * value_noise(rng, shape, max(radius * 0.15, 2.0), octaves=1)
    blob = (1.0 - distance + border) > 0
    return fill_holes(largest_component(blob))


def _outline_points(extent: np.ndarray, inset_px: int, spacing_px: float) -> np.ndarray:
    """(K, 2) int (row, col) points every ``spacing_px`` along the extent's inset outline."""
    inner = cv2.erode(extent.astype(np.uint8), disk(inset_px)) if inset_px > 0 else extent
    contours, _ = cv2.findContours(
        np.ascontiguousarray(inner, dtype=np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    points = []
    step = max(1, round(spacing_px))
    for contour in contours:
        xy = contour[:, 0, :]
        points.append(xy[::step, ::-1])
    if not points:
        return np.zeros((0, 2), dtype=np.int64)
    return np.concatenate(points).astype(np.int64)


def _speck_field(
    rng: np.random.Generator,
    extent: np.ndarray,
    spacing_px: float,
    radius_px: float,
    along_outline: bool,
) -> np.ndarray:
    """(h, w) float32 with equal round peaks on a jittered grid (and along the outline).

    A jittered grid (not Poisson points) keeps neighbouring specks at most about 1.6
    spacings apart, so a disk closing of a few spacings always joins them; equal peak
    heights make a quantile threshold give every speck about the same size.
    """
    height, width = extent.shape
    offset = rng.uniform(0, spacing_px, 2)
    rows = np.arange(offset[0], height, spacing_px)
    cols = np.arange(offset[1], width, spacing_px)
    grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)
    grid = grid + rng.uniform(-0.3, 0.3, grid.shape) * spacing_px
    grid = np.clip(np.round(grid), 0, [height - 1, width - 1]).astype(np.int64)
    if along_outline:
        # Specks on the outline make a later closing recover the whole outline; grid
        # points right next to them would fuse into one big speck, so they are dropped.
        outline = _outline_points(extent, max(1, round(radius_px)), 0.9 * spacing_px)
        if len(outline):
            # Jitter them too, or they read as a dotted line drawn around the patch.
            outline = outline + np.round(rng.uniform(-0.25, 0.25, outline.shape) * spacing_px)
            outline = np.clip(outline, 0, [height - 1, width - 1]).astype(np.int64)
            outline = outline[extent[outline[:, 0], outline[:, 1]]]
            marks = np.ones(extent.shape, dtype=np.uint8)
            marks[outline[:, 0], outline[:, 1]] = 0
            clearance = cv2.distanceTransform(marks, cv2.DIST_L2, 3)
            grid = grid[clearance[grid[:, 0], grid[:, 1]] > 0.5 * spacing_px]
            grid = np.concatenate([grid, outline])
    impulses = np.zeros(extent.shape, dtype=np.float32)
    np.add.at(impulses, (grid[:, 0], grid[:, 1]), rng.uniform(0.95, 1.05, len(grid)))
    field = cv2.GaussianBlur(impulses, (0, 0), max(radius_px, 0.7))
    # A little noise makes speck borders irregular instead of perfect discs.
    noise = value_noise(rng, extent.shape, max(radius_px, 1.0), octaves=1)
    return field + 0.1 * float(field.max()) * noise


def _depigmentation_field(
    rng: np.random.Generator, extent: np.ndarray, level: float, merge_px: float
) -> np.ndarray:
    """(h, w) float32 ranking field: the highest values become depigmented.

    Sizes follow ``merge_px`` (the disk radius that later groups specks into patches):
    pigment specks and islands stay narrower than that disk, so closing fills them;
    depigmented specks stay closer together than its diameter, so closing joins them.
    """
    if level >= 0.85:  # perifollicular pigment specks
        spacing = max(7.0, 1.5 * merge_px)
        return -_speck_field(rng, extent, spacing, 0.18 * spacing, along_outline=False)
    if level >= 0.7:  # pigment islands
        spacing = max(7.0, 1.8 * merge_px)
        return -_speck_field(rng, extent, spacing, 0.28 * spacing, along_outline=False)
    if level >= 0.4:  # finely mixed half/half
        return value_noise(rng, extent.shape, max(1.5, 0.4 * merge_px), octaves=2)
    if level >= 0.2:  # depigmented islands
        spacing = max(5.0, 1.4 * merge_px)
        return _speck_field(rng, extent, spacing, 0.28 * spacing, along_outline=True)
    spacing = max(4.0, 1.2 * merge_px)  # confetti specks
    return _speck_field(rng, extent, spacing, 0.18 * spacing, along_outline=True)


def fill_level(
    rng: np.random.Generator, extent: np.ndarray, level: float, merge_px: float
) -> np.ndarray:
    """Depigmented pixels of one extent, ``round(level * extent.sum())`` of them.

    Args:
        rng: Random source.
        extent: (h, w) bool extent of the patch.
        level: Designed VASI level, one of :data:`LEVELS`.
        merge_px: Radius in pixels of the disk that groups specks into one patch.

    Returns:
        (h, w) bool, a subset of ``extent``.
    """
    total = int(extent.sum())
    target = int(round(level * total))
    if target >= total:
        return extent.copy()
    depigmented = np.zeros_like(extent)
    candidates = extent.copy()
    if level >= 0.5:
        # A depigmented rim keeps the outline closed, as around real repigmenting patches.
        rim = extent & ~cv2.erode(extent.astype(np.uint8), disk(1)).astype(bool)
        if rim.sum() < target:
            depigmented |= rim
            candidates &= ~rim
    remaining = target - int(depigmented.sum())
    field = _depigmentation_field(rng, extent, level, merge_px)
    index = np.flatnonzero(candidates)
    order = np.argsort(-field.ravel()[index], kind="stable")[:remaining]
    depigmented.ravel()[index[order]] = True
    return depigmented


def groups_as_designed(
    depigmented: np.ndarray, skin: np.ndarray, merge_px: float, level: float
) -> bool:
    """Whether grouping by a ``merge_px`` disk makes one patch that snaps to ``level``.

    Args:
        depigmented: (h, w) bool lesion pixels of one patch.
        skin: (h, w) bool skin in the same window.
        merge_px: Radius of the grouping disk in pixels.
        level: Designed VASI level.
    """
    group = close_disk(depigmented, merge_px) & skin
    count, _ = cv2.connectedComponents(group.astype(np.uint8), connectivity=8)
    return count == 2 and snap_share(depigmented.sum() / group.sum()) == level


def _closed_extent(
    outline: np.ndarray, skin: np.ndarray, smooth_px: float, merge_px: float
) -> np.ndarray:
    """The outline as an extent that grouping by a ``merge_px`` disk leaves unchanged.

    The outline is restricted to skin, smoothed by a closing with a ``smooth_px`` disk,
    and then closed with the ``merge_px`` disk until that changes nothing (closing is
    idempotent; only the restriction to skin needs a second round now and then).
    """
    extent = largest_component(outline & skin)
    # The smoothing need not be exact: OpenCV's closing on a padded window is quicker.
    pad = math.ceil(smooth_px) + 1
    padded = np.pad(extent.astype(np.uint8), pad)
    smoothed = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, disk(smooth_px))[pad:-pad, pad:-pad]
    extent = fill_holes(largest_component(smoothed.astype(bool) & skin)) & skin
    for _ in range(4):
        closed = fill_holes(largest_component(close_disk(extent, merge_px) & skin)) & skin
        if np.array_equal(closed, extent):
            break
        extent = closed
    return extent


def design_patches(
    rng: np.random.Generator,
    skin: np.ndarray,
    levels: Sequence[float],
    feather_px: float = 0.8,
) -> PatchLayout:
    """Place non-touching irregular patches on skin and fill each to its level.

    Args:
        rng: Random source.
        skin: (H, W) bool skin mask; extents are restricted to it.
        levels: Designed level of each patch to place, in placement order. A patch that
            finds no room after many tries is left out (the first one shrinks until it fits).
            Every placed patch groups as one under a closing with the 2 % merge disk, with
            a share that snaps to its level (see :func:`groups_as_designed`).
        feather_px: Gaussian sigma of the soft border of the depigmentation, in pixels.

    Returns:
        The layout; ``lesion`` is a subset of ``skin``.
    """
    height, width = skin.shape
    skin_px = int(skin.sum())
    diameter = equivalent_diameter(skin_px)
    # vitiseg.vasi groups specks with a disk whose radius is a share of the skin's diameter
    # (read from its defaults, so the two cannot drift apart). Extents are
    # closed with a slightly larger disk, so that grouping never adds pixels to them, and
    # are kept three such radii apart, so that it never joins two of them.
    merge_px = VasiConfig().merge_radius_fraction * diameter
    closing_px = 1.25 * merge_px
    gap_px = max(8, math.ceil(3 * merge_px))
    min_extent_px = max(40, round(0.0015 * skin_px))
    skin_u8 = skin.astype(np.uint8)
    depth = cv2.distanceTransform(skin_u8, cv2.DIST_L2, 3)
    forbidden = np.zeros_like(skin)
    lesion = np.zeros_like(skin)
    strength = np.zeros(skin.shape, dtype=np.float32)
    labels = np.zeros(skin.shape, dtype=np.int32)
    specks = np.zeros_like(skin)
    patches: list[PatchTruth] = []
    for position, level in enumerate(levels):
        low, high = _RADIUS_FRACTION_SPECKLED if level < 0.5 else _RADIUS_FRACTION
        placed = None
        for attempt in range(_PLACEMENT_ATTEMPTS):
            shrink = 0.96**attempt if position == 0 else 1.0
            radius = diameter * math.exp(rng.uniform(math.log(low), math.log(high))) * shrink
            allowed = (depth > min(0.3 * radius, 0.8 * float(depth.max()))) & ~forbidden
            choices = np.flatnonzero(allowed)
            if choices.size == 0:
                continue
            flat = int(choices[rng.integers(choices.size)])
            row, col = divmod(flat, width)
            half = math.ceil(1.7 * radius + closing_px) + 2
            r0, r1 = max(0, row - half), min(height, row + half + 1)
            c0, c1 = max(0, col - half), min(width, col + half + 1)
            window_skin = skin[r0:r1, c0:c1]
            outline = _irregular_outline(rng, (r1 - r0, c1 - c0), (col - c0, row - r0), radius)
            # Cheap rejections first: closing only ever adds pixels.
            raw = outline & window_skin
            if raw.sum() < min_extent_px or (raw & forbidden[r0:r1, c0:c1]).any():
                continue
            extent = _closed_extent(outline, window_skin, closing_px, merge_px)
            if extent.sum() < min_extent_px or (extent & forbidden[r0:r1, c0:c1]).any():
                continue
            # Speckled fills of small or narrow extents can fall apart into several
            # groups; redraw the specks a few times, then try another place.
            for _ in range(_FILL_ATTEMPTS):
                depigmented = fill_level(rng, extent, level, merge_px)
                if groups_as_designed(depigmented, window_skin, merge_px, level):
                    # The truth is the extent VASI's grouping sees: sparse specks do not
                    # reach the drawn outline, so their group is smaller than it.
                    grouped = close_disk(depigmented, merge_px) & window_skin
                    placed = (r0, r1, c0, c1, grouped, depigmented)
                    break
            if placed is not None:
                break
        if placed is None:
            log.debug("no room for a %.2f patch; left out", level)
            continue
        r0, r1, c0, c1, extent, depigmented = placed
        # Pad the window so the feathering and the gap can spread past the extent.
        pad = gap_px + 2
        p0, p1 = max(0, r0 - pad), min(height, r1 + pad)
        q0, q1 = max(0, c0 - pad), min(width, c1 + pad)
        window_extent = np.zeros((p1 - p0, q1 - q0), dtype=bool)
        window_extent[r0 - p0 : r1 - p0, c0 - q0 : c1 - q0] = extent
        window_lesion = np.zeros_like(window_extent)
        window_lesion[r0 - p0 : r1 - p0, c0 - q0 : c1 - q0] = depigmented
        soft = cv2.GaussianBlur(window_lesion.astype(np.float32), (0, 0), feather_px)
        # Strength >= 0.5 exactly on the designed pixels, so mask == (strength >= 0.5).
        soft = np.where(window_lesion, np.maximum(soft, 0.5), np.minimum(soft, 0.49))
        soft *= skin[p0:p1, q0:q1]
        strength[p0:p1, q0:q1] = np.maximum(strength[p0:p1, q0:q1], soft)
        lesion[p0:p1, q0:q1] |= window_lesion
        specks[p0:p1, q0:q1] |= window_extent & ~window_lesion
        labels[p0:p1, q0:q1][window_extent] = len(patches) + 1
        grown = cv2.dilate(window_extent.astype(np.uint8), disk(gap_px)).astype(bool)
        forbidden[p0:p1, q0:q1] |= grown
        rows = np.flatnonzero(window_extent.any(axis=1))
        cols = np.flatnonzero(window_extent.any(axis=0))
        patches.append(
            PatchTruth(
                level=float(level),
                extent_px=int(extent.sum()),
                depigmented_px=int(depigmented.sum()),
                bbox=(
                    int(p0 + rows[0]),
                    int(q0 + cols[0]),
                    int(p0 + rows[-1] + 1),
                    int(q0 + cols[-1] + 1),
                ),
            )
        )
    return PatchLayout(
        lesion=lesion,
        strength=strength,
        extent_labels=labels,
        pigment_specks=specks,
        patches=tuple(patches),
        gap_px=gap_px,
    )
