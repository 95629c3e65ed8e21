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

from vitiseg.inference.colour_refine import refine_lesion_by_colour


@dataclass(frozen=True)
class LesionPostprocess:
    """Args:
    skin_gate: lesion only where the skin probability is at least this (0 = off); the
        skin output has seen far more backgrounds than the lesion output (white walls,
        sheets and shirts otherwise pass for depigmented skin).
    close_fraction: diameter of the closing disc, as a share of the longer side (0 = off).
    min_area_fraction: lesion components smaller than this share of the image are dropped.
    fill_holes: fill pigmented islands fully enclosed by a lesion.
    colour_iterations: GrabCut iterations of the colour refinement
        (vitiseg.inference.colour_refine; 0 = off). Needs the photo.
    colour_sure_lesion, colour_sure_normal: lesion probabilities at or beyond which the
        refinement takes a pixel as lesion / normal skin for certain (defaults: the
        setting measured in docs/model_history.md, session 10).
    colour_long_side: the refinement's working resolution (longer side, pixels).
    """

    skin_gate: float = 0.0
    close_fraction: float = 0.0
    min_area_fraction: float = 0.0
    fill_holes: bool = False
    colour_iterations: int = 0
    colour_sure_lesion: float = 0.9
    colour_sure_normal: float = 0.02
    colour_long_side: int = 512

    def __post_init__(self) -> None:
        if not 0 <= self.skin_gate < 1:
            raise ValueError(f"skin_gate must lie in [0, 1), got {self.skin_gate}")
        if not 0 <= self.close_fraction < 0.5:
            raise ValueError(f"close_fraction must lie in [0, 0.5), got {self.close_fraction}")
        if not 0 <= self.min_area_fraction < 1:
            raise ValueError(f"min_area_fraction must lie in [0, 1), got {self.min_area_fraction}")
        if self.colour_iterations < 0 or self.colour_long_side < 0:
            raise ValueError("colour_iterations and colour_long_side must not be negative")
        if not 0 <= self.colour_sure_normal < self.colour_sure_lesion <= 1:
            raise ValueError(
                "need 0 <= colour_sure_normal < colour_sure_lesion <= 1, got "
                f"{self.colour_sure_normal} and {self.colour_sure_lesion}"
            )

    @property
    def cleans(self) -> bool:
        """Whether any morphological step is on (the skin gate is not one)."""
        return bool(self.close_fraction or self.min_area_fraction or self.fill_holes)

    @property
    def is_identity(self) -> bool:
        return not (self.skin_gate or self.cleans or self.colour_iterations)

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
            colour_iterations=int(data.get("colour_iterations", 0)),
            colour_sure_lesion=float(data.get("colour_sure_lesion", 0.9)),
            colour_sure_normal=float(data.get("colour_sure_normal", 0.02)),
            colour_long_side=int(data.get("colour_long_side", 512)),
        )


def lesion_mask(
    lesion_probability: np.ndarray,
    skin_probability: np.ndarray,
    threshold: float,
    setting: LesionPostprocess,
    *,
    rgb: np.ndarray | None = None,
    skin_threshold: float = 0.5,
) -> np.ndarray:
    """(H, W) probabilities -> the (H, W) bool lesion mask: thresholded (or refined by the
    photo's colours, which needs ``rgb``), gated by skin, cleaned."""
    if setting.colour_iterations:
        if rgb is None:
            raise ValueError("this model's lesion clean-up refines by colour: pass the photo")
        mask = refine_lesion_by_colour(
            rgb,
            lesion_probability,
            skin_probability >= skin_threshold,
            threshold=threshold,
            sure_lesion=setting.colour_sure_lesion,
            sure_normal=setting.colour_sure_normal,
            iterations=setting.colour_iterations,
            long_side=setting.colour_long_side,
        )
    else:
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


def keep_seeded_components(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The components of ``mask`` (8-connected) that contain at least one ``seed`` pixel.

    Hysteresis: a depigmented patch keeps its full extent at the ordinary threshold when
    its core is confident, and a patch with no confident pixel at all is dropped.
    """
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask.astype(bool)
    seeded = np.unique(labels[seed & mask])
    return np.isin(labels, seeded[seeded > 0])
