"""Records of generated cases: what goes into ``cases.csv`` and ``truth.json``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vitiseg.synth.patches import PatchLayout, PatchTruth

REGIONS: tuple[str, ...] = (
    "face",
    "hands",
    "upper_extremities",
    "trunk",
    "lower_extremities",
    "feet",
    "head_neck",
)


@dataclass(frozen=True)
class CaseTruth:
    """Exact truth of one synthetic photo.

    Attributes:
        case_id: File stem of the image and masks.
        patient_id: Grouping key for splits (one source photo = one patient in painted mode).
        region: Body region, one of :data:`REGIONS`.
        pixels_per_cm: Nominal scale of the photo (pixels per centimetre of skin).
        fitzpatrick: Skin type 1-6 of the normal skin, from its measured ITA (None when
            no normal skin could be measured).
        ita_deg: ITA in degrees measured on the written image's normal skin.
        skin_px: Skin pixels (lesions included).
        lesion_px: Depigmented pixels.
        patches: Designed patches.
        gap_px: Minimum distance in pixels kept between patch extents.
        jpeg_quality: Quality the image was encoded with.
        source: Source photo file name (painted mode), else None.
    """

    case_id: str
    patient_id: str
    region: str
    pixels_per_cm: float
    fitzpatrick: int | None
    ita_deg: float
    skin_px: int
    lesion_px: int
    patches: tuple[PatchTruth, ...]
    gap_px: int
    jpeg_quality: int
    source: str | None = None

    def to_json(self) -> dict[str, object]:
        """The case's entry in ``truth.json``."""
        entry: dict[str, object] = {
            "region": self.region,
            "skin_px": self.skin_px,
            "lesion_px": self.lesion_px,
            "patches": [patch.to_json() for patch in self.patches],
            "fitzpatrick": self.fitzpatrick,
            "ita_deg": None if math.isnan(self.ita_deg) else round(self.ita_deg, 2),
            "pixels_per_cm": self.pixels_per_cm,
            "gap_px": self.gap_px,
            "jpeg_quality": self.jpeg_quality,
        }
        if self.source is not None:
            entry["source"] = self.source
        return entry

    def csv_row(self) -> dict[str, object]:
        """The case's row in ``cases.csv`` (split left empty for the splitter)."""
        return {
            "case_id": self.case_id,
            "patient_id": self.patient_id,
            "visit": "",
            "region": self.region,
            "pixels_per_cm": self.pixels_per_cm,
            "fitzpatrick": self.fitzpatrick,
            "split": "",
        }


@dataclass(frozen=True)
class SynthCase:
    """One generated photo with its masks.

    Attributes:
        jpeg: The encoded image file.
        image: (H, W, 3) uint8 RGB, the decoded ``jpeg`` (what readers will see).
        skin: (H, W) bool skin mask, lesions included.
        lesion: (H, W) bool depigmented pixels, a subset of ``skin``.
        truth: The case's truth record.
        extent: (H, W) bool union of the patch outlines on skin (pigment specks inside
            included): what an annotator drawing polygons around patches would mark.
    """

    jpeg: bytes
    image: np.ndarray
    skin: np.ndarray
    lesion: np.ndarray
    truth: CaseTruth
    extent: np.ndarray | None = None

    @classmethod
    def from_layout(
        cls, jpeg: bytes, image: np.ndarray, skin: np.ndarray, layout: PatchLayout, truth
    ) -> SynthCase:
        """The case whose lesion and outline masks come from ``layout``."""
        extent = (layout.extent_labels > 0) & skin
        return cls(jpeg, image, skin, layout.lesion, truth, extent)
