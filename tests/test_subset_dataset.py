"""scripts/subset_dataset.py: a dataset folder of another's cases chosen by a column."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from tests.conftest import make_tiny_dataset
from vitiseg.data.dataset_format import load_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "subset_dataset.py"
_spec = importlib.util.spec_from_file_location("subset_dataset", SCRIPT)
subset_dataset = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(subset_dataset)


def _with_fitzpatrick(root: Path, types: list[str]) -> None:
    path = root / "cases.csv"
    rows = list(csv.DictReader(path.open(newline="")))
    fields = [f for f in rows[0] if f != "fitzpatrick"] + ["fitzpatrick"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row, kind in zip(rows, types, strict=True):
            writer.writerow({**row, "fitzpatrick": kind})


def test_subset_keeps_the_chosen_cases_and_leaves_the_source_alone(tmp_path):
    source = make_tiny_dataset(tmp_path / "painted", n_cases=6)
    _with_fitzpatrick(source, ["1", "4", "2", "5", "1", "3"])
    before = (source / "cases.csv").read_bytes()
    kept = subset_dataset.write_subset(source, tmp_path / "light", "fitzpatrick", {"1", "2"})
    assert len(kept) == 3
    cases = load_dataset(tmp_path / "light")
    originals = {case.case_id: case for case in load_dataset(source)}
    assert len(cases) == 3
    assert sorted(case.fitzpatrick for case in cases) == [1, 1, 2]
    for case in cases:
        assert case.image_path.read_bytes() == originals[case.case_id].image_path.read_bytes()
    assert (source / "cases.csv").read_bytes() == before


def test_subset_refuses_a_missing_column_an_empty_choice_and_an_existing_folder(tmp_path):
    source = make_tiny_dataset(tmp_path / "painted", n_cases=3)
    _with_fitzpatrick(source, ["3", "4", "5"])
    with pytest.raises(ValueError, match="no column 'skin_type'"):
        subset_dataset.write_subset(source, tmp_path / "a", "skin_type", {"1"})
    with pytest.raises(ValueError, match="no case has fitzpatrick"):
        subset_dataset.write_subset(source, tmp_path / "b", "fitzpatrick", {"1"})
    (tmp_path / "c").mkdir()
    with pytest.raises(FileExistsError, match="exists"):
        subset_dataset.write_subset(source, tmp_path / "c", "fitzpatrick", {"3"})


def test_a_prefix_subset_gets_the_source_split_so_validation_photos_stay_out(tmp_path):
    source = make_tiny_dataset(tmp_path / "skin", n_cases=6)
    ids = [case.case_id for case in load_dataset(source)]
    chosen = ids[1:4]
    kept = subset_dataset.write_subset(
        source, tmp_path / "scenes", "case_id", set(chosen), prefix=True
    )
    assert sorted(kept) == sorted(chosen)
    split = {"skin": {"train": ids[:2] + ids[4:], "val": ids[2:4]}, "other": {"train": ["x"]}}
    with_subset = subset_dataset.split_with_subset(split, "skin", "scenes", kept)
    assert with_subset["scenes"] == {"train": [ids[1]], "val": ids[2:4]}
    assert with_subset["skin"] == split["skin"] and with_subset["other"] == split["other"]
    assert "scenes" not in split  # the input is not modified
    with pytest.raises(ValueError, match="no entry 'photos'"):
        subset_dataset.split_with_subset(split, "photos", "scenes", kept)
    with pytest.raises(ValueError, match="lacks cases"):
        subset_dataset.split_with_subset({"skin": {"train": ids[:2]}}, "skin", "scenes", kept)
