"""Convert external annotation folders into the vitiseg dataset format.

Two sources are supported:

* **manifest folders**: ``images/`` plus binary ``masks/`` and a ``manifest.csv`` naming
  them (the two real sets in ``../shared/data``); presets :data:`VITILIGO_WEB` and
  :data:`SKIN_PHOTOS` describe those two.
* **YOLO segmentation folders** (what Label Studio and Roboflow export): ``images/`` plus
  ``labels/*.txt`` with normalised polygons, optionally inside ``train/ valid/ test/``.

Images are copied byte for byte (or hard-linked), never re-encoded; masks are written as
0/255 8-bit PNG. Every file is written atomically and only when its content changes, so a
conversion can be re-run or resumed at will.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from skimage.draw import polygon as draw_polygon

from vitiseg.data.dataset_format import MASK_KINDS, write_cases_csv
from vitiseg.io.atomic import write_bytes_atomic, write_png_atomic, write_text_atomic
from vitiseg.io.images import IMAGE_SUFFIXES, ImageReadError, read_mask_raw, read_rgb

logger = logging.getLogger(__name__)

SOURCES_FILE = "sources.csv"


@dataclass(frozen=True)
class ManifestPreset:
    """How to read one manifest folder.

    Attributes:
        mask_kind: what the manifest's ``mask`` column holds, "lesion" or "skin".
        lesion_free: write an all-zero lesion mask for every case (photos known to have no
            lesion; only meaningful when ``mask_kind`` is "skin").
        patient_column: manifest column holding the patient id; empty = the image stem.
        duplicate_column: manifest column (e.g. an md5) whose equal values put cases under
            one patient, so exact duplicates never straddle a split; empty = none.
        region_column: manifest column mapped to a region name through ``region_map``.
        region_map: value of ``region_column`` -> region name; unmapped values give "".
        keep_columns: manifest columns copied to ``sources.csv`` for provenance.
    """

    mask_kind: str = "lesion"
    lesion_free: bool = False
    patient_column: str = ""
    duplicate_column: str = ""
    region_column: str = ""
    region_map: Mapping[str, str] = field(default_factory=dict)
    keep_columns: tuple[str, ...] = ()


VITILIGO_WEB = ManifestPreset(
    mask_kind="lesion",
    # Source photos appear 2-3 times as flipped/cropped copies: group them as one patient.
    patient_column="source_name",
    duplicate_column="md5",
    keep_columns=("source_name", "md5", "n_polygons", "seen_in_folders"),
)

SKIN_PHOTOS = ManifestPreset(
    mask_kind="skin",
    # Nobody in these photos has vitiligo, so "no lesion" is a true label, not a guess.
    lesion_free=True,
    duplicate_column="md5",
    region_column="subset",
    # Only the abdomen close-ups show a single body region; the face/family/ECU photos show
    # faces with neck, hands or whole scenes, so no single region name fits them.
    region_map={"abdomen_train": "trunk", "abdomen_val": "trunk"},
    keep_columns=("subset", "md5", "orig_path"),
)

PRESETS: dict[str, ManifestPreset] = {"vitiligo-web": VITILIGO_WEB, "skin-photos": SKIN_PHOTOS}


@dataclass(frozen=True)
class ImportSummary:
    """What a conversion produced.

    Attributes:
        root: the dataset folder written.
        n_cases: rows in ``cases.csv``.
        n_patients: distinct patient ids.
        n_lesion_masks: cases with a lesion mask.
        n_skin_masks: cases with a skin mask.
        skipped: one message per source item that was left out, naming the file and why.
    """

    root: Path
    n_cases: int
    n_patients: int
    n_lesion_masks: int
    n_skin_masks: int
    skipped: tuple[str, ...] = ()


class _PatientGroups:
    """Union-find over case ids, so grouping keys (patient column, md5) combine."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self._parent.setdefault(item, item)
        while self._parent[item] != item:
            self._parent[item] = self._parent[self._parent[item]]
            item = self._parent[item]
        return item

    def union(self, first: str, second: str) -> None:
        root_a, root_b = self.find(first), self.find(second)
        if root_a != root_b:
            # The smaller name wins so the result does not depend on row order.
            keep, drop = sorted((root_a, root_b))
            self._parent[drop] = keep


def _assign_patients(
    case_ids: list[str], base_ids: dict[str, str], duplicate_keys: dict[str, str]
) -> dict[str, str]:
    """Patient id per case: ``base_ids`` merged wherever cases share a duplicate key."""
    groups = _PatientGroups()
    for case_id in case_ids:
        groups.union(f"p:{base_ids[case_id]}", f"c:{case_id}")
    first_with_key: dict[str, str] = {}
    for case_id in case_ids:
        key = duplicate_keys.get(case_id, "")
        if not key:
            continue
        if key in first_with_key:
            groups.union(f"c:{first_with_key[key]}", f"c:{case_id}")
        else:
            first_with_key[key] = case_id
    # A group is named after the smallest base patient id it contains.
    names: dict[str, str] = {}
    for case_id in sorted(case_ids, key=lambda c: base_ids[c]):
        names.setdefault(groups.find(f"c:{case_id}"), base_ids[case_id])
    return {case_id: names[groups.find(f"c:{case_id}")] for case_id in case_ids}


def _place_image(source: Path, target: Path, *, link: bool) -> None:
    """Copy (or hard-link) ``source`` to ``target`` unless an identical file is there."""
    if target.is_file():
        if target.samefile(source):
            return
        if target.stat().st_size == source.stat().st_size and (
            target.read_bytes() == source.read_bytes()
        ):
            return
    if link:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.link")
        temporary.unlink(missing_ok=True)
        try:
            os.link(source, temporary)
            os.replace(temporary, target)
            return
        except OSError:
            temporary.unlink(missing_ok=True)
            logger.debug("hard link %s -> %s failed; copying", source, target)
    write_bytes_atomic(target, source.read_bytes())


def _write_mask(target: Path, mask: np.ndarray) -> None:
    """Write a (H, W) bool mask as 0/255 uint8 PNG unless the file already holds it."""
    values = np.where(mask, 255, 0).astype(np.uint8)
    if target.is_file():
        try:
            existing = read_mask_raw(target)
            if existing.shape == values.shape and np.array_equal(existing, values):
                return
        except ImageReadError:
            pass
    write_png_atomic(target, values)


def _binary_mask(path: Path, image_shape: tuple[int, int]) -> np.ndarray:
    """Read a source mask as (H, W) bool, refusing wrong sizes and non-binary values.

    Raises:
        ImageReadError: unreadable, not 8-bit single-channel, more than one foreground
            value, or a size different from the image's.
    """
    raw = read_mask_raw(path)
    if raw.ndim != 2 or raw.dtype != np.uint8:
        raise ImageReadError(f"{path}: mask is {raw.dtype} with shape {raw.shape}, not 8-bit grey")
    if raw.shape != image_shape:
        raise ImageReadError(
            f"{path}: mask is {raw.shape[1]}x{raw.shape[0]}, image is "
            f"{image_shape[1]}x{image_shape[0]}"
        )
    foreground_values = np.unique(raw[raw > 0])
    if foreground_values.size > 1:
        raise ImageReadError(f"{path}: mask has several foreground values, not a binary mask")
    return raw > 0


def _write_sources_csv(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def _finish(
    destination: Path,
    rows: list[dict[str, object]],
    provenance: list[dict[str, str]],
    provenance_columns: list[str],
    skipped: list[str],
) -> ImportSummary:
    rows.sort(key=lambda row: str(row["case_id"]))
    provenance.sort(key=lambda row: row["case_id"])
    write_cases_csv(destination / "cases.csv", rows)
    if provenance_columns:
        _write_sources_csv(destination / SOURCES_FILE, provenance, provenance_columns)
    summary = ImportSummary(
        root=destination,
        n_cases=len(rows),
        n_patients=len({row["patient_id"] for row in rows}),
        n_lesion_masks=sum(
            (destination / "masks" / "lesion" / f"{row['case_id']}.png").is_file() for row in rows
        ),
        n_skin_masks=sum(
            (destination / "masks" / "skin" / f"{row['case_id']}.png").is_file() for row in rows
        ),
        skipped=tuple(skipped),
    )
    logger.info(
        "%s: %d cases, %d patients, %d lesion and %d skin masks, %d skipped",
        destination,
        summary.n_cases,
        summary.n_patients,
        summary.n_lesion_masks,
        summary.n_skin_masks,
        len(skipped),
    )
    return summary


def import_manifest_folder(
    source: str | Path,
    destination: str | Path,
    preset: ManifestPreset = VITILIGO_WEB,
    *,
    manifest_name: str = "manifest.csv",
    link: bool = False,
) -> ImportSummary:
    """Convert ``images/`` + ``masks/`` + ``manifest.csv`` into a vitiseg dataset.

    The manifest needs an ``image`` column (file name under ``images/``) and a ``mask``
    column (file name under ``masks/``; an empty cell = not annotated). Case ids are the
    image stems. Items that cannot be read are skipped and listed in the summary.

    Args:
        source: folder holding the manifest, ``images/`` and ``masks/``.
        destination: dataset folder to create or update.
        preset: what the masks mean and where patient ids and regions come from.
        manifest_name: manifest file name inside ``source``.
        link: hard-link images instead of copying them (falls back to a copy).

    Returns:
        An :class:`ImportSummary`.

    Raises:
        FileNotFoundError: no manifest in ``source``.
        ValueError: the manifest lacks a column the preset needs.
    """
    source, destination = Path(source), Path(destination)
    if preset.mask_kind not in MASK_KINDS:
        raise ValueError(f"mask_kind must be one of {MASK_KINDS}, not {preset.mask_kind!r}")
    manifest_path = source / manifest_name
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: manifest not found")
    with open(manifest_path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        columns = list(reader.fieldnames or [])
        manifest = [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]
    needed = ["image", "mask"] + [
        c for c in (preset.patient_column, preset.duplicate_column, preset.region_column) if c
    ]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ValueError(f"{manifest_path}: missing column(s) {', '.join(missing)}")

    skipped: list[str] = []
    kept: dict[str, dict[str, str]] = {}
    for row in manifest:
        image_path = source / "images" / row["image"]
        case_id = Path(row["image"]).stem
        if case_id in kept:
            skipped.append(f"{image_path}: duplicate case id {case_id!r} in the manifest")
            continue
        try:
            rgb = read_rgb(image_path)
            mask = (
                _binary_mask(source / "masks" / row["mask"], rgb.shape[:2])
                if row["mask"]
                else None
            )
        except ImageReadError as exc:
            skipped.append(str(exc))
            logger.warning("skipped: %s", exc)
            continue
        image_target = destination / "images" / f"{case_id}{image_path.suffix.lower()}"
        _place_image(image_path, image_target, link=link)
        if mask is not None:
            _write_mask(destination / "masks" / preset.mask_kind / f"{case_id}.png", mask)
        if preset.lesion_free:
            _write_mask(
                destination / "masks" / "lesion" / f"{case_id}.png",
                np.zeros(rgb.shape[:2], dtype=bool),
            )
        kept[case_id] = row

    case_ids = list(kept)
    base_ids = {
        c: (kept[c][preset.patient_column] if preset.patient_column else "") or c for c in case_ids
    }
    duplicate_keys = (
        {c: kept[c][preset.duplicate_column] for c in case_ids} if preset.duplicate_column else {}
    )
    patients = _assign_patients(case_ids, base_ids, duplicate_keys)
    rows: list[dict[str, object]] = []
    provenance: list[dict[str, str]] = []
    for case_id in case_ids:
        row = kept[case_id]
        region = (
            preset.region_map.get(row[preset.region_column], "") if preset.region_column else ""
        )
        rows.append({"case_id": case_id, "patient_id": patients[case_id], "region": region})
        provenance.append(
            {
                "case_id": case_id,
                "source_image": row["image"],
                **{c: row.get(c, "") for c in preset.keep_columns},
            }
        )
    provenance_columns = ["case_id", "source_image", *preset.keep_columns]
    return _finish(destination, rows, provenance, provenance_columns, skipped)


# --------------------------------------------------------------------------------------
# YOLO segmentation folders
# --------------------------------------------------------------------------------------

_ROBOFLOW_STEM = re.compile(r"^(?P<patient>.+?)\.rf\.[0-9a-fA-F]+$")
YOLO_SPLIT_FOLDERS = ("train", "valid", "val", "test")


def parse_yolo_polygons(text: str, source: str = "") -> list[tuple[int, np.ndarray]]:
    """Parse a YOLO segmentation label file.

    Args:
        text: lines ``class x1 y1 x2 y2 ...`` with coordinates normalised to [0, 1].
        source: file name used in error messages.

    Returns:
        (class_id, (N, 2) float64 normalised x, y points) per polygon, N >= 3.

    Raises:
        ValueError: a line that is not a class id followed by an even number (>= 6) of
            numbers.
    """
    polygons: list[tuple[int, np.ndarray]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            class_id = int(fields[0])
            values = [float(v) for v in fields[1:]]
        except ValueError as exc:
            raise ValueError(f"{source}:{number}: not a YOLO polygon line ({exc})") from exc
        if len(values) == 4:
            # A bounding box (detection export), not a polygon: outline it as a rectangle.
            cx, cy, w, h = values
            values = [cx - w / 2, cy - h / 2, cx + w / 2, cy - h / 2,
                      cx + w / 2, cy + h / 2, cx - w / 2, cy + h / 2]  # fmt: skip
        if len(values) < 6 or len(values) % 2:
            raise ValueError(
                f"{source}:{number}: a polygon needs an even number (>= 6) of coordinates, "
                f"got {len(values)}"
            )
        polygons.append((class_id, np.asarray(values, dtype=np.float64).reshape(-1, 2)))
    return polygons


def rasterise_polygons(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Fill normalised polygons into a (H, W) bool mask.

    A pixel is inside when its centre is. ``cv2.fillPoly`` would also fill every pixel the
    outline touches, inflating each polygon by about half a pixel all round (a 10x6-pixel
    rectangle becomes 11x7, +28 %), which biases the lesion areas that VASI is made of.

    Args:
        polygons: (N, 2) arrays of normalised x, y in [0, 1] (0 and 1 are the image's outer
            edges, not pixel centres).
        height: mask height in pixels.
        width: mask width in pixels.

    Returns:
        (H, W) bool mask, True inside any polygon.
    """
    mask = np.zeros((height, width), dtype=bool)
    for points in polygons:
        # Pixel i covers [i, i + 1) in image units, so its centre sits at index i + 0.5.
        rows = np.clip(points[:, 1], 0.0, 1.0) * height - 0.5
        cols = np.clip(points[:, 0], 0.0, 1.0) * width - 0.5
        filled_rows, filled_cols = draw_polygon(rows, cols, shape=(height, width))
        mask[filled_rows, filled_cols] = True
    return mask


def yolo_patient_id(stem: str, patient_regex: str | None = None) -> str:
    """Patient id from an image stem.

    With ``patient_regex`` the named group ``patient`` (or the first group, or the whole
    match) is used; otherwise the Roboflow stem before ``.rf.`` (``abc_jpg.rf.123`` ->
    ``abc_jpg``), else the stem itself.
    """
    if patient_regex:
        match = re.search(patient_regex, stem)
        if match:
            if "patient" in match.groupdict():
                return match.group("patient")
            return match.group(1) if match.groups() else match.group(0)
        return stem
    roboflow = _ROBOFLOW_STEM.match(stem)
    return roboflow.group("patient") if roboflow else stem


def _yolo_class_names(source: Path) -> dict[int, str]:
    """Class names from ``data.yaml`` (``names:`` as a list or a mapping), if present."""
    for name in ("data.yaml", "data.yml"):
        path = source / name
        if path.is_file():
            from omegaconf import OmegaConf

            names = OmegaConf.to_container(OmegaConf.load(path)).get("names", [])
            if isinstance(names, dict):
                return {int(k): str(v) for k, v in names.items()}
            return {i: str(v) for i, v in enumerate(names or [])}
    return {}


def _resolve_classes(lesion_classes: list[str] | None, names: dict[int, str]) -> set[int] | None:
    """Class ids counted as lesion; None = every class."""
    if not lesion_classes:
        return None
    by_name = {v: k for k, v in names.items()}
    resolved: set[int] = set()
    for item in lesion_classes:
        if item in by_name:
            resolved.add(by_name[item])
        elif item.lstrip("-").isdigit():
            resolved.add(int(item))
        else:
            raise ValueError(f"lesion class {item!r} is neither a class id nor in {names}")
    return resolved


def _yolo_pairs(source: Path) -> list[tuple[str, Path, Path]]:
    """(split folder, image path, label path) for each image, split folders or flat."""
    roots = [(s, source / s) for s in YOLO_SPLIT_FOLDERS if (source / s / "images").is_dir()]
    if (source / "images").is_dir():
        roots.append(("", source))
    pairs: list[tuple[str, Path, Path]] = []
    for split, root in roots:
        for image in sorted((root / "images").iterdir()):
            if image.is_file() and image.suffix.lower() in IMAGE_SUFFIXES:
                pairs.append((split, image, root / "labels" / f"{image.stem}.txt"))
    return pairs


def import_yolo_folder(
    source: str | Path,
    destination: str | Path,
    *,
    lesion_classes: list[str] | None = None,
    patient_regex: str | None = None,
    missing_labels_empty: bool = False,
    link: bool = False,
) -> ImportSummary:
    """Convert a YOLO segmentation export (Label Studio, Roboflow) into a vitiseg dataset.

    Polygons of the lesion classes are filled at the image's size (after EXIF rotation)
    into ``masks/lesion``. The export's own train/valid/test folders are recorded in
    ``sources.csv`` but not used as ``split``: exports often put copies of one photo in
    several folders.

    Args:
        source: export folder with ``images/`` and ``labels/``, or ``train/``,
            ``valid/``, ``test/`` folders each holding both.
        destination: dataset folder to create or update.
        lesion_classes: class ids or names (from ``data.yaml``) that are lesion; None =
            every class.
        patient_regex: regular expression on the image stem giving the patient id (group
            ``patient``, else group 1, else the whole match); default: the Roboflow stem
            before ``.rf.``.
        missing_labels_empty: treat an image without a label file as lesion-free (YOLO
            tools drop empty label files); otherwise it is left not annotated.
        link: hard-link images instead of copying them.

    Returns:
        An :class:`ImportSummary`.
    """
    source, destination = Path(source), Path(destination)
    pairs = _yolo_pairs(source)
    if not pairs:
        raise FileNotFoundError(f"{source}: no images/ folder (flat or in train/valid/test)")
    wanted = _resolve_classes(lesion_classes, _yolo_class_names(source))
    skipped: list[str] = []
    rows: list[dict[str, object]] = []
    provenance: list[dict[str, str]] = []
    seen: set[str] = set()
    for split, image_path, label_path in pairs:
        case_id = image_path.stem
        if case_id in seen:
            skipped.append(f"{image_path}: duplicate case id {case_id!r} across folders")
            continue
        try:
            height, width = read_rgb(image_path).shape[:2]
            if label_path.is_file():
                polygons = parse_yolo_polygons(label_path.read_text(), str(label_path))
                lesion = rasterise_polygons(
                    [p for c, p in polygons if wanted is None or c in wanted], height, width
                )
            elif missing_labels_empty:
                lesion = np.zeros((height, width), dtype=bool)
            else:
                lesion = None
        except (ImageReadError, ValueError, OSError) as exc:
            skipped.append(str(exc))
            logger.warning("skipped: %s", exc)
            continue
        seen.add(case_id)
        _place_image(
            image_path, destination / "images" / f"{case_id}{image_path.suffix.lower()}", link=link
        )
        if lesion is not None:
            _write_mask(destination / "masks" / "lesion" / f"{case_id}.png", lesion)
        rows.append({"case_id": case_id, "patient_id": yolo_patient_id(case_id, patient_regex)})
        provenance.append(
            {
                "case_id": case_id,
                "source_image": image_path.relative_to(source).as_posix(),
                "export_folder": split,
            }
        )
    return _finish(
        destination, rows, provenance, ["case_id", "source_image", "export_folder"], skipped
    )
