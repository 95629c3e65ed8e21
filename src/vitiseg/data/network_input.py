"""A photo as network input: the one conversion training, validation and inference share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def normalised_chw(
    rgb: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    gains: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, after the channel ``gains`` of colour
    constancy (vitiseg.data.colour_constancy), if any, then normalised by ``mean``/``std``."""
    array = rgb.astype(np.float32) * (1 / 255.0)
    if gains is not None:
        array *= gains
    array -= np.asarray(mean, np.float32)
    array /= np.asarray(std, np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))
