"""Random fields and shape helpers shared by the generators (all vectorised, all seeded).

Every function takes a :class:`numpy.random.Generator`; nothing reads global random state,
so a case's pixels depend only on the generator it is given.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage


def value_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    scale_px: float,
    octaves: int = 1,
    persistence: float = 0.5,
) -> np.ndarray:
    """Smooth noise: bicubic upsampling of coarse white noise, summed over octaves.

    Args:
        rng: Random source.
        shape: (H, W) of the output.
        scale_px: Feature size of the first octave in pixels (each next octave halves it).
        octaves: Number of octaves.
        persistence: Amplitude ratio between successive octaves.

    Returns:
        (H, W) float32 with zero mean and unit standard deviation.
    """
    height, width = shape
    total = np.zeros(shape, dtype=np.float32)
    amplitude = 1.0
    scale = float(scale_px)
    for _ in range(octaves):
        grid_h = max(2, math.ceil(height / max(scale, 1.0)) + 3)
        grid_w = max(2, math.ceil(width / max(scale, 1.0)) + 3)
        coarse = rng.standard_normal((grid_h, grid_w)).astype(np.float32)
        # Upsample a slightly larger grid and crop, so the border cells are not stretched.
        up_h = round(grid_h * max(scale, 1.0))
        up_w = round(grid_w * max(scale, 1.0))
        fine = cv2.resize(coarse, (up_w, up_h), interpolation=cv2.INTER_CUBIC)
        top = (up_h - height) // 2
        left = (up_w - width) // 2
        total += amplitude * fine[top : top + height, left : left + width]
        amplitude *= persistence
        scale /= 2.0
    total -= total.mean()
    std = float(total.std())
    return total / std if std > 0 else total


def dot_field(
    rng: np.random.Generator,
    shape: tuple[int, int],
    spacing_px: float,
    radius_px: float,
    extra_points: np.ndarray | None = None,
) -> np.ndarray:
    """Peaks at random dots: impulses of random strength blurred by a Gaussian.

    Thresholding it at a high quantile gives round specks about ``radius_px`` across,
    about ``spacing_px`` apart (follicles, confetti).

    Args:
        rng: Random source.
        shape: (H, W) of the output.
        spacing_px: Mean distance between dots.
        radius_px: Gaussian sigma of a dot in pixels.
        extra_points: Optional (K, 2) int (row, col) dots to add (e.g. along an outline).

    Returns:
        (H, W) float32, >= 0.
    """
    height, width = shape
    count = max(1, round(height * width / max(spacing_px, 1.0) ** 2))
    rows = rng.integers(0, height, count)
    cols = rng.integers(0, width, count)
    impulses = np.zeros(shape, dtype=np.float32)
    np.add.at(impulses, (rows, cols), rng.uniform(0.6, 1.4, count).astype(np.float32))
    if extra_points is not None and len(extra_points):
        strengths = rng.uniform(0.9, 1.4, len(extra_points)).astype(np.float32)
        np.add.at(impulses, (extra_points[:, 0], extra_points[:, 1]), strengths)
    return cv2.GaussianBlur(impulses, (0, 0), max(radius_px, 0.5)) * (radius_px**2)


def rotated_coords(
    shape: tuple[int, int], center: tuple[float, float], angle_rad: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates in a frame centred at ``center`` (x, y) and rotated by ``angle_rad``.

    Returns:
        (u, v): two (H, W) float32 arrays, u along the rotated x axis.
    """
    height, width = shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x -= center[0]
    y -= center[1]
    cos, sin = math.cos(angle_rad), math.sin(angle_rad)
    return (x * cos + y * sin), (-x * sin + y * cos)


def sd_ellipse(u: np.ndarray, v: np.ndarray, a: float, b: float) -> np.ndarray:
    """Approximate signed distance in pixels to an axis-aligned ellipse (negative inside)."""
    k = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    return ((k - 1.0) * min(a, b)).astype(np.float32)


def sd_capsule(
    shape: tuple[int, int],
    start: tuple[float, float],
    end: tuple[float, float],
    radius_start: float,
    radius_end: float,
) -> np.ndarray:
    """Signed distance in pixels to a tapered capsule from ``start`` to ``end`` (x, y)."""
    height, width = shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    ax, ay = start
    bx, by = end
    dx, dy = bx - ax, by - ay
    length_sq = max(dx * dx + dy * dy, 1e-6)
    t = np.clip(((x - ax) * dx + (y - ay) * dy) / length_sq, 0.0, 1.0)
    distance = np.hypot(x - (ax + t * dx), y - (ay + t * dy))
    return (distance - (radius_start + t * (radius_end - radius_start))).astype(np.float32)


def smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Union of two signed distances with a rounded joint of about ``k`` pixels."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return (b * (1 - h) + a * h - k * h * (1 - h)).astype(np.float32)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a bool mask (empty stays empty)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    if count <= 1:
        return np.zeros_like(mask, dtype=bool)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == best


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a bool mask (regions not 4-connected to the border)."""
    padded = np.pad(mask.astype(np.uint8), 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return mask | holes


def close_disk(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Binary closing with the Euclidean disk ``{dy² + dx² <= r²}``, outside = background.

    Done with two exact distance transforms, as :func:`vitiseg.vasi.patches.close_with_disk`
    does, so a mask closed here is left unchanged by that closing with the same radius
    (closing is idempotent).

    Args:
        mask: (H, W) bool.
        radius_px: Disk radius in pixels; below 1 the mask is returned unchanged.

    Returns:
        (H, W) bool, a superset of ``mask``.
    """
    if radius_px < 1 or not mask.any():
        return mask.copy()
    pad = math.ceil(radius_px) + 1
    padded = np.pad(mask, pad)
    dilated = ndimage.distance_transform_edt(~padded) <= radius_px
    closed = ndimage.distance_transform_edt(dilated) > radius_px
    return closed[pad:-pad, pad:-pad] | mask


def disk(radius_px: float) -> np.ndarray:
    """Euclidean disk ``{dy² + dx² <= r²}`` as a uint8 structuring element.

    The same digital disk as the closing in :mod:`vitiseg.vasi`, so an extent closed
    here with a larger disk is left unchanged by that closing.
    """
    reach = math.floor(radius_px)
    yy, xx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    return (yy**2 + xx**2 <= radius_px**2).astype(np.uint8)


def local_mean(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian mean of ``values`` over pixels with ``weight`` (normalised convolution):
    at each pixel, the weighted average of its neighbourhood, so a quantity measured on
    some pixels (normal skin) is interpolated smoothly into the others (a patch)."""
    numerator = cv2.GaussianBlur(values * weight, (0, 0), sigma)
    denominator = cv2.GaussianBlur(weight, (0, 0), sigma)
    return numerator / np.maximum(denominator, 1e-6)
