"""Boxes of healthy skin, and lightening them: the probe of a lightness shortcut
(``scripts/box_edit_probe.py``) and the hard-negative augmentation that targets it.

A gain leaves a pixel's hue and saturation as they were and only lightens it; vitiligo
lightens skin and takes its colour away. A model that calls a lightened patch of healthy
skin lesion has learned "lighter than around it", which pale normal skin and highlights
also are.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ELLIPSE_FEATHER = 0.04  # Gaussian sigma of an ellipse's edge, as a share of its box's long side


@dataclass(frozen=True)
class Box:
    """Rows ``top:top + height``, columns ``left:left + width``."""

    top: int
    left: int
    height: int
    width: int

    def view(self, array: np.ndarray) -> np.ndarray:
        return array[self.top : self.top + self.height, self.left : self.left + self.width]


def pick_box(
    allowed: np.ndarray,
    rng: np.random.Generator,
    *,
    side_range: tuple[float, float] = (0.2, 0.4),
    min_allowed_share: float = 0.9,
    forbidden: np.ndarray | None = None,
    tries: int = 60,
) -> Box | None:
    """A random box of ``side_range`` times the photo's short side, aspect 0.6-1.6, at least
    ``min_allowed_share`` inside ``allowed`` and touching no ``forbidden`` pixel; None when
    ``tries`` draws find none."""
    height, width = allowed.shape
    for _ in range(tries):
        side = rng.uniform(*side_range) * min(height, width)
        aspect = rng.uniform(0.6, 1.6)
        box_h, box_w = int(side * aspect**0.5), int(side / aspect**0.5)
        if not (0 < box_h < height and 0 < box_w < width):
            continue
        box = Box(
            int(rng.integers(0, height - box_h)), int(rng.integers(0, width - box_w)), box_h, box_w
        )
        if forbidden is not None and box.view(forbidden).any():
            continue
        if box.view(allowed).mean() >= min_allowed_share:
            return box
    return None


def box_weight(shape: tuple[int, int], box: Box, *, ellipse: bool) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the whole box, or a feathered ellipse inside it (no straight
    edges; it covers about pi/4 of the box)."""
    weight = np.zeros(shape, np.float32)
    if not ellipse:
        box.view(weight)[:] = 1.0
        return weight
    filled = np.zeros(shape, np.float32)
    centre = (box.left + box.width // 2, box.top + box.height // 2)
    cv2.ellipse(filled, centre, (box.width // 2, box.height // 2), 0, 0, 360, 1.0, -1)
    blob = cv2.GaussianBlur(filled, (0, 0), ELLIPSE_FEATHER * max(box.height, box.width))
    box.view(weight)[:] = box.view(blob)  # the feather stays inside the box
    return weight


def blend(photo: np.ndarray, edited: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """uint8 ``photo * (1 - weight) + edited * weight``, both (H, W, 3), weight (H, W)."""
    w = weight[..., None]
    mixed = photo.astype(np.float32) * (1 - w) + edited.astype(np.float32) * w
    return np.clip(mixed, 0, 255).round().astype(np.uint8)


def lighten_healthy_patch(
    image: np.ndarray,
    targets: np.ndarray,
    valid: np.ndarray,
    rng: np.random.Generator,
    *,
    gain_range: tuple[float, float] = (1.15, 1.4),
) -> np.ndarray:
    """A copy of ``image`` with one box (or a feathered ellipse in it) of skin known to be
    free of lesion lightened by a random gain; ``image`` itself when no such box exists.

    ``targets``/``valid``: (3, H, W) as in ``LoadedCase`` (skin, lesion, depigmented). The
    box must be at least 90 % "known not lesion" (and skin where skin is annotated) and
    touch no lesion pixel, so its labels stay true: lightened healthy skin is still healthy.
    """
    not_lesion = (valid[1] > 0) & (targets[1] == 0)
    skin_or_unknown = (targets[0] > 0) | (valid[0] == 0)
    lesion = (targets[1] > 0) | (targets[2] > 0)
    box = pick_box(not_lesion & skin_or_unknown, rng, forbidden=lesion)
    if box is None:
        return image
    weight = box_weight(image.shape[:2], box, ellipse=bool(rng.random() < 0.5))
    return blend(image, image.astype(np.float32) * rng.uniform(*gain_range), weight)
