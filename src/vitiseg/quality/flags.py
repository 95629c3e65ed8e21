"""Photo quality flags: blur, exposure, colour cast, size, skin found, model confidence
(lesion and skin), little depigmentation inside the outlined lesion, and skin light enough
that the model is known to miss lesions on it.

Pure NumPy/OpenCV. Each flag compares one measure with a documented threshold
(``configs/quality/default.yaml``). The flags are hints for a reviewer, reported beside
the score instead of silently scoring a poor photo; they never change the score.

Image measures are taken on a copy shrunk to ``analysis_long_side`` (INTER_AREA), so
thresholds do not depend on the camera's resolution and a 12 MP photo costs little.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vitiseg.metrics.skin_tone import individual_typology_angle

FLAG_DESCRIPTIONS: Mapping[str, str] = {
    "blur": "blurred: little fine detail (variance of the Laplacian is low)",
    "underexposed": "under-exposed: many pixels are (near) black",
    "overexposed": "over-exposed: many pixels are clipped white",
    "colour_cast": "colour cast: the background is strongly tinted",
    "too_small": "too small: the shorter side has too few pixels",
    "little_skin": "little skin found: the model found little skin in the photo",
    "low_confidence": "low model confidence: many ambiguous or unstable lesion pixels",
    "uncertain_skin": (
        "uncertain skin outline: the model is unsure where much of the skin ends (common in "
        "photos of people in rooms), so the affected share of skin and uncalibrated hand "
        "units may be wrong; check the skin mask by eye"
    ),
    "faint_depigmentation": (
        "little of the outlined lesion called depigmented, so the VASI levels may be too "
        "low (the model's depigmented output learnt from painted photos and under-calls "
        "real patches; hand_units_affected is the VASI if every patch were fully "
        "depigmented); check the levels by eye"
    ),
    "light_skin": (
        "light skin (high typology angle): the default model missed many lesions on light "
        "skin in validation; check the lesion mask by eye"
    ),
}
FLAG_NAMES: tuple[str, ...] = tuple(FLAG_DESCRIPTIONS)


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the quality flags (``configs/quality/default.yaml``).

    Attributes:
        analysis_long_side: Long side in px of the shrunk copy the image measures use.
        blur_min_laplacian_var: ``blur`` when the variance of the Laplacian of the grey
            copy (0-255 scale) is below this.
        dark_level: Grey level (0-255) at or below which a pixel counts as black.
        underexposed_max_dark_share: ``underexposed`` when more than this share of pixels
            is black, or when the 99th grey percentile is below ``underexposed_p99``.
        underexposed_p99: See above: a photo whose brightest pixels are dim is dark overall.
        bright_level: Channel level (0-255) at or above which a pixel counts as clipped.
        overexposed_max_clipped_share: ``overexposed`` when more than this share of pixels
            has a clipped channel.
        cast_max_chroma: ``colour_cast`` when the mean a*, b* (CIELAB, 8-bit OpenCV scale)
            of the non-skin pixels lie further than this from neutral grey.
        cast_min_background_share: Below this share of non-skin pixels the whole photo is
            used for the cast, with ``cast_max_chroma_whole`` (skin itself is not grey).
        cast_max_chroma_whole: Threshold used for the whole photo.
        min_side_px: ``too_small`` when the shorter side is below this.
        min_skin_fraction: ``little_skin`` when skin (lesions included) covers less than
            this share of the photo.
        ambiguous_low: Lower bound of the ambiguous lesion probability band.
        ambiguous_high: Upper bound of the ambiguous lesion probability band.
        max_ambiguous_share: ``low_confidence`` when more than this share of the skin has an
            ambiguous lesion probability.
        max_mean_uncertainty: ``low_confidence`` when the mean test-time-augmentation
            spread of the lesion probability over skin is above this (TTA only).
        skin_ambiguous_low: Lower bound of the ambiguous skin probability band.
        skin_ambiguous_high: Upper bound of the ambiguous skin probability band.
        max_ambiguous_skin_share: ``uncertain_skin`` when more than this share of the
            photo has an ambiguous skin probability. Chosen on the default model's training
            skin photos (docs/model_history.md, sessions 16, 64 and 71).
        min_depigmented_share: ``faint_depigmentation`` when the depigmented mask covers
            less than this share of the outlined lesion (models with a depigmented output):
            the photo's patches then average at most level 25 %.
        depigmented_share_min_lesion: ... and the lesion covers at least this share of the
            photo (a few lesion pixels say nothing about levels).
        light_skin_min_ita: ``light_skin`` when the individual typology angle of the normal
            (non-lesion) skin the model found is above this, in degrees. 41 is where "light"
            begins (Del Bino); cross-validated, the default model scored lesion Dice 0.24 on
            such photos against 0.47 on the rest, missing most lesions
            (docs/model_history.md, session 11).
        max_lighting_change: A comparison of two visits notes a change of lighting when the
            median of the normal skin's green level, or its red/blue ratio, differs between
            the photos by more than this (relative, either way): the default model outlines
            less lesion on darker or bluer photos (docs/compare_and_cohort.md).
        max_rebalance_clipped_share: A re-balanced follow-up (``match_lighting``) is noted
            as possibly still off when more than this share of its skin is clipped white in
            a channel the re-balancing lowers (those pixels cannot be restored).
        max_retake_noise_share: A comparison is noted as within the model's re-take noise
            when at least this share of the model's comparisons of photos with no change
            moved by as much or more (:mod:`vitiseg.compare.retake`).
    """

    analysis_long_side: int = 512
    blur_min_laplacian_var: float = 20.0
    dark_level: int = 10
    underexposed_max_dark_share: float = 0.5
    underexposed_p99: float = 60.0
    bright_level: int = 250
    overexposed_max_clipped_share: float = 0.2
    cast_max_chroma: float = 25.0
    cast_min_background_share: float = 0.05
    cast_max_chroma_whole: float = 40.0
    min_side_px: int = 256
    min_skin_fraction: float = 0.05
    ambiguous_low: float = 0.35
    ambiguous_high: float = 0.65
    max_ambiguous_share: float = 0.2
    max_mean_uncertainty: float = 0.1
    skin_ambiguous_low: float = 0.2
    skin_ambiguous_high: float = 0.8
    max_ambiguous_skin_share: float = 0.14
    min_depigmented_share: float = 0.25
    depigmented_share_min_lesion: float = 0.001
    light_skin_min_ita: float = 41.0
    max_lighting_change: float = 0.1
    max_rebalance_clipped_share: float = 0.05
    max_retake_noise_share: float = 0.1

    def __post_init__(self) -> None:
        if self.analysis_long_side < 16:
            raise ValueError("analysis_long_side: must be >= 16")
        if not self.max_lighting_change > 0:
            raise ValueError("max_lighting_change: must be > 0")
        for low, high in (
            ("ambiguous_low", "ambiguous_high"),
            ("skin_ambiguous_low", "skin_ambiguous_high"),
        ):
            if not 0 <= getattr(self, low) < getattr(self, high) <= 1:
                raise ValueError(f"{low} < {high}, both within [0, 1]")
        for name in (
            "underexposed_max_dark_share",
            "overexposed_max_clipped_share",
            "cast_min_background_share",
            "min_skin_fraction",
            "max_ambiguous_share",
            "max_ambiguous_skin_share",
            "min_depigmented_share",
            "depigmented_share_min_lesion",
            "max_rebalance_clipped_share",
            "max_retake_noise_share",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: must lie within [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = frozenset(f.name for f in dataclasses.fields(QualityConfig))


def check_model_quality(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """A model folder's quality thresholds (``metadata.json`` "quality"), checked: known
    keys, values a :class:`QualityConfig` accepts. Raises ValueError naming the problem."""
    values = dict(values or {})
    unknown = sorted(set(values) - _FIELDS)
    if unknown:
        raise ValueError(
            f"the model folder's quality thresholds have unknown keys {unknown}; known: "
            f"{sorted(_FIELDS)}"
        )
    QualityConfig(**values)
    return values


def quality_config_from_mapping(
    values: Mapping[str, Any] | None, model_values: Mapping[str, Any] | None = None
) -> QualityConfig:
    """Build a :class:`QualityConfig` from a plain mapping (unknown keys are refused).

    A key set to None takes the model's own value (``model_values``: its folder's
    ``metadata.json`` "quality"), else the :class:`QualityConfig` default. A threshold
    chosen for one model (``uncertain_skin``'s share) then follows the model, while a number
    given in the config or on the command line still wins.
    """
    values = dict(values or {})
    model_values = check_model_quality(model_values)
    unknown = sorted(set(values) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown quality config keys {unknown}; known: {sorted(_FIELDS)}")
    resolved = {
        name: model_values.get(name) if value is None else value for name, value in values.items()
    }
    return QualityConfig(**{name: value for name, value in resolved.items() if value is not None})


@dataclass(frozen=True)
class QualityReport:
    """Measures of one photo and the flags they raise.

    Attributes:
        flags: Raised flag names, in :data:`FLAG_NAMES` order.
        laplacian_var: Variance of the Laplacian of the shrunk grey copy.
        dark_share: Share of black pixels.
        grey_p99: 99th percentile of grey level (0-255).
        clipped_share: Share of pixels with a clipped channel.
        cast_chroma: Distance of the mean a*, b* from neutral (8-bit Lab units).
        min_side_px: Shorter side of the photo in px.
        skin_fraction: Skin (lesions included) / all pixels; None without a skin mask.
        ambiguous_share: Share of skin pixels with an ambiguous lesion probability.
        mean_uncertainty: Mean TTA spread of the lesion probability over skin; None without TTA.
        ambiguous_skin_share: Share of the photo with an ambiguous skin probability; None
            without a skin probability.
        depigmented_share: Depigmented share of the outlined lesion; None without a
            depigmented mask or with too little lesion.
        ita_deg: Typology angle of the normal skin in degrees; None without enough skin.
    """

    flags: tuple[str, ...]
    laplacian_var: float
    dark_share: float
    grey_p99: float
    clipped_share: float
    cast_chroma: float
    min_side_px: int
    skin_fraction: float | None = None
    ambiguous_share: float | None = None
    mean_uncertainty: float | None = None
    ambiguous_skin_share: float | None = None
    depigmented_share: float | None = None
    ita_deg: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "flags": list(self.flags)}


def shrink_to_long_side(array: np.ndarray, long_side: int, interpolation: int) -> np.ndarray:
    height, width = array.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1:
        return array
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(array, size, interpolation=interpolation)


def mask_at_size_of(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``mask`` at the size of ``like``; nearest keeps it binary."""
    size = (like.shape[1], like.shape[0])
    return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST_EXACT) > 0


def assess_quality(
    rgb: np.ndarray,
    skin: np.ndarray | None = None,
    lesion_probability: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
    config: QualityConfig | None = None,
    lesion: np.ndarray | None = None,
    skin_probability: np.ndarray | None = None,
    depigmented: np.ndarray | None = None,
) -> QualityReport:
    """Measure a photo (and optionally the model's output on it) and raise flags.

    Args:
        rgb: (H, W, 3) uint8 RGB photo.
        skin: (H, W) bool skin mask (lesions included), or None.
        lesion_probability: (H, W) float32 lesion probability in [0, 1], or None.
        uncertainty: (H, W) float32 per-pixel TTA spread of the lesion probability, or None.
        config: Thresholds; None for the defaults.
        lesion: (H, W) bool lesion mask, left out of the skin whose tone is measured.
        skin_probability: (H, W) float32 skin probability in [0, 1], or None.
        depigmented: (H, W) bool depigmented mask inside ``lesion``, or None.

    Returns:
        The measures and the raised flags.
    """
    config = config or QualityConfig()
    height, width = rgb.shape[:2]
    small = shrink_to_long_side(rgb, config.analysis_long_side, cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    laplacian_var = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    dark_share = float(np.mean(grey <= config.dark_level))
    grey_p99 = float(np.percentile(grey, 99))
    clipped_share = float(np.mean(small.max(axis=2) >= config.bright_level))

    small_skin = mask_at_size_of(skin, small) if skin is not None else None
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    background = ~small_skin if small_skin is not None else None
    if background is not None and background.mean() >= config.cast_min_background_share:
        chroma_pixels = lab[background][:, 1:]
        cast_limit = config.cast_max_chroma
    else:
        chroma_pixels = lab.reshape(-1, 3)[:, 1:]
        cast_limit = config.cast_max_chroma_whole
    mean_ab = chroma_pixels.mean(axis=0) - 128.0  # OpenCV stores a*, b* offset by 128
    cast_chroma = float(np.hypot(mean_ab[0], mean_ab[1]))

    skin_fraction = ambiguous_share = mean_uncertainty = ita_deg = None
    # Confidence is judged over skin; with no skin mask (or no skin) over the whole photo.
    region: np.ndarray | bool = True
    if skin is not None:
        skin_px = int(np.count_nonzero(skin))
        skin_fraction = skin_px / skin.size
        region = skin if skin_px else True
        normal = small_skin & ~mask_at_size_of(lesion, small) if lesion is not None else small_skin
        ita_deg = individual_typology_angle(small, normal)
    if lesion_probability is not None:
        ambiguous = (lesion_probability >= config.ambiguous_low) & (
            lesion_probability <= config.ambiguous_high
        )
        ambiguous_share = float(np.mean(ambiguous, where=region))
    if uncertainty is not None:
        mean_uncertainty = float(np.mean(uncertainty, where=region, dtype=np.float64))
    ambiguous_skin_share = None
    if skin_probability is not None:
        # Over the whole photo: a wall taken for skin is as wrong as skin taken for a wall.
        ambiguous_skin_share = float(
            np.mean(
                (skin_probability >= config.skin_ambiguous_low)
                & (skin_probability <= config.skin_ambiguous_high)
            )
        )
    depigmented_share = None
    if depigmented is not None and lesion is not None:
        lesion_px = int(np.count_nonzero(lesion))
        if lesion_px and lesion_px >= config.depigmented_share_min_lesion * lesion.size:
            depigmented_share = np.count_nonzero(depigmented & lesion) / lesion_px

    raised = {
        "blur": laplacian_var < config.blur_min_laplacian_var,
        "underexposed": dark_share > config.underexposed_max_dark_share
        or grey_p99 < config.underexposed_p99,
        "overexposed": clipped_share > config.overexposed_max_clipped_share,
        "colour_cast": cast_chroma > cast_limit,
        "too_small": min(height, width) < config.min_side_px,
        "little_skin": skin_fraction is not None and skin_fraction < config.min_skin_fraction,
        "low_confidence": (
            ambiguous_share is not None and ambiguous_share > config.max_ambiguous_share
        )
        or (mean_uncertainty is not None and mean_uncertainty > config.max_mean_uncertainty),
        "uncertain_skin": ambiguous_skin_share is not None
        and ambiguous_skin_share > config.max_ambiguous_skin_share,
        "faint_depigmentation": depigmented_share is not None
        and depigmented_share < config.min_depigmented_share,
        "light_skin": ita_deg is not None and ita_deg > config.light_skin_min_ita,
    }
    return QualityReport(
        flags=tuple(name for name in FLAG_NAMES if raised[name]),
        laplacian_var=laplacian_var,
        dark_share=dark_share,
        grey_p99=grey_p99,
        clipped_share=clipped_share,
        cast_chroma=cast_chroma,
        min_side_px=min(height, width),
        skin_fraction=skin_fraction,
        ambiguous_share=ambiguous_share,
        mean_uncertainty=mean_uncertainty,
        ambiguous_skin_share=ambiguous_skin_share,
        depigmented_share=depigmented_share,
        ita_deg=ita_deg,
    )
