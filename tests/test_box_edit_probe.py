"""scripts/box_edit_probe.py: box-shaped edits of healthy skin, and the probe's run."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vitiseg.data.box_edits import Box

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "box_edit_probe.py"
_spec = importlib.util.spec_from_file_location("box_edit_probe", SCRIPT)
box_edit_probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(box_edit_probe)


def _photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(60, 180, (50, 70, 3), dtype=np.uint8)


@pytest.mark.parametrize("edit", box_edit_probe.EDITS)
def test_an_edit_changes_only_its_box_and_keeps_the_input(edit):
    photo = _photo()
    before = photo.copy()
    box = Box(10, 20, 20, 30)
    edited = box_edit_probe.edit_photo(photo, box, edit)
    assert np.array_equal(photo, before)
    outside = np.ones(photo.shape[:2], bool)
    box.view(outside)[:] = False
    assert np.array_equal(edited[outside], photo[outside])
    assert not np.array_equal(box.view(edited), box.view(photo))


def test_each_edit_does_what_its_name_says():
    photo = _photo()
    box = Box(10, 20, 20, 30)
    inside = box.view(photo).astype(float)
    brighter = box.view(box_edit_probe.edit_photo(photo, box, "brighter")).astype(float)
    darker = box.view(box_edit_probe.edit_photo(photo, box, "darker")).astype(float)
    flipped = box.view(box_edit_probe.edit_photo(photo, box, "flip"))
    blob = box_edit_probe.edit_photo(photo, box, "brighter_blob").astype(float)
    assert brighter.mean() == pytest.approx(inside.mean() * 1.3, rel=0.02)
    assert darker.mean() == pytest.approx(inside.mean() * 0.75, rel=0.02)
    assert np.array_equal(flipped, box.view(photo)[::-1, ::-1])
    # The blob brightens the box's centre fully and leaves its corner nearly untouched.
    assert blob[20, 35].mean() == pytest.approx(photo[20, 35].astype(float).mean() * 1.3, abs=2)
    assert abs(blob[10, 20].mean() - photo[10, 20].astype(float).mean()) < 3


def test_an_unknown_edit_is_refused():
    with pytest.raises(ValueError, match="edit must be one of"):
        box_edit_probe.edit_photo(_photo(), Box(0, 0, 5, 5), "recolour")


def test_the_probe_runs_on_a_dataset(tiny_dataset, tiny_model_dir, tmp_path):
    out = tmp_path / "probe.json"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--checkpoint",
            str(tiny_model_dir),
            "--dataset",
            str(tiny_dataset),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(out.read_text())
    assert len(rows) == 6 and all(0 <= row["flip"] <= 1 for row in rows)
    assert "| brighter_blob |" in result.stdout and "6 photos" in result.stdout
