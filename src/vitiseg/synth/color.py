"""Skin colour model: sRGB <-> CIELAB, individual typology angle, melanin removal.

All conversions are plain NumPy (sRGB primaries, D65 white, CIE 1976 L*a*b*), so the
generator gives the same numbers on every machine and does not depend on OpenCV's
fixed-point colour code.

References:
    Chardon A, Cretois I, Hourseau C. Skin colour typology and suntanning pathways.
    Int J Cosmet Sci 1991;13:191-208 (the individual typology angle, ITA).
    Del Bino S, Bernerd F. Variations in skin colour and the biological consequences of
    ultraviolet radiation exposure. Br J Dermatol 2013;169 Suppl 3:33-40 (ITA categories).
    Jacques SL. Optical properties of biological tissues: a review. Phys Med Biol
    2013;58:R37-R61 (melanin and haemoglobin absorption spectra).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Linear sRGB -> CIE XYZ (D65), IEC 61966-2-1.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ],
    dtype=np.float64,
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)
_DELTA = 6.0 / 29.0

# Relative absorbance of melanin and oxy-haemoglobin in the R, G, B bands (about 610, 545
# and 465 nm), read off the spectra in Jacques 2013. Melanin falls steadily with
# wavelength (so removing it raises blue most: less yellow); haemoglobin absorbs green
# most (so what remains after melanin is gone looks pink).
MELANIN_ABSORBANCE = np.array([0.55, 0.80, 1.20], dtype=np.float32)
HAEMOGLOBIN_ABSORBANCE = np.array([0.12, 1.00, 0.55], dtype=np.float32)

# ITA ranges (degrees) of the six skin colour categories of Del Bino & Bernerd 2013,
# used as Fitzpatrick I-VI: very light > 55, light 41-55, intermediate 28-41, tan 10-28,
# brown -30-10, dark < -30 (see fitzpatrick_from_ita for the exact edges). A grey or
# blue-cast photo can give b* < 0 and an angle beyond 90 degrees: still very light.
ITA_RANGES: dict[int, tuple[float, float]] = {
    1: (55.0, 180.0),
    2: (41.0, 55.0),
    3: (28.0, 41.0),
    4: (10.0, 28.0),
    5: (-30.0, 10.0),
    6: (-180.0, -30.0),
}


@dataclass(frozen=True)
class SkinTone:
    """Design ranges of one skin type; ITA kept a few degrees inside its category.

    Attributes:
        fitzpatrick: Skin type 1-6.
        ita_deg: (low, high) ITA in degrees to sample from.
        b_star: (low, high) CIELAB b* (yellowness) of normal skin.
        a_star: (low, high) CIELAB a* (redness) of normal skin.
    """

    fitzpatrick: int
    ita_deg: tuple[float, float]
    b_star: tuple[float, float]
    a_star: tuple[float, float]


# b* and a* follow colorimetry surveys of normal skin (b* peaks in tan/intermediate
# skin and is lowest in very dark skin; a* stays near 9-14 across types), nudged up a
# little towards the warmer values of camera photos.
SKIN_TONES: dict[int, SkinTone] = {
    1: SkinTone(1, (58.0, 66.0), (12.0, 16.0), (9.0, 13.0)),
    2: SkinTone(2, (44.0, 52.0), (15.0, 19.0), (10.0, 14.0)),
    3: SkinTone(3, (31.0, 38.0), (17.0, 22.0), (10.0, 14.0)),
    4: SkinTone(4, (13.0, 25.0), (18.0, 23.0), (10.0, 14.0)),
    5: SkinTone(5, (-24.0, 5.0), (16.0, 21.0), (10.0, 14.0)),
    6: SkinTone(6, (-62.0, -36.0), (10.0, 14.0), (8.0, 12.0)),
}


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] -> linear light in [0, 1] (IEC 61966-2-1 transfer curve)."""
    srgb = np.asarray(srgb, dtype=np.float32)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4).astype(
        np.float32
    )


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB in [0, 1]; values are clipped to [0, 1] first."""
    linear = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    return np.where(
        linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1.0 / 2.4) - 0.055
    ).astype(np.float32)


def _f(t: np.ndarray) -> np.ndarray:
    return np.where(
        t > np.float32(_DELTA**3), np.cbrt(t), t / np.float32(3 * _DELTA**2) + np.float32(4 / 29)
    )


def _f_inv(t: np.ndarray) -> np.ndarray:
    return np.where(t > _DELTA, t**3, 3 * _DELTA**2 * (t - 4.0 / 29.0))


def linear_to_lab(linear: np.ndarray) -> np.ndarray:
    """Linear sRGB -> CIELAB.

    Args:
        linear: (..., 3) float, linear RGB in [0, 1].

    Returns:
        (..., 3) float32: L* in [0, 100], a*, b*.
    """
    # float32 is ample for 8-bit images and halves the cost on whole photos.
    xyz = np.asarray(linear, dtype=np.float32) @ (_RGB_TO_XYZ.T / _WHITE_D65).astype(np.float32)
    fx, fy, fz = (_f(xyz[..., k]) for k in range(3))
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1).astype(
        np.float32
    )


def lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """CIELAB -> linear sRGB (not clipped; out-of-gamut colours may leave [0, 1]).

    Args:
        lab: (..., 3) float: L*, a*, b*.

    Returns:
        (..., 3) float32 linear RGB.
    """
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = fy - lab[..., 2] / 200.0
    xyz = np.stack([_f_inv(fx), _f_inv(fy), _f_inv(fz)], axis=-1) * _WHITE_D65
    return (xyz @ _XYZ_TO_RGB.T).astype(np.float32)


def rgb8_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 sRGB -> (..., 3) float32 CIELAB."""
    return linear_to_lab(srgb_to_linear(np.asarray(rgb, dtype=np.float32) / 255.0))


def ita_degrees(l_star: float, b_star: float) -> float:
    """Individual typology angle ITA = atan((L* - 50) / b*) in degrees (Chardon 1991)."""
    return math.degrees(math.atan2(l_star - 50.0, b_star))


def fitzpatrick_from_ita(ita_deg: float) -> int:
    """Skin type 1-6 from the ITA categories: I > 55 >= II >= 41 > III >= 28 > IV >= 10 >
    V >= -30 > VI (degrees); NaN gives 0 (unknown)."""
    if math.isnan(ita_deg):
        return 0
    if ita_deg > ITA_RANGES[1][0]:
        return 1
    for skin_type in range(2, 6):
        if ita_deg >= ITA_RANGES[skin_type][0]:
            return skin_type
    return 6


def measure_ita(rgb: np.ndarray, region: np.ndarray) -> tuple[float, float, float]:
    """ITA of a skin area from the medians of its L* and b*.

    Medians (not the mean angle) keep hairs, pores and highlights from pulling the value.

    Args:
        rgb: (H, W, 3) uint8 sRGB photo.
        region: (H, W) bool, the pixels to measure (normal skin).

    Returns:
        (ita_deg, median L*, median b*); NaNs when ``region`` is empty.
    """
    if not region.any():
        return float("nan"), float("nan"), float("nan")
    lab = rgb8_to_lab(rgb[region])
    l_star = float(np.median(lab[:, 0]))
    b_star = float(np.median(lab[:, 2]))
    return ita_degrees(l_star, b_star), l_star, b_star


@dataclass(frozen=True)
class Depigmentation:
    """How amelanotic (vitiligo) skin looks next to the normal skin it replaces.

    Vitiligo skin has no epidermal melanin: what is left is the dermis' scatter and the
    blood's haemoglobin, a milky white with a pink cast. So lightness rises to about
    76-88 (always at least 8 above the normal skin, which gives the strong contrast on
    dark skin and the faint one on type I), yellowness b* falls to a third of the normal
    skin's (melanin is what makes skin yellow-brown) and redness a* is partly kept.

    Attributes:
        lightness: L* of depigmented skin beside normal skin of median lightness.
        a_offset: Redness a* kept in the absence of melanin (haemoglobin).
        b_offset: Yellowness b* kept (carotenoids, dermis).
    """

    lightness: float
    a_offset: float
    b_offset: float

    A_KEEP = 0.45
    B_KEEP = 0.3
    MIN_RISE = 8.0

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Depigmentation:
        """Parameters of one case, with a little variation between cases."""
        return cls(
            lightness=76.0 + 12.0 * rng.random(),
            a_offset=2.5 + 2.5 * rng.random(),
            b_offset=2.5 + 2.0 * rng.random(),
        )

    def lightness_rise(self, normal_l: float) -> float:
        """L* added to normal skin of lightness ``normal_l``."""
        return max(self.lightness - normal_l, self.MIN_RISE)

    def target(
        self, local_lab: np.ndarray, reference_lab: np.ndarray, max_lightness: float = 93.0
    ) -> np.ndarray:
        """Depigmented colour of skin whose normal colour is ``local_lab``.

        Args:
            local_lab: (..., 3) CIELAB of the normal skin, under its own lighting.
            reference_lab: (3,) median CIELAB of the normal skin of the photo; sets how much
                lightness is added, so shading differences within the photo are kept.
            max_lightness: Upper bound of the result's L*, except that the result is
                always at least 4 above ``local_lab``.

        Returns:
            (..., 3) float32 CIELAB.
        """
        local_lab = np.asarray(local_lab, dtype=np.float32)
        rise = self.lightness_rise(float(reference_lab[0]))
        return np.stack(
            [
                # Even skin already near the cap gets a little lighter.
                np.minimum(
                    local_lab[..., 0] + rise, np.maximum(max_lightness, local_lab[..., 0] + 4)
                ),
                self.A_KEEP * local_lab[..., 1] + self.a_offset,
                self.B_KEEP * np.maximum(local_lab[..., 2], 0.0) + self.b_offset,
            ],
            axis=-1,
        ).astype(np.float32)


def depigmented_lab(normal_lab: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour of fully depigmented skin beside normal skin of colour ``normal_lab``.

    Args:
        normal_lab: (3,) L*, a*, b* of the surrounding normal skin.
        rng: Source of the small per-case variation (see :class:`Depigmentation`).

    Returns:
        (3,) float32 L*, a*, b*.
    """
    normal_lab = np.asarray(normal_lab, dtype=np.float32)
    return Depigmentation.draw(rng).target(normal_lab, normal_lab)


def depigmentation_gain(normal_lab: np.ndarray, target_lab: np.ndarray) -> np.ndarray:
    """Per-channel factor that turns normal skin reflectance into depigmented reflectance.

    Multiplying linear RGB by a constant is subtracting a constant optical density
    (-log of the factor), the physical effect of taking melanin out of the epidermis;
    it keeps the photo's shading, highlights and texture, which are multiplicative too.

    Args:
        normal_lab: (3,) CIELAB of normal skin.
        target_lab: (3,) CIELAB of fully depigmented skin.

    Returns:
        (3,) float32 gain per linear RGB channel, each > 0.
    """
    normal = np.maximum(lab_to_linear(normal_lab), 1e-4)
    target = np.maximum(lab_to_linear(target_lab), 1e-4)
    return (target / normal).astype(np.float32)
