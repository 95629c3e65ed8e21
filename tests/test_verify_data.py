"""verify_dataset and vitiseg-verify-data: each planted problem is found, a clean set passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitiseg.cli import verify_data
from vitiseg.data.dataset_format import DatasetFormatError, load_dataset, write_cases_csv
from vitiseg.data.verify import DEFAULT_REGIONS, Problem, verify_dataset

HEIGHT, WIDTH = 10, 12


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _photo(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def _skin() -> np.ndarray:
    skin = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    skin[1:9, 1:11] = 255
    return skin


def _lesion(foreground: int = 255) -> np.ndarray:
    lesion = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    lesion[3:6, 3:7] = foreground
    return lesion


def _rows() -> list[dict[str, object]]:
    return [
        {"case_id": "c0", "patient_id": "p0", "region": "face", "pixels_per_cm": 40,
         "fitzpatrick": 3, "split": "train", "visit": "baseline"},
        {"case_id": "c1", "patient_id": "p0", "region": "hands", "split": "train"},
        {"case_id": "c2", "patient_id": "p1", "split": "val"},
    ]  # fmt: skip


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A clean set: 3 cases, 2 patients; 0/255, 0/1 and all-zero lesion masks; 2 skin masks."""
    root = tmp_path / "dataset"
    _save(root / "images" / "c0.png", _photo(0))
    _save(root / "images" / "c1.jpg", _photo(1))
    _save(root / "images" / "c2.png", _photo(2))
    _save(root / "masks" / "lesion" / "c0.png", _lesion(255))
    _save(root / "masks" / "lesion" / "c1.png", _lesion(1))
    _save(root / "masks" / "lesion" / "c2.png", np.zeros((HEIGHT, WIDTH), dtype=np.uint8))
    _save(root / "masks" / "skin" / "c0.png", _skin())
    _save(root / "masks" / "skin" / "c1.png", _skin())
    write_cases_csv(root / "cases.csv", _rows())
    return root


def _only_problem(root: Path) -> Problem:
    problems = verify_dataset(root, DEFAULT_REGIONS).problems
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def _set_row(root: Path, case_id: str, **values: object) -> None:
    rows = _rows()
    for row in rows:
        if row["case_id"] == case_id:
            row.update(values)
    write_cases_csv(root / "cases.csv", rows)


def test_clean_set_has_no_problems_and_counts(dataset: Path) -> None:
    report = verify_dataset(dataset, DEFAULT_REGIONS)
    assert report.ok
    assert report.problems == []
    assert (report.counts.cases, report.counts.patients) == (3, 2)
    assert (report.counts.lesion_masks, report.counts.skin_masks) == (3, 2)


def test_cli_clean_set_exits_zero_with_one_summary_line(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert verify_data.main([str(dataset)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    assert "3 cases, 2 patients, 3 lesion and 2 skin annotations" in lines[0]


def test_cli_lists_each_problem_and_exits_nonzero(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (dataset / "images" / "c2.png").unlink()
    (dataset / "masks" / "lesion" / "c2.png").unlink()
    _save(dataset / "images" / "extra.png", _photo(3))
    assert verify_data.main([str(dataset)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    # two problem lines (c2 has no image, extra.png has no row) plus the summary line
    assert len(lines) == 3
    assert any("extra.png" in line and "no row" in line for line in lines)
    assert any("'c2'" in line and "no image" in line for line in lines)
    assert "2 problem(s)" in lines[-1]


def test_cli_region_names_include_the_vasi_regions() -> None:
    regions = verify_data.allowed_regions()
    assert {"face", "hands", "trunk"} <= set(regions)


def test_truncated_image(dataset: Path) -> None:
    image = dataset / "images" / "c1.jpg"
    data = image.read_bytes()
    # keep the header, lose the end of the entropy-coded data (an interrupted copy)
    image.write_bytes(data[:-40])
    problem = _only_problem(dataset)
    assert problem.path == image
    assert "truncated" in problem.message


def test_unreadable_image(dataset: Path) -> None:
    image = dataset / "images" / "c0.png"
    image.write_bytes(b"this is not a picture at all")
    problem = _only_problem(dataset)
    assert problem.path == image
    assert "not a readable image" in problem.message


def test_mask_size_differs_from_image(dataset: Path) -> None:
    mask = _save(dataset / "masks" / "skin" / "c1.png", np.zeros((HEIGHT, WIDTH + 1), np.uint8))
    problem = _only_problem(dataset)
    assert problem.path == mask
    assert f"{WIDTH + 1}x{HEIGHT}" in problem.message and f"{WIDTH}x{HEIGHT}" in problem.message


def test_mask_with_three_equal_channels_is_not_single_channel(dataset: Path) -> None:
    rgb = np.repeat(_lesion()[..., None], 3, axis=2)
    mask = _save(dataset / "masks" / "lesion" / "c0.png", rgb)
    problem = _only_problem(dataset)
    assert problem.path == mask
    assert "3 channels" in problem.message


def test_sixteen_bit_mask(dataset: Path) -> None:
    mask = _save(dataset / "masks" / "lesion" / "c0.png", _lesion().astype(np.uint16) * 257)
    problem = _only_problem(dataset)
    assert problem.path == mask
    assert "8-bit" in problem.message


def test_mask_with_more_than_two_values(dataset: Path) -> None:
    grey = _lesion(255)
    grey[0, 0] = 128  # an anti-aliased edge, for instance
    mask = _save(dataset / "masks" / "lesion" / "c0.png", grey)
    problem = _only_problem(dataset)
    assert problem.path == mask
    assert "3 values" in problem.message


def test_all_foreground_mask_is_valid(dataset: Path) -> None:
    _save(dataset / "masks" / "skin" / "c0.png", np.full((HEIGHT, WIDTH), 255, np.uint8))
    assert verify_dataset(dataset).ok


def test_image_without_row(dataset: Path) -> None:
    image = _save(dataset / "images" / "c9.png", _photo(9))
    problem = _only_problem(dataset)
    assert problem.path == image
    assert "no row in cases.csv" in problem.message


def test_row_without_image(dataset: Path) -> None:
    (dataset / "images" / "c2.png").unlink()
    (dataset / "masks" / "lesion" / "c2.png").unlink()
    problem = _only_problem(dataset)
    assert problem.path == dataset / "cases.csv"
    assert "'c2' has no image" in problem.message


def test_duplicate_case_ids(dataset: Path) -> None:
    write_cases_csv(dataset / "cases.csv", [*_rows(), {"case_id": "c1", "patient_id": "p0"}])
    problem = _only_problem(dataset)
    assert problem.path == dataset / "cases.csv"
    assert "duplicate case_id 'c1'" in problem.message
    assert "line 5" in problem.message


def test_the_loader_reads_a_byte_order_mark_and_refuses_a_case_listed_twice(
    dataset: Path,
) -> None:
    cases_csv = dataset / "cases.csv"
    cases_csv.write_text("\ufeff" + cases_csv.read_text(encoding="utf-8"), encoding="utf-8")
    assert [case.case_id for case in load_dataset(dataset)] == ["c0", "c1", "c2"]
    write_cases_csv(cases_csv, [*_rows(), {"case_id": "c1", "patient_id": "p1"}])
    with pytest.raises(DatasetFormatError, match="cases.csv: case c1 is listed twice"):
        load_dataset(dataset)


def test_lesion_outside_skin(dataset: Path) -> None:
    lesion = _lesion()
    lesion[0, 0:2] = 255  # row 0 lies outside the skin rectangle
    mask = _save(dataset / "masks" / "lesion" / "c0.png", lesion)
    problem = _only_problem(dataset)
    assert problem.path == mask
    assert problem.message.startswith("2 lesion pixel(s) lie outside the skin mask")
    report = verify_dataset(dataset, max_lesion_outside_skin=2)
    assert report.ok


def test_depigmented_pixels_outside_the_outlined_lesion(dataset: Path) -> None:
    inside = _lesion()
    inside[np.nonzero(inside)[0][0]] = 0  # a pigmented row inside the outline
    _save(dataset / "masks" / "depigmented" / "c0.png", inside)
    report = verify_dataset(dataset)
    assert report.ok and report.counts.depigmented_masks == 1
    assert "1 depigmented" in report.summary()
    outside = _lesion()
    outside[0, 0] = 255
    mask = _save(dataset / "masks" / "depigmented" / "c0.png", outside)
    problem = _only_problem(dataset)
    assert problem.path == mask
    assert problem.message == "1 depigmented pixel(s) lie outside the lesion mask"


def test_patient_in_two_splits(dataset: Path) -> None:
    _set_row(dataset, "c1", split="val")
    problem = _only_problem(dataset)
    assert problem.path == dataset / "cases.csv"
    assert "patient 'p0' is in 2 splits (train, val)" in problem.message


def test_the_same_photo_under_two_patients(dataset: Path) -> None:
    # c0 (patient p0) copied as c2 (patient p1): a split could put a copy on each side.
    (dataset / "images" / "c2.png").write_bytes((dataset / "images" / "c0.png").read_bytes())
    problem = _only_problem(dataset)
    assert problem.path == dataset / "cases.csv"
    assert "cases 'c0', 'c2' are the same photo" in problem.message
    assert "patients 'p0', 'p1'" in problem.message
    # Under one patient the copies are fine (a photo annotated twice).
    _set_row(dataset, "c2", patient_id="p0", split="train")
    assert verify_dataset(dataset, DEFAULT_REGIONS).problems == []


def test_unknown_region(dataset: Path) -> None:
    _set_row(dataset, "c1", region="elbow")
    problem = _only_problem(dataset)
    assert "unknown region 'elbow'" in problem.message
    assert "'c1'" in problem.message
    # the allowed names are a parameter, not fixed in the checker
    assert verify_dataset(dataset, [*DEFAULT_REGIONS, "elbow"]).ok


@pytest.mark.parametrize("value", ["0", "-3.5", "abc", "nan"])
def test_non_positive_pixels_per_cm(dataset: Path, value: str) -> None:
    _set_row(dataset, "c0", pixels_per_cm=value)
    problem = _only_problem(dataset)
    assert f"pixels_per_cm {value!r} is not a positive number" in problem.message


@pytest.mark.parametrize("value", ["0", "7", "2.5", "V"])
def test_fitzpatrick_outside_one_to_six(dataset: Path, value: str) -> None:
    _set_row(dataset, "c0", fitzpatrick=value)
    problem = _only_problem(dataset)
    assert f"fitzpatrick {value!r}" in problem.message


def test_empty_patient_id(dataset: Path) -> None:
    _set_row(dataset, "c2", patient_id="")
    problem = _only_problem(dataset)
    assert "'c2': patient_id is empty" in problem.message


def test_stray_mask(dataset: Path) -> None:
    mask = _save(dataset / "masks" / "skin" / "ghost.png", _skin())
    problem = _only_problem(dataset)
    assert problem.path == mask
    assert "stray skin mask" in problem.message


def test_missing_cases_csv(dataset: Path) -> None:
    (dataset / "cases.csv").unlink()
    problem = _only_problem(dataset)
    assert problem.path == dataset / "cases.csv"
    assert "missing" in problem.message


def test_cases_csv_without_required_column(dataset: Path) -> None:
    (dataset / "cases.csv").write_text("case_id,split\nc0,train\nc1,train\nc2,val\n")
    problem = _only_problem(dataset)
    assert "patient_id" in problem.message
