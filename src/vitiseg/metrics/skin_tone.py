"""Individual typology angle (ITA) from a photo, for stratifying results by skin tone.

ITA = arctan((L* - 50) / b*) in degrees, on CIELAB of normal (non-lesion) skin
(Chardon et al. 1991; Del Bino & Bernerd 2013). Categories follow Del Bino:
very light > 55 > light > 41 > intermediate > 28 > tan > 10 > brown > -30 > dark.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

ITA_CATEGORIES = (
    (55.0, "very_light"),
    (41.0, "light"),
    (28.0, "intermediate"),
    (10.0, "tan"),
    (-30.0, "brown"),
    (-math.inf, "dark"),
)
# A rough bridge to Fitzpatrick types used when cases.csv gives none (Del Bino 2013).
ITA_TO_FITZPATRICK = {
    "very_light": 1,
    "light": 2,
    "intermediate": 3,
    "tan": 4,
    "brown": 5,
    "dark": 6,
}


def individual_typology_angle(rgb: np.ndarray, skin: np.ndarray) -> float | None:
    """Median ITA (degrees) over ``skin`` pixels of an (H, W, 3) uint8 RGB photo."""
    if skin.sum() < 50:
        return None
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    lightness = np.median(lab[..., 0][skin]) * 100 / 255
    b_star = np.median(lab[..., 2][skin]) - 128
    return float(math.degrees(math.atan2(lightness - 50, b_star)))


def ita_category(ita: float | None) -> str:
    if ita is None:
        return "unknown"
    for lower, name in ITA_CATEGORIES:
        if ita > lower:
            return name
    return "dark"
