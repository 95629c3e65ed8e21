"""Which photos a scoring run covers: one file, a folder (recursive) or a manifest.

Each photo gets a stable key (a readable slug plus a hash of its identity) that names its
record and output files, so a re-run or another shard finds the same names.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from vitiseg.io.images import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

MANIFEST_IMAGE_COLUMNS = ("image", "case_id")
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class InputError(ValueError):
    """The input path, manifest or shard specification is unusable as a whole."""


@dataclass(frozen=True)
class PhotoInput:
    """One photo to score, with what the manifest says about it.

    Attributes:
        key: Stable file-name-safe identifier of the photo in this run.
        image: The photo's name as the user gave it (path relative to the input folder,
            or the manifest's ``image`` / ``case_id`` value).
        path: The resolved file; None when a manifest row names no existing file.
        patient_id: From the manifest, else empty.
        visit: From the manifest, else empty.
        region: VASI region from the manifest (normalised to snake_case), else empty.
        case_id: From the manifest, else empty.
        pixels_per_cm: Image scale from the manifest, if given.
        body_surface_cm2: The patient's body surface area in cm², if given.
        problem: A manifest problem found before reading (reported as an error row).
    """

    key: str
    image: str
    path: Path | None
    patient_id: str = ""
    visit: str = ""
    region: str = ""
    case_id: str = ""
    pixels_per_cm: float | None = None
    body_surface_cm2: float | None = None
    problem: str = ""


def photo_key(label: str, identity: str) -> str:
    """A file-name-safe key: up to 60 readable characters and 10 hex digits of a hash."""
    slug = _SLUG_UNSAFE.sub("_", label.replace("/", "__")).strip("._") or "photo"
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:10]
    return f"{slug[:60]}-{digest}"


def normalise_region(text: str) -> str:
    """``"Upper extremities"`` -> ``"upper_extremities"``; empty stays empty."""
    return re.sub(r"[\s-]+", "_", text.strip().lower())


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def _walk_images(root: Path, exclude: Sequence[Path]) -> Iterator[Path]:
    """Image files under ``root`` in sorted order; hidden entries and ``exclude`` skipped."""
    excluded = {path.resolve() for path in exclude}
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        # Never score our own outputs when the output folder lies inside the input.
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and (here / d).resolve() not in excluded
        )
        for name in sorted(files):
            if _is_image(name):
                yield here / name


def discover_inputs(
    input_path: str | Path | None,
    manifest: str | Path | None = None,
    *,
    exclude: Sequence[Path] = (),
) -> list[PhotoInput]:
    """List the photos of a run, in a stable order.

    Args:
        input_path: A photo, or a folder searched recursively (hidden files skipped);
            with a manifest, the folder its image names are resolved in (default: the
            manifest's folder).
        manifest: CSV with an ``image`` (path) or ``case_id`` column and optionally
            ``patient_id``, ``visit``, ``region``, ``pixels_per_cm``, ``body_surface_cm2``
            (the columns of ``cases.csv`` work as they are).
        exclude: Folders never searched (the run's output folder).

    Returns:
        Photos in folder order (sorted relative paths) or manifest row order.

    Raises:
        InputError: the input does not exist, a manifest lacks an image column, or a
            folder holds no photos.
    """
    if manifest is not None:
        return _from_manifest(
            Path(manifest), None if input_path is None else Path(input_path), exclude
        )
    if input_path is None:
        raise InputError("give input=PHOTO_OR_FOLDER or manifest=CSV")
    root = Path(input_path).expanduser()
    if root.is_file():
        resolved = root.resolve()
        return [PhotoInput(key=photo_key(root.name, root.name), image=root.name, path=resolved)]
    if not root.is_dir():
        raise InputError(f"{root}: input not found (expected a photo or a folder of photos)")
    photos = []
    for path in _walk_images(root, exclude):
        relative = path.relative_to(root).as_posix()
        photos.append(
            PhotoInput(key=photo_key(relative, relative), image=relative, path=path.resolve())
        )
    if not photos:
        suffixes = ", ".join(IMAGE_SUFFIXES)
        raise InputError(f"{root}: no photos found (looked for {suffixes}, recursively)")
    return photos


def _optional_positive(row: dict[str, str], column: str) -> tuple[float | None, str]:
    text = row.get(column, "")
    if not text:
        return None, ""
    try:
        value = float(text)
    except ValueError:
        return None, f"{column} {text!r} is not a number"
    if not (math.isfinite(value) and value > 0):
        return None, f"{column} {text!r} must be a positive number"
    return value, ""


def _from_manifest(manifest: Path, base: Path | None, exclude: Sequence[Path]) -> list[PhotoInput]:
    manifest = manifest.expanduser()
    if not manifest.is_file():
        raise InputError(f"{manifest}: manifest not found")
    if base is not None and base.is_file():
        raise InputError(f"{base}: with manifest=CSV, input= must be a folder (or omitted)")
    base = (base or manifest.parent).expanduser()
    with open(manifest, newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        columns = [c.strip() for c in reader.fieldnames or []]
        rows = [
            {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
            for row in reader
        ]
    if not any(column in columns for column in MANIFEST_IMAGE_COLUMNS):
        raise InputError(
            f"{manifest}: needs an 'image' column (photo path relative to {base}) or a "
            f"'case_id' column (photo named <case_id>.jpg/.png/... under {base}); "
            f"found columns {columns}"
        )
    by_stem: dict[str, list[Path]] | None = None
    listings: dict[Path, dict[str, list[Path]]] = {}
    photos: list[PhotoInput] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        image_text, case_id = row.get("image", ""), row.get("case_id", "")
        problems = []
        path: Path | None = None
        if image_text:
            label = image_text
            candidate = Path(image_text).expanduser()
            candidates = (
                [candidate]
                if candidate.is_absolute()
                else [base / candidate, manifest.parent / candidate]
            )
            path = next((c for c in candidates if c.is_file()), None)
            if path is None:
                problems.append(f"image {image_text!r} not found under {base}")
        elif case_id:
            label = case_id
            matches = _direct_matches(case_id, [base, manifest.parent], listings)
            if not matches:
                if by_stem is None:
                    by_stem = _index_by_stem([base, manifest.parent], exclude)
                matches = by_stem.get(case_id, [])
            if len(matches) == 1:
                path = matches[0]
            elif not matches:
                problems.append(f"no photo named {case_id}.(jpg|png|tif...) under {base}")
            else:
                names = ", ".join(str(m) for m in matches[:3])
                problems.append(f"case_id {case_id!r} matches several photos: {names}")
        else:
            log.warning("%s line %d: no image or case_id; row skipped", manifest, line)
            continue
        pixels_per_cm, problem = _optional_positive(row, "pixels_per_cm")
        problems += [problem] if problem else []
        body_surface, problem = _optional_positive(row, "body_surface_cm2")
        problems += [problem] if problem else []
        patient_id, visit = row.get("patient_id", ""), row.get("visit", "")
        region = normalise_region(row.get("region", ""))
        identity = "\x1f".join((label, patient_id, visit, region))
        if identity in seen:
            log.warning("%s line %d repeats line %d; scored once", manifest, line, seen[identity])
            continue
        seen[identity] = line
        if problems:
            problems = [f"{manifest.name} line {line}: " + "; ".join(problems)]
        photos.append(
            PhotoInput(
                key=photo_key(label, identity),
                image=(_display_name(path, base) or label) if not image_text else label,
                path=None if path is None else path.resolve(),
                patient_id=patient_id,
                visit=visit,
                region=region,
                case_id=case_id,
                pixels_per_cm=pixels_per_cm,
                body_surface_cm2=body_surface,
                problem=problems[0] if problems else "",
            )
        )
    if not photos:
        raise InputError(f"{manifest}: no rows with an image or case_id")
    return photos


def _display_name(path: Path | None, base: Path) -> str:
    """The found photo's path relative to ``base`` (its name when outside it)."""
    if path is None:
        return ""
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.name


def _direct_matches(
    case_id: str, roots: Sequence[Path], listings: dict[Path, dict[str, list[Path]]]
) -> list[Path]:
    """``<root>/images/<case_id>.*`` (the dataset format), else ``<root>/<case_id>.*``.

    ``listings`` caches each folder's stem -> photos, so a long manifest lists it once.
    """
    for folder in [root / "images" for root in roots] + list(roots):
        if folder not in listings:
            listing: dict[str, list[Path]] = {}
            if folder.is_dir():
                for entry in sorted(folder.iterdir()):
                    if _is_image(entry.name) and entry.is_file():
                        listing.setdefault(entry.stem, []).append(entry.resolve())
            listings[folder] = listing
        if listings[folder].get(case_id):
            return listings[folder][case_id]
    return []


def _index_by_stem(roots: Sequence[Path], exclude: Sequence[Path]) -> dict[str, list[Path]]:
    """File stem -> image paths under the roots, each file once (masks/ folders skipped)."""
    index: dict[str, list[Path]] = {}
    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for path in _walk_images(root, exclude):
            if "masks" in path.relative_to(root).parts[:-1]:
                continue  # a dataset's masks share the photos' names
            resolved = path.resolve()
            if resolved not in seen:
                seen.add(resolved)
                index.setdefault(path.stem, []).append(resolved)
    return index


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` -> (i, n) with 0 <= i < n; None or empty -> None."""
    if text is None or str(text).strip() == "":
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise InputError(f"shard={text!r}: expected i/n, e.g. shard=0/4")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise InputError(f"shard={text!r}: need 0 <= i < n")
    return index, count


def shard_of(key: str, count: int) -> int:
    """The shard a photo belongs to: a stable hash of its key, modulo ``count``.

    A hash (not the position) keeps each photo in its shard when photos are added.
    """
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16) % count


def select_shard(photos: Sequence[PhotoInput], index: int, count: int) -> list[PhotoInput]:
    """The photos of shard ``index`` of ``count``, in their original order."""
    return [photo for photo in photos if shard_of(photo.key, count) == index]
