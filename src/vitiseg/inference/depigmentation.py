"""Depigmented pixels inside a lesion extent by colour: lighter than the skin around them.

A clinician grades a patch's residual depigmentation by how much of it is lighter than the
patient's own normal skin nearby. This module does the same on the photo: the local
lightness of normal skin (CIELAB L*) is interpolated into each patch from the skin around
it (normalised convolution over skin outside the lesion extent, so lighting gradients and
the photo's white balance cancel), and a pixel of the extent counts as depigmented when its
L* exceeds that reference by more than ``min_lift``. The model's own depigmented output,
trained on painted photos, calls few pixels of real patches depigmented (docs/model_history.md,
session 18); this rule needs no training and works for two-output models too.
"""

from __future__ import annotations

import numpy as np

from vitiseg.synth.color import rgb8_to_lab
from vitiseg.synth.fields import local_mean

# Below this many skin pixels outside the extent there is no normal skin to compare with.
MIN_NORMAL_PIXELS = 50
# L* units above the local normal skin that make a pixel depigmented: 6 gave an unbiased
# depigmented share on the training painted photos (docs/model_history.md, session 18).
MIN_LIFT = 6.0


def lift_above_normal_skin(
    rgb: np.ndarray, skin: np.ndarray, lesion: np.ndarray, *, reference_scale: float = 0.08
) -> np.ndarray | None:
    """(H, W) float32: each pixel's L* minus that of the normal skin around it.

    Args:
        rgb: (H, W, 3) uint8 photo (not modified).
        skin: (H, W) bool skin mask; skin outside ``lesion`` is the normal reference.
        lesion: (H, W) bool lesion extent, left out of the reference.
        reference_scale: Gaussian sigma of the reference as a share of the skin's equivalent
            diameter: wide enough to reach across a patch, narrow enough to follow light.

    Returns:
        The lift, or None when there is too little normal skin to compare with (a patch
        covering the whole visible skin).
    """
    if rgb.shape[:2] != lesion.shape or skin.shape != lesion.shape:
        raise ValueError(
            f"photo {rgb.shape[:2]}, skin {skin.shape} and lesion {lesion.shape} differ in size"
        )
    normal = skin & ~lesion
    if normal.sum() < MIN_NORMAL_PIXELS:
        return None
    light = rgb8_to_lab(rgb)[..., 0]
    diameter = float(np.sqrt(4.0 * (skin | lesion).sum() / np.pi))
    sigma = max(3.0, reference_scale * diameter)
    return light - local_mean(light, normal.astype(np.float32), sigma)


def depigmented_by_colour(
    rgb: np.ndarray,
    skin: np.ndarray,
    lesion: np.ndarray,
    *,
    min_lift: float = MIN_LIFT,
    reference_scale: float = 0.08,
) -> np.ndarray | None:
    """The (H, W) bool depigmented pixels of ``lesion``: L* above the local normal skin's.

    Args:
        rgb, skin, lesion, reference_scale: as :func:`lift_above_normal_skin`; the result
            lies inside ``lesion``.
        min_lift: L* units a pixel must exceed the local normal skin by.

    Returns:
        The mask, or None when there is too little normal skin to compare with, so callers
        can say the level is unknown.
    """
    lift = lift_above_normal_skin(rgb, skin, lesion, reference_scale=reference_scale)
    return None if lift is None else lesion & (lift > min_lift)
