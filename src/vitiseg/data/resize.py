"""Shrinking photos to a working resolution (NumPy/OpenCV only, no torch)."""

from __future__ import annotations

import cv2
import numpy as np


def resize_long_side(image: np.ndarray, long_side: int, *, nearest: bool = False) -> np.ndarray:
    """Shrink so that max(H, W) <= long_side (never enlarge)."""
    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # NEAREST_EXACT samples each block's centre, where INTER_AREA's average is centred;
    # plain NEAREST takes its top-left pixel and shifts a mask half a pixel off its photo.
    interpolation = cv2.INTER_NEAREST_EXACT if nearest else cv2.INTER_AREA
    return cv2.resize(image, size, interpolation=interpolation)
