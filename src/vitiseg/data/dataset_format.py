"""The vitiseg dataset format (documented in ``data/README.md``).

::

    DATASET/
      images/<case_id>.(jpg|jpeg|png|tif|tiff)
      masks/lesion/<case_id>.png   # optional per case: 0 = not depigmented, non-zero = depigmented
      masks/skin/<case_id>.png     # optional per case: 0 = not skin, non-zero = skin
      masks/depigmented/<case_id>.png  # optional: the depigmented pixels inside the lesions,
                                   # where masks/lesion outlines whole patches (pigment
                                   # islands included), as clinicians draw them
      cases.csv                    # case_id, patient_id; optional visit, region, pixels_per_cm,
                                   # fitzpatrick, split

A missing mask means "not annotated", never "empty".
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from vitiseg.io.atomic import write_text_atomic
from vitiseg.io.images import IMAGE_SUFFIXES

REQUIRED_COLUMNS = ("case_id", "patient_id")
OPTIONAL_COLUMNS = ("visit", "region", "pixels_per_cm", "fitzpatrick", "split")
CASES_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
MASK_KINDS = ("lesion", "skin", "depigmented")


class DatasetFormatError(ValueError):
    """The dataset folder does not follow the format; the message names the file."""


@dataclass(frozen=True)
class Case:
    """One annotated photo. Mask paths are None where the case is not annotated."""

    case_id: str
    patient_id: str
    image_path: Path
    lesion_mask_path: Path | None = None
    skin_mask_path: Path | None = None
    depigmented_mask_path: Path | None = None
    visit: str = ""
    region: str = ""
    pixels_per_cm: float | None = None
    fitzpatrick: int | None = None
    split: str = ""

    def mask_path(self, kind: str) -> Path | None:
        paths = {
            "lesion": self.lesion_mask_path,
            "skin": self.skin_mask_path,
            "depigmented": self.depigmented_mask_path,
        }
        return paths[kind]


def find_images(images_dir: Path) -> dict[str, Path]:
    """Map case_id -> image path for every supported image in ``images_dir``."""
    found: dict[str, Path] = {}
    if not images_dir.is_dir():
        return found
    for path in sorted(images_dir.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.setdefault(path.stem, path)
    return found


def read_cases_csv(path: Path) -> list[dict[str, str]]:
    """Rows of ``cases.csv`` as dicts of stripped strings."""
    if not path.is_file():
        raise DatasetFormatError(f"{path}: cases.csv is missing")
    # utf-8-sig: spreadsheet programs start "CSV UTF-8" files with a byte-order mark.
    with open(path, newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetFormatError(f"{path}: missing required column(s) {', '.join(missing)}")
        return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


def _optional_float(text: str) -> float | None:
    return float(text) if text else None


def _optional_int(text: str) -> int | None:
    return int(float(text)) if text else None


def load_dataset(root: str | Path) -> list[Case]:
    """Read a dataset folder into cases (rows whose image is missing are skipped).

    Use :func:`vitiseg.data.verify.verify_dataset` to find every problem; this loader
    only raises on what makes the folder unusable.
    """
    root = Path(root)
    images = find_images(root / "images")
    cases: list[Case] = []
    seen: set[str] = set()
    for row in read_cases_csv(root / "cases.csv"):
        case_id = row["case_id"]
        if case_id not in images:
            continue
        if case_id in seen:
            # Two rows could give one photo two patients, and so put it in train and val.
            raise DatasetFormatError(f"{root / 'cases.csv'}: case {case_id} is listed twice")
        seen.add(case_id)
        masks = {kind: (root / "masks" / kind / f"{case_id}.png") for kind in MASK_KINDS}
        try:
            cases.append(
                Case(
                    case_id=case_id,
                    patient_id=row["patient_id"] or case_id,
                    image_path=images[case_id],
                    lesion_mask_path=masks["lesion"] if masks["lesion"].is_file() else None,
                    skin_mask_path=masks["skin"] if masks["skin"].is_file() else None,
                    depigmented_mask_path=(
                        masks["depigmented"] if masks["depigmented"].is_file() else None
                    ),
                    visit=row.get("visit", ""),
                    region=row.get("region", ""),
                    pixels_per_cm=_optional_float(row.get("pixels_per_cm", "")),
                    fitzpatrick=_optional_int(row.get("fitzpatrick", "")),
                    split=row.get("split", ""),
                )
            )
        except ValueError as exc:
            raise DatasetFormatError(f"{root / 'cases.csv'}: case {case_id}: {exc}") from exc
    return cases


def write_cases_csv(path: Path, rows: list[dict[str, object]]) -> None:
    """Write ``cases.csv`` atomically with the standard column order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CASES_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CASES_COLUMNS})
    write_text_atomic(path, buffer.getvalue())
