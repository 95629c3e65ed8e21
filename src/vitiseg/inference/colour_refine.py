"""Refine the network's lesion mask with the photo's own colours (GrabCut seeded by it).

One probability threshold serves every photo, but how white a patch looks against the skin
around it depends on that photo's skin tone, light and camera. GrabCut (OpenCV) fits colour
models of lesion and normal skin to THIS photo, seeded by the pixels the network is sure
about, and relabels the uncertain ones with a smoothness term, so the outline can follow the
photo's own colour edge. Off unless a model's metadata turns it on: it raised lesion Dice on
the cross-validation folds it was tuned on but not on held-out patients (docs/model_history.md,
session 10).
"""

from __future__ import annotations

import cv2
import numpy as np

from vitiseg.data.resize import resize_long_side

# Fewer seed pixels than this leave GrabCut's colour models undefined: keep the network's mask.
MIN_SEED_PIXELS = 50


def refine_lesion_by_colour(
    rgb: np.ndarray,
    lesion_probability: np.ndarray,
    skin_mask: np.ndarray,
    *,
    threshold: float,
    sure_lesion: float,
    sure_normal: float,
    iterations: int,
    long_side: int,
) -> np.ndarray:
    """The (H, W) bool lesion mask after GrabCut at ``long_side`` (0 = the photo's size).

    Seeds: probability >= ``sure_lesion`` is lesion for certain; <= ``sure_normal`` or outside
    ``skin_mask`` is normal for certain; the rest starts as the threshold says and may flip.
    The result never leaves ``skin_mask``. Inputs are not modified.
    """
    height, width = lesion_probability.shape
    if rgb.shape[:2] != (height, width) or skin_mask.shape != (height, width):
        raise ValueError(
            f"photo {rgb.shape[:2]}, lesion {lesion_probability.shape} and skin "
            f"{skin_mask.shape} must share one size"
        )
    small_rgb = resize_long_side(rgb, long_side) if long_side else rgb
    shrunk = small_rgb.shape[:2] != (height, width)
    if shrunk:
        probability = resize_long_side(lesion_probability, long_side)
        skin = resize_long_side(skin_mask.astype(np.uint8), long_side, nearest=True) > 0
    else:
        probability, skin = lesion_probability, skin_mask
    seeds = np.full(probability.shape, cv2.GC_PR_BGD, np.uint8)
    seeds[probability >= threshold] = cv2.GC_PR_FGD
    seeds[probability >= sure_lesion] = cv2.GC_FGD
    seeds[(probability <= sure_normal) | ~skin] = cv2.GC_BGD
    sure_lesion_pixels = np.count_nonzero(seeds == cv2.GC_FGD)
    sure_normal_pixels = np.count_nonzero(seeds == cv2.GC_BGD)
    if min(sure_lesion_pixels, sure_normal_pixels) < MIN_SEED_PIXELS:
        return (lesion_probability >= threshold) & skin_mask
    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    cv2.grabCut(
        np.ascontiguousarray(small_rgb),
        seeds,
        None,
        background_model,
        foreground_model,
        iterations,
        cv2.GC_INIT_WITH_MASK,
    )
    refined = (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)
    if shrunk:
        # Linear upsampling of the 0/1 mask then 0.5: smooth outlines, not blocks.
        upsampled = cv2.resize(
            refined.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR
        )
        refined = upsampled >= 0.5
    return refined & skin_mask
