"""scripts/retest_probe.py: re-takes of one source photo paired for a no-change comparison."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SCRIPT = SCRIPTS / "retest_probe.py"
sys.path.insert(0, str(SCRIPTS))  # the script imports its sibling white_balance_probe
_spec = importlib.util.spec_from_file_location("retest_probe", SCRIPT)
retest_probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(retest_probe)


def case(case_id: str, source: str) -> SimpleNamespace:
    return SimpleNamespace(case_id=case_id, patient_id=source)


def test_each_copy_is_paired_with_the_first_photo_of_its_source_only():
    cases = [case("b2", "b"), case("a1", "a"), case("b1", "b"), case("c1", "c"), case("b3", "b")]
    pairs = [(base.case_id, follow.case_id) for base, follow in retest_probe.pairs_of(cases)]
    # Source c has one photo: nothing to compare. b's first photo (by id) is the baseline.
    assert pairs == [("b1", "b2"), ("b1", "b3")]


def test_the_cached_segmenter_runs_the_model_once_per_photo_and_afresh_on_new_arrays():
    calls = []

    class Model:
        def segment(self, rgb):
            calls.append(rgb.shape)
            return (rgb[..., 0] > 0, rgb[..., 1] > 0, None)

    segment = retest_probe.CachedSegmenter(Model())
    photo = np.ones((4, 5, 3), np.uint8)
    segment.add(photo)
    first, second = segment(photo), segment(photo)
    assert first is second and len(calls) == 1
    segment(photo.copy())  # a re-balanced follow-up is a new array
    assert len(calls) == 2


def test_each_arm_records_the_compare_settings_it_ran_with():
    args = SimpleNamespace(tta=True, scales=[0.75, 1.0, 1.25], hold_levels=0.05)
    settings = retest_probe.arm_settings(
        args, ["model", "truth", "in_frame", "in_frame_levels", "held_0.2_patches"]
    )
    assert "truth" not in settings
    assert settings["model"]["segment_aligned"] is False
    assert settings["model"]["hold_levels_within"] is None
    assert settings["in_frame"]["segment_aligned"] is True
    assert settings["in_frame_levels"]["hold_levels_within"] == 0.05
    assert not settings["in_frame_levels"]["follow_baseline_patches"]
    held = settings["held_0.2_patches"]
    assert held["hold_unchanged_within"] == 0.2 and held["follow_baseline_patches"] is True
    assert held["scales"] == [0.75, 1.0, 1.25] and held["match_lighting"] is True
