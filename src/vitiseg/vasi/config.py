"""VASI settings: region table, depigmentation levels, cut points, radii (``configs/vasi/``).

:class:`VasiConfig` defaults equal ``configs/vasi/default.yaml`` (a test keeps them in step).
The loader is the only file I/O in :mod:`vitiseg.vasi`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from vitiseg.vasi._records import JsonRecord

# Adult table in percent of body surface area (%BSA). Rule of nines blocks, split where
# VASI splits them: head and neck 9 = face 3 + rest 6; each arm 9 = hand 2 + arm 7;
# each leg 18 = foot 2 + leg 16; trunk 18 + 18; genitals (perineum) 1. See docs/vasi.md.
ADULT_REGIONS_PERCENT_BSA: Mapping[str, float] = MappingProxyType(
    {
        "face": 3.0,
        "head_neck": 6.0,
        "hands": 4.0,
        "upper_extremities": 14.0,
        "trunk": 36.0,
        "lower_extremities": 32.0,
        "feet": 4.0,
        "genitals": 1.0,
    }
)


@dataclass(frozen=True)
class VasiConfig(JsonRecord):
    """Everything the VASI maths needs; see ``docs/vasi.md`` for each definition.

    Attributes:
        regions: Region name -> share of body surface area in percent. Divided by
            ``hand_unit_percent`` it gives the region's hand units (equal when that is 1).
        levels: VASI depigmentation levels as fractions, descending (1.0 = no pigment).
        cut_points: Lower bound of each level's share band, descending, one per level; a
            patch whose depigmented share is below the last cut point is dropped as noise.
        merge_radius_px: Radius in pixels of the disk used to merge speckled depigmentation
            into patches; when None, ``merge_radius_fraction`` is used.
        merge_radius_fraction: Merge radius as a fraction of the visible skin's equivalent
            diameter ``sqrt(4 * area / pi)``, so the same photo at another resolution gives
            the same patches.
        min_patch_area_px: Smallest kept patch extent in pixels.
        min_patch_area_fraction: Smallest kept patch extent as a fraction of visible skin.
        min_patch_area_cm2: Smallest kept patch extent in cm², used when ``pixels_per_cm``
            is known. The largest of the applicable minimums applies.
        hand_unit_percent: Body surface area of one hand unit, in percent (1.0 as in
            Hamzavi et al. 2004; measured adult hands are smaller, e.g. 0.78 to 0.87).
        include_head_neck_in_t_vasi: Whether ``head_neck_regions`` count in T-VASI.
        head_neck_regions: Regions that make up head and neck.
        face_region: The region whose VASI is F-VASI.
        smallest_detectable_change: Relative change (0.071 = 7.1 %) below which a
            baseline/follow-up difference is flagged as within measurement error.
        probability_threshold: A probability at or above it counts as skin / lesion.
        connectivity: Pixel connectivity of patches: 1 = 4-neighbours, 2 = 8-neighbours.
    """

    regions: Mapping[str, float] = field(default_factory=lambda: dict(ADULT_REGIONS_PERCENT_BSA))
    levels: tuple[float, ...] = (1.0, 0.9, 0.75, 0.5, 0.25, 0.1)
    cut_points: tuple[float, ...] = (0.95, 0.825, 0.625, 0.375, 0.175, 0.05)
    merge_radius_px: float | None = None
    merge_radius_fraction: float = 0.02
    min_patch_area_px: int = 16
    min_patch_area_fraction: float = 0.0001
    min_patch_area_cm2: float | None = None
    hand_unit_percent: float = 1.0
    include_head_neck_in_t_vasi: bool = True
    head_neck_regions: tuple[str, ...] = ("face", "head_neck")
    face_region: str = "face"
    smallest_detectable_change: float = 0.071
    probability_threshold: float = 0.5
    connectivity: int = 2

    def __post_init__(self) -> None:
        # Freeze containers so a shared config cannot be changed behind a caller's back.
        regions = {str(name): float(value) for name, value in dict(self.regions).items()}
        object.__setattr__(self, "regions", MappingProxyType(regions))
        object.__setattr__(self, "levels", tuple(float(level) for level in self.levels))
        object.__setattr__(self, "cut_points", tuple(float(cut) for cut in self.cut_points))
        object.__setattr__(self, "head_neck_regions", tuple(self.head_neck_regions))
        for name in ("merge_radius_px", "min_patch_area_cm2"):
            value = getattr(self, name)
            object.__setattr__(self, name, None if value is None else float(value))
        self._validate()

    def _validate(self) -> None:
        if not self.regions:
            raise ValueError("regions: at least one region is needed")
        for name, percent in self.regions.items():
            if not (math.isfinite(percent) and percent > 0):
                raise ValueError(f"regions.{name}: must be a positive %BSA, got {percent}")
        if not self.levels or len(self.levels) != len(self.cut_points):
            raise ValueError("levels and cut_points need the same, non-zero length")
        for name, values in (("levels", self.levels), ("cut_points", self.cut_points)):
            if any(not 0 < value <= 1 for value in values):
                raise ValueError(f"{name}: every value must lie in (0, 1], got {values}")
            if any(a <= b for a, b in zip(values, values[1:], strict=False)):
                raise ValueError(f"{name}: must be strictly descending, got {values}")
        if self.merge_radius_px is not None and self.merge_radius_px < 0:
            raise ValueError("merge_radius_px: must be >= 0 or null")
        if self.merge_radius_fraction < 0:
            raise ValueError("merge_radius_fraction: must be >= 0")
        if self.min_patch_area_px < 0 or self.min_patch_area_fraction < 0:
            raise ValueError("min_patch_area_px and min_patch_area_fraction: must be >= 0")
        if self.min_patch_area_cm2 is not None and self.min_patch_area_cm2 < 0:
            raise ValueError("min_patch_area_cm2: must be >= 0 or null")
        if not self.hand_unit_percent > 0:
            raise ValueError("hand_unit_percent: must be > 0")
        if not 0 < self.probability_threshold <= 1:
            raise ValueError("probability_threshold: must lie in (0, 1]")
        if self.smallest_detectable_change < 0:
            raise ValueError("smallest_detectable_change: must be >= 0")
        if self.connectivity not in (1, 2):
            raise ValueError("connectivity: 1 (4-neighbours) or 2 (8-neighbours)")

    def hand_units(self, region: str) -> float:
        """Hand units of a whole region: its %BSA over ``hand_unit_percent``.

        Raises:
            KeyError: the region is not in the table (the message lists the known ones).
        """
        if region not in self.regions:
            known = ", ".join(self.regions)
            raise KeyError(f"unknown VASI region {region!r}; the config knows: {known}")
        return self.regions[region] / self.hand_unit_percent

    def in_t_vasi(self, region: str) -> bool:
        """Whether a region's VASI counts towards T-VASI."""
        return self.include_head_neck_in_t_vasi or region not in self.head_neck_regions


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(VasiConfig))


def load_vasi_config(source: str | Path | Mapping[str, Any] | None = None) -> VasiConfig:
    """Build a :class:`VasiConfig` from a YAML file, a mapping or an OmegaConf node.

    Args:
        source: Path to a YAML file such as ``configs/vasi/default.yaml``; a mapping (for
            example ``cfg.vasi`` from a Hydra command, interpolations resolved); or None
            for the defaults.

    Returns:
        The validated config. Keys missing from ``source`` keep their defaults.

    Raises:
        ValueError: an unknown key (usually a typo) or an invalid value.
    """
    if source is None:
        return VasiConfig()
    if isinstance(source, (str, Path)):
        import yaml  # loading only; the maths never touches files

        with Path(source).open(encoding="utf-8") as stream:
            values = yaml.safe_load(stream) or {}
    else:
        values = _plain_mapping(source)
    if not isinstance(values, Mapping):
        raise ValueError(f"VASI config must be a mapping, got {type(values).__name__}")
    unknown = sorted(set(values) - _FIELD_NAMES)
    if unknown:
        raise ValueError(f"unknown VASI config keys {unknown}; known: {sorted(_FIELD_NAMES)}")
    return VasiConfig(**dict(values))


def _plain_mapping(source: Mapping[str, Any]) -> Mapping[str, Any]:
    """Resolve an OmegaConf node to plain containers; other mappings pass through."""
    if type(source).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(source, resolve=True)  # type: ignore[return-value]
    return source
