"""Overlapping-tile inference with Gaussian blending, for inputs of any size.

Backend-agnostic: ``run_batch`` maps a (B, 3, T, T) float32 array to (B, C, T, T)
probabilities, so PyTorch and ONNX Runtime share one tiler.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

RunBatch = Callable[[np.ndarray], np.ndarray]


@lru_cache(maxsize=8)
def gaussian_weight(tile: int, sigma_scale: float = 0.125) -> np.ndarray:
    """(tile, tile) float32 importance map, 1 at the centre, small but > 0 at the edges."""
    coords = np.arange(tile, dtype=np.float32) - (tile - 1) / 2
    sigma = tile * sigma_scale
    profile = np.exp(-(coords**2) / (2 * sigma**2))
    weight = np.outer(profile, profile)
    weight /= weight.max()
    return np.maximum(weight, 1e-3).astype(np.float32)


def tile_origins(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets covering [0, length) with tiles of ``tile`` and the given overlap."""
    if length <= tile:
        return [0]
    stride = max(1, int(tile * (1 - overlap)))
    origins = list(range(0, length - tile, stride))
    origins.append(length - tile)
    return origins


def _pad(image: np.ndarray, pad_h: int, pad_w: int) -> np.ndarray:
    """Pad (C, H, W) at the bottom and right by reflection (edge copy when too small)."""
    if not (pad_h or pad_w):
        return image
    _, height, width = image.shape
    mode = "reflect" if height > pad_h and width > pad_w else "edge"
    return np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)), mode=mode)


def predict_tiled(
    image: np.ndarray,
    run_batch: RunBatch,
    *,
    tile: int,
    overlap: float = 0.25,
    batch_size: int = 4,
    out_channels: int = 2,
    any_size_stride: int | None = None,
) -> np.ndarray:
    """Blend tile predictions over an image.

    Args:
        image: (3, H, W) float32 normalised input.
        run_batch: (B, 3, T, T) -> (B, C, T, T) probabilities.
        tile: tile side in px; images smaller than a tile are padded (reflect) to it.
        any_size_stride: set when the backend takes any size that is a multiple of this
            stride; an image that fits in one tile is then padded only to that multiple
            (a 448x336 photo costs 448x352 pixels of network work, not 512x512).

    Returns:
        (C, H, W) float32 probabilities.
    """
    _, height, width = image.shape
    if any_size_stride and height <= tile and width <= tile:
        pad_h, pad_w = (-height) % any_size_stride, (-width) % any_size_stride
        padded = _pad(image, pad_h, pad_w)
        return run_batch(np.ascontiguousarray(padded[None]))[0, :, :height, :width]
    pad_h, pad_w = max(0, tile - height), max(0, tile - width)
    image = _pad(image, pad_h, pad_w)
    full_h, full_w = image.shape[1:]
    weight = gaussian_weight(tile)
    accumulated = np.zeros((out_channels, full_h, full_w), np.float32)
    weights = np.zeros((full_h, full_w), np.float32)
    boxes = [
        (y, x)
        for y in tile_origins(full_h, tile, overlap)
        for x in tile_origins(full_w, tile, overlap)
    ]
    for start in range(0, len(boxes), batch_size):
        chunk = boxes[start : start + batch_size]
        batch = np.stack([image[:, y : y + tile, x : x + tile] for y, x in chunk])
        probabilities = run_batch(np.ascontiguousarray(batch))
        for (y, x), probability in zip(chunk, probabilities, strict=True):
            accumulated[:, y : y + tile, x : x + tile] += probability * weight
            weights[y : y + tile, x : x + tile] += weight
    return (accumulated / weights)[:, :height, :width]
