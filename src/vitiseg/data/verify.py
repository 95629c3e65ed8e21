"""Find every problem in a vitiseg dataset folder (format: ``data/README.md``).

:func:`verify_dataset` never stops at the first problem: it returns one
:class:`Problem` per finding, each naming the file and what is wrong, so a whole
folder can be fixed in one pass.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitiseg.data.dataset_format import (
    MASK_KINDS,
    DatasetFormatError,
    read_cases_csv,
)
from vitiseg.data.identical_files import identical_file_groups
from vitiseg.io.images import IMAGE_SUFFIXES, ImageReadError, read_mask_raw, read_rgb

logger = logging.getLogger(__name__)

# Fallback when the VASI config is not at hand; the CLI reads configs/vasi/default.yaml.
DEFAULT_REGIONS = (
    "face",
    "head_neck",
    "hands",
    "upper_extremities",
    "trunk",
    "lower_extremities",
    "feet",
    "genitals",
)
FITZPATRICK_TYPES = range(1, 7)


@dataclass(frozen=True)
class Problem:
    """One finding: the file concerned and what is wrong with it."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class VerifyCounts:
    """What the dataset holds (cases = distinct case ids in ``cases.csv`` with an image)."""

    cases: int = 0
    patients: int = 0
    lesion_masks: int = 0
    skin_masks: int = 0
    depigmented_masks: int = 0


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify_dataset`: every problem found and what the dataset holds."""

    root: Path
    problems: list[Problem]
    counts: VerifyCounts

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: the counts, and the number of problems when there are any."""
        counts = self.counts
        text = (
            f"{self.root}: {counts.cases} cases, {counts.patients} patients, "
            f"{counts.lesion_masks} lesion and {counts.skin_masks} skin annotations"
        )
        if counts.depigmented_masks:
            text += f", {counts.depigmented_masks} depigmented"
        if self.problems:
            text += f"; {len(self.problems)} problem(s)"
        return text


@dataclass(frozen=True)
class _MaskInfo:
    """A mask that passed its own checks: (H, W) bool foreground."""

    foreground: np.ndarray


def _check_mask(path: Path, image_shape: tuple[int, int] | None) -> list[Problem] | _MaskInfo:
    """Problems with one mask file, or the mask itself when it is sound."""
    try:
        raw = read_mask_raw(path)
    except ImageReadError as exc:
        return [Problem(path, f"unreadable mask ({_strip_path(exc, path)})")]
    problems: list[Problem] = []
    if raw.ndim != 2:
        channels = raw.shape[2] if raw.ndim == 3 else "?"
        problems.append(
            Problem(path, f"mask has {channels} channels (shape {raw.shape}); expected one")
        )
    if raw.dtype != np.uint8:
        problems.append(Problem(path, f"mask is {raw.dtype}, expected 8-bit (uint8)"))
    if problems:
        return problems
    foreground_values = np.unique(raw[raw > 0])
    if foreground_values.size > 1:
        shown = ", ".join(str(v) for v in foreground_values[:6].tolist())
        more = ", ..." if foreground_values.size > 6 else ""
        problems.append(
            Problem(
                path,
                f"mask has {foreground_values.size + 1} values (0, {shown}{more}); expected 0 "
                "and one foreground value (1 or 255)",
            )
        )
    if image_shape is not None and raw.shape != image_shape:
        problems.append(
            Problem(
                path,
                f"mask is {raw.shape[1]}x{raw.shape[0]} pixels but its image is "
                f"{image_shape[1]}x{image_shape[0]}",
            )
        )
    return problems or _MaskInfo(foreground=raw > 0)


def _strip_path(exc: Exception, path: Path) -> str:
    """The error message without the leading path (the Problem already names it)."""
    message = str(exc)
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _scan_images(images_dir: Path) -> tuple[dict[str, list[Path]], list[Problem]]:
    """case_id -> image files, and problems with files that no loader would pick up."""
    found: dict[str, list[Path]] = defaultdict(list)
    problems: list[Problem] = []
    if not images_dir.is_dir():
        return found, [Problem(images_dir, "images folder is missing")]
    for path in sorted(images_dir.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            found[path.stem].append(path)
        else:
            problems.append(
                Problem(
                    path,
                    f"not a supported image type ({', '.join(IMAGE_SUFFIXES)}); "
                    "the loader ignores it",
                )
            )
    return found, problems


def _check_row_fields(
    row: dict[str, str], where: Path, allowed_regions: frozenset[str]
) -> list[Problem]:
    case_id = row["case_id"]
    problems: list[Problem] = []
    if not row.get("patient_id", ""):
        problems.append(Problem(where, f"case {case_id!r}: patient_id is empty"))
    region = row.get("region", "")
    if region and region not in allowed_regions:
        problems.append(
            Problem(
                where,
                f"case {case_id!r}: unknown region {region!r} "
                f"(allowed: {', '.join(sorted(allowed_regions))})",
            )
        )
    scale = row.get("pixels_per_cm", "")
    if scale:
        try:
            value = float(scale)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            problems.append(
                Problem(
                    where,
                    f"case {case_id!r}: pixels_per_cm {scale!r} is not a positive number",
                )
            )
    skin_type = row.get("fitzpatrick", "")
    if skin_type:
        try:
            number = float(skin_type)
            valid = number.is_integer() and int(number) in FITZPATRICK_TYPES
        except ValueError:
            valid = False
        if not valid:
            problems.append(
                Problem(
                    where,
                    f"case {case_id!r}: fitzpatrick {skin_type!r} is not a type 1 to 6",
                )
            )
    return problems


def _unique_rows(
    rows: list[dict[str, str]], cases_path: Path, regions: frozenset[str]
) -> tuple[dict[str, dict[str, str]], list[Problem]]:
    """case_id -> row for the first row of each id, and problems with the rows."""
    cases: dict[str, dict[str, str]] = {}
    problems: list[Problem] = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        case_id = row["case_id"]
        if not case_id:
            problems.append(Problem(cases_path, f"line {line}: case_id is empty"))
        elif case_id in cases:
            problems.append(Problem(cases_path, f"line {line}: duplicate case_id {case_id!r}"))
        else:
            cases[case_id] = row
            problems.extend(_check_row_fields(row, cases_path, regions))
    return cases, problems


def _unmatched_images(
    images: dict[str, list[Path]], cases: dict[str, dict[str, str]], images_dir: Path
) -> list[Problem]:
    problems: list[Problem] = []
    for case_id, paths in sorted(images.items()):
        if case_id not in cases:
            problems.extend(Problem(path, "image has no row in cases.csv") for path in paths)
        elif len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            problems.append(Problem(images_dir, f"case {case_id!r} has several images ({names})"))
    return problems


def _stray_masks(mask_dirs: dict[str, Path], with_image: set[str]) -> list[Problem]:
    """Mask files no case will ever load: wrong suffix, or no case with an image."""
    problems: list[Problem] = []
    for kind, mask_dir in mask_dirs.items():
        if not mask_dir.is_dir():
            continue
        for path in sorted(mask_dir.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            if path.suffix.lower() != ".png":
                problems.append(
                    Problem(path, f"{kind} masks must be <case_id>.png; the loader ignores it")
                )
            elif path.stem not in with_image:
                problems.append(
                    Problem(path, f"stray {kind} mask: no case {path.stem!r} with an image")
                )
    return problems


def _case_files(
    case_id: str, image_path: Path, mask_dirs: dict[str, Path], max_lesion_outside_skin: int
) -> tuple[list[Problem], set[str]]:
    """Problems with one case's image and masks, and the mask kinds it has."""
    problems: list[Problem] = []
    try:
        image_shape: tuple[int, int] | None = read_rgb(image_path).shape[:2]
    except ImageReadError as exc:
        problems.append(Problem(image_path, _strip_path(exc, image_path)))
        image_shape = None
    present: set[str] = set()
    sound: dict[str, np.ndarray] = {}
    for kind, mask_dir in mask_dirs.items():
        mask_path = mask_dir / f"{case_id}.png"
        if not mask_path.is_file():
            continue
        present.add(kind)
        result = _check_mask(mask_path, image_shape)
        if isinstance(result, _MaskInfo):
            sound[kind] = result.foreground
        else:
            problems.extend(result)
    lesion, skin = sound.get("lesion"), sound.get("skin")
    if lesion is not None and skin is not None and lesion.shape == skin.shape:
        outside = int(np.count_nonzero(lesion & ~skin))
        if outside > max_lesion_outside_skin:
            problems.append(
                Problem(
                    mask_dirs["lesion"] / f"{case_id}.png",
                    f"{outside} lesion pixel(s) lie outside the skin mask "
                    f"({outside / max(int(lesion.sum()), 1):.1%} of the lesion)",
                )
            )
    depigmented = sound.get("depigmented")
    if depigmented is not None and lesion is not None and depigmented.shape == lesion.shape:
        # The lesion mask outlines whole patches; depigmented pixels lie inside them.
        outside = int(np.count_nonzero(depigmented & ~lesion))
        if outside:
            problems.append(
                Problem(
                    mask_dirs["depigmented"] / f"{case_id}.png",
                    f"{outside} depigmented pixel(s) lie outside the lesion mask",
                )
            )
    return problems, present


def _patients_in_several_splits(
    cases: dict[str, dict[str, str]], cases_path: Path
) -> list[Problem]:
    splits_by_patient: dict[str, set[str]] = defaultdict(set)
    for row in cases.values():
        if row.get("patient_id") and row.get("split"):
            splits_by_patient[row["patient_id"]].add(row["split"])
    return [
        Problem(
            cases_path,
            f"patient {patient_id!r} is in {len(splits)} splits "
            f"({', '.join(sorted(splits))}); a patient must stay in one split",
        )
        for patient_id, splits in sorted(splits_by_patient.items())
        if len(splits) > 1
    ]


def _identical_photos_of_several_patients(
    cases: dict[str, dict[str, str]], images: dict[str, list[Path]], cases_path: Path
) -> list[Problem]:
    """The same photo (identical files) under two patient ids: a patient-grouped split
    could put one copy in training and the other in validation."""
    with_image = [case_id for case_id in cases if case_id in images]
    groups = identical_file_groups([images[case_id][0] for case_id in with_image])
    problems = []
    for group in groups:
        ids = [with_image[index] for index in group]
        patients = sorted({cases[case_id]["patient_id"] for case_id in ids})
        if len(patients) > 1:
            problems.append(
                Problem(
                    cases_path,
                    f"cases {', '.join(map(repr, ids))} are the same photo (identical image "
                    f"files) under patients {', '.join(map(repr, patients))}; give them one "
                    "patient_id, or a split may put a copy on each side",
                )
            )
    return problems


def verify_dataset(
    root: str | Path,
    allowed_regions: Iterable[str] = DEFAULT_REGIONS,
    *,
    max_lesion_outside_skin: int = 0,
) -> VerifyReport:
    """Check a dataset folder and list every problem.

    Checks: ``cases.csv`` present with its required columns; empty or duplicate case ids;
    empty patient ids; rows without an image and images without a row; several images for
    one case id; unreadable or truncated images; masks that are unreadable, not
    single-channel 8-bit, not binary (0 plus one foreground value), a different size from
    their image, or without a case (stray); lesion pixels outside the case's skin mask;
    one patient in two splits; the same photo (identical image files) under two patients;
    unknown regions; non-positive ``pixels_per_cm``;
    Fitzpatrick types outside 1-6.

    Args:
        root: the dataset folder.
        allowed_regions: region names a ``region`` cell may hold (an empty cell is fine).
        max_lesion_outside_skin: lesion pixels allowed outside the skin mask per case.

    Returns:
        A :class:`VerifyReport`; ``report.ok`` is True when nothing was found.
    """
    root = Path(root)
    cases_path = root / "cases.csv"
    images, problems = _scan_images(root / "images")
    try:
        rows = read_cases_csv(cases_path)
    except DatasetFormatError as exc:
        problems.append(Problem(cases_path, _strip_path(exc, cases_path)))
        return VerifyReport(root=root, problems=problems, counts=VerifyCounts())
    if not rows:
        problems.append(Problem(cases_path, "cases.csv has no rows"))

    cases, row_problems = _unique_rows(rows, cases_path, frozenset(allowed_regions))
    problems.extend(row_problems)
    problems.extend(_unmatched_images(images, cases, root / "images"))
    mask_dirs = {kind: root / "masks" / kind for kind in MASK_KINDS}
    with_image = [case_id for case_id in cases if case_id in images]
    problems.extend(_stray_masks(mask_dirs, set(with_image)))

    mask_counts = dict.fromkeys(MASK_KINDS, 0)
    for case_id in cases:
        if case_id not in images:
            problems.append(Problem(cases_path, f"case {case_id!r} has no image in images/"))
            continue
        case_problems, present = _case_files(
            case_id, images[case_id][0], mask_dirs, max_lesion_outside_skin
        )
        problems.extend(case_problems)
        for kind in present:
            mask_counts[kind] += 1
    problems.extend(_patients_in_several_splits(cases, cases_path))
    problems.extend(_identical_photos_of_several_patients(cases, images, cases_path))

    counts = VerifyCounts(
        cases=len(with_image),
        patients=len({cases[c]["patient_id"] for c in with_image if cases[c]["patient_id"]}),
        lesion_masks=mask_counts["lesion"],
        skin_masks=mask_counts["skin"],
        depigmented_masks=mask_counts["depigmented"],
    )
    logger.info("%s: %d problem(s)", root, len(problems))
    return VerifyReport(root=root, problems=problems, counts=counts)
