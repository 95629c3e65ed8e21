"""Per-photo result records: one JSON file per photo, the unit of resumption.

A record is written atomically after the photo's masks and overlays, so its presence means
the photo is finished. ``scores.csv`` and ``scores.json`` are rebuilt from the records.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitiseg.io.atomic import write_json_atomic
from vitiseg.io.tables import spreadsheet_safe
from vitiseg.vasi import Patch, RegionScore

log = logging.getLogger(__name__)

RECORDS_DIR = "records"
STATUS_OK = "ok"
STATUS_ERROR = "error"
# "input": the file or its manifest row is at fault; kept on resume while the file is
# unchanged. "processing": anything else (e.g. out of memory); retried on resume.
ERROR_INPUT = "input"
ERROR_PROCESSING = "processing"

CSV_COLUMNS = (
    "image",
    "status",
    "error",
    "patient_id",
    "visit",
    "region",
    "case_id",
    "width",
    "height",
    "pixels_per_cm",
    "skin_px",
    "lesion_px",
    "affected_fraction",
    "lesion_fraction",
    "n_patches",
    "patch_levels",
    "hand_units_region",
    "hand_units_affected",
    "vasi",
    "vasi_mode",
    "mean_uncertainty",
    "ambiguous_share",
    "ambiguous_skin_share",
    "depigmented_share",
    "quality_flags",
    "model_id",
    "key",
    "mask_skin",
    "mask_lesion",
    "mask_depigmented",  # three-output models only
    "overlay",
)
_TEXT_COLUMNS = frozenset({"image", "error", "patient_id", "visit", "region", "case_id"})


@dataclass(frozen=True)
class PhotoRecord:
    """Everything known about one scored (or failed) photo.

    Attributes:
        key: Stable photo key (names this record and the photo's output files).
        image: The photo's name as given.
        source: Resolved input path ("" when none was found).
        status: ``ok`` or ``error``.
        error: What went wrong, naming the file; empty when ok.
        error_kind: ``input`` or ``processing`` (see module constants); empty when ok.
        patient_id: From the manifest.
        visit: From the manifest.
        region: VASI region used (manifest, else the run's default), may be empty.
        case_id: From the manifest.
        pixels_per_cm: Image scale, if given.
        body_surface_cm2: Body surface area in cm², if given.
        width: Photo width in px after EXIF rotation.
        height: Photo height in px after EXIF rotation.
        skin_px: Visible skin pixels (lesions included).
        lesion_px: Depigmented pixels within skin.
        affected_fraction: Patch extents / visible skin.
        lesion_fraction: Depigmented pixels / visible skin.
        n_patches: Patches kept.
        patch_levels: Depigmentation level of each kept patch (fractions).
        hand_units_region: The region's hand units (None without a region).
        hand_units_affected: Affected hand units (None without a region).
        vasi: Region VASI of this photo (None without a region).
        vasi_mode: ``region_share`` or ``calibrated``.
        mean_uncertainty: Mean TTA spread of the lesion probability over skin.
        ambiguous_share: Share of skin with a lesion probability in the ambiguous band.
        ambiguous_skin_share: Share of the photo with a skin probability in the ambiguous band.
        depigmented_share: Depigmented share of the outlined lesion (three-output models).
        quality_flags: Raised quality flags.
        quality: All quality measures.
        region_score: ``RegionScore.to_dict()`` for T-VASI sums (None without a region).
        model_id: Model that produced the masks.
        settings_id: Hash of every setting that changes the result.
        input_size: Input size in bytes when read.
        input_mtime_ns: Input modification time when read.
        files: Output files relative to the run folder (mask_skin, mask_lesion,
            mask_depigmented, overlay, photo_thumbnail, overlay_thumbnail, uncertainty).
        seconds: Wall time spent on the photo.
    """

    key: str
    image: str
    source: str
    status: str
    error: str = ""
    error_kind: str = ""
    patient_id: str = ""
    visit: str = ""
    region: str = ""
    case_id: str = ""
    pixels_per_cm: float | None = None
    body_surface_cm2: float | None = None
    width: int | None = None
    height: int | None = None
    skin_px: int | None = None
    lesion_px: int | None = None
    affected_fraction: float | None = None
    lesion_fraction: float | None = None
    n_patches: int | None = None
    patch_levels: tuple[float, ...] = ()
    hand_units_region: float | None = None
    hand_units_affected: float | None = None
    vasi: float | None = None
    vasi_mode: str = ""
    mean_uncertainty: float | None = None
    ambiguous_share: float | None = None
    ambiguous_skin_share: float | None = None
    depigmented_share: float | None = None
    quality_flags: tuple[str, ...] = ()
    quality: dict[str, Any] = field(default_factory=dict)
    region_score: dict[str, Any] | None = None
    model_id: str = ""
    settings_id: str = ""
    input_size: int | None = None
    input_mtime_ns: int | None = None
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["patch_levels"] = list(self.patch_levels)
        data["quality_flags"] = list(self.quality_flags)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhotoRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["patch_levels"] = tuple(values.get("patch_levels") or ())
        values["quality_flags"] = tuple(values.get("quality_flags") or ())
        return cls(**values)

    def region_score_object(self) -> RegionScore | None:
        """The stored :class:`vitiseg.vasi.RegionScore`, for ``total_vasi``."""
        if self.region_score is None:
            return None
        data = dict(self.region_score)
        data["patches"] = tuple(
            Patch(**{**patch, "bbox": tuple(patch["bbox"]), "centroid": tuple(patch["centroid"])})
            for patch in data["patches"]
        )
        return RegionScore(**data)


def record_path(out_dir: Path, key: str) -> Path:
    return out_dir / RECORDS_DIR / f"{key}.json"


def write_record(out_dir: Path, record: PhotoRecord) -> Path:
    """Write the record atomically (a kill leaves either the old file or the new one)."""
    path = record_path(out_dir, record.key)
    write_json_atomic(path, record.to_dict())
    return path


def load_record(path: Path) -> PhotoRecord | None:
    """The record at ``path``; None when missing or unreadable (then it is recomputed)."""
    if not path.is_file():
        return None
    try:
        return PhotoRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("%s: unreadable record (%s); the photo is scored again", path, exc)
        return None


def format_levels(levels: Sequence[float]) -> str:
    """Patches per level, highest first: ``(1.0, 1.0, 0.5)`` -> ``"100%:2;50%:1"``."""
    counts = Counter(levels)
    return ";".join(f"{100 * level:g}%:{counts[level]}" for level in sorted(counts, reverse=True))


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    text = str(value)
    # Names from a user's manifest may start like a formula (vitiseg.io.tables).
    return spreadsheet_safe(text) if column in _TEXT_COLUMNS else text


def csv_row(record: PhotoRecord) -> dict[str, str]:
    """The record as one ``scores.csv`` row (strings, in :data:`CSV_COLUMNS`)."""
    values: dict[str, Any] = {name: getattr(record, name, None) for name in CSV_COLUMNS}
    values["patch_levels"] = format_levels(record.patch_levels)
    values["quality_flags"] = ";".join(record.quality_flags)
    values["mask_skin"] = record.files.get("mask_skin", "")
    values["mask_lesion"] = record.files.get("mask_lesion", "")
    values["mask_depigmented"] = record.files.get("mask_depigmented", "")
    values["overlay"] = record.files.get("overlay", "")
    return {column: _cell(column, values[column]) for column in CSV_COLUMNS}
