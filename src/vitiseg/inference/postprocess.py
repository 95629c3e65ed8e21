"""Clean a thresholded lesion mask the way clinicians outline patches.

Hand-drawn lesion outlines are filled, smooth regions; a pixel classifier leaves specks,
pinholes and ragged gaps between neighbouring patches. The clean-up is part of a model's
metadata (chosen on its training split by scripts/postprocess_study.py), so every command
that scores with the model applies the same one. Sizes are fractions of the mask's longer
side or area, so they do not depend on the photo's resolution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class LesionPostprocess:
    """Args:
    skin_gate: lesion only where the skin probability is at least this (0 = off); the
        skin output has seen far more backgrounds than the lesion output (white walls,
        sheets and shirts otherwise pass for depigmented skin).
    close_fraction: diameter of the closing disc, as a share of the longer side (0 = off).
    min_area_fraction: lesion components smaller than this share of the image are dropped.
    fill_holes: fill pigmented islands fully enclosed by a lesion.
    """

    skin_gate: float = 0.0
    close_fraction: float = 0.0
    min_area_fraction: float = 0.0
    fill_holes: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.skin_gate < 1:
            raise ValueError(f"skin_gate must lie in [0, 1), got {self.skin_gate}")
        if not 0 <= self.close_fraction < 0.5:
            raise ValueError(f"close_fraction must lie in [0, 0.5), got {self.close_fraction}")
        if not 0 <= self.min_area_fraction < 1:
            raise ValueError(f"min_area_fraction must lie in [0, 1), got {self.min_area_fraction}")

    @property
    def cleans(self) -> bool:
        """Whether any morphological step is on (the skin gate is not one)."""
        return bool(self.close_fraction or self.min_area_fraction or self.fill_holes)

    @property
    def is_identity(self) -> bool:
        return not (self.skin_gate or self.cleans)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LesionPostprocess:
        data = data or {}
        return cls(
            skin_gate=float(data.get("skin_gate", 0.0)),
            close_fraction=float(data.get("close_fraction", 0.0)),
            min_area_fraction=float(data.get("min_area_fraction", 0.0)),
            fill_holes=bool(data.get("fill_holes", False)),
        )


def lesion_mask(
    lesion_probability: np.ndarray,
    skin_probability: np.ndarray,
    threshold: float,
    setting: LesionPostprocess,
) -> np.ndarray:
    """(H, W) probabilities -> the (H, W) bool lesion mask: thresholded, gated by skin,
    cleaned."""
    mask = lesion_probability >= threshold
    if setting.skin_gate:
        mask &= skin_probability >= setting.skin_gate
    # ``mask`` is a fresh array: no copy needed when nothing is cleaned (12 MB per 12 MP).
    return clean_lesion_mask(mask, setting) if setting.cleans else mask


def clean_lesion_mask(mask: np.ndarray, setting: LesionPostprocess) -> np.ndarray:
    """(H, W) bool lesion mask -> cleaned (H, W) bool mask (a new array; input untouched)."""
    mask = np.asarray(mask, bool)
    if not setting.cleans or not mask.any():
        return mask.copy()
    cleaned = mask.view(np.uint8).copy()
    # An odd diameter keeps the disc symmetric about its anchor, so closing never
    # removes lesion pixels.
    diameter = int(round(setting.close_fraction * max(mask.shape))) | 1
    if diameter >= 3:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (diameter, diameter))
        # Pad so closing does not glue patches to the image border.
        pad = diameter
        padded = cv2.copyMakeBorder(cleaned, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        cleaned = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, disc)[pad:-pad, pad:-pad]
    if setting.fill_holes:
        cleaned = ndimage.binary_fill_holes(cleaned).view(np.uint8)
    min_area = setting.min_area_fraction * mask.size
    if min_area > 0:
        count, labels, stats, _ = cv2.connectedComponentsWithStats(cleaned, connectivity=8)
        keep = stats[:, cv2.CC_STAT_AREA] >= min_area
        keep[0] = False  # background
        cleaned = keep[labels].view(np.uint8) if count > 1 else cleaned
    return cleaned.astype(bool)
