"""Guard figures of candidate models (evaluation/guards.py, scripts/guard_table.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vitiseg.evaluation.guards import guard_figures, mean_and_range, read_guard_summaries


def _guard_summaries(depigmented_dice: float, false_area: float) -> dict:
    exact_truth = {
        "mean": {
            "depigmented": {"dice": depigmented_dice},
            "affected_fraction": {"mae": 0.031, "bias": -0.004},
            "skin": {"dice": 0.9},
        },
        "vasi_vs_truth": {"model_vs_generator": {"mae": 1.25}},
        "depigmented_dice_gap_between_strata": 0.2,
    }
    return {
        "real": {"mean": {"lesion": {"dice": 0.55}}},
        "painted": exact_truth,
        "synth": exact_truth,
        "skin": {"mean": {"affected_fraction": {"mae": false_area}, "skin": {"dice": 0.81}}},
        "backdrop": None,
    }


def test_guard_figures_scale_fractions_to_points_and_leave_missing_sets_empty():
    figures = guard_figures(_guard_summaries(0.5, 0.027))
    assert figures["real lesion Dice"] == 0.55
    assert figures["painted affected-fraction MAE, pp"] == pytest.approx(3.1)
    assert figures["procedural affected-fraction bias, pp"] == pytest.approx(-0.4)
    assert figures["painted VASI MAE"] == 1.25
    assert figures["skin photos: false affected fraction, pp"] == pytest.approx(2.7)
    assert figures["backdrops: skin Dice"] is None
    # A two-output model has no depigmented figures: None, not an error.
    two_output = _guard_summaries(0.5, 0.027)
    del two_output["painted"]["mean"]["depigmented"]
    assert guard_figures(two_output)["painted depigmented Dice"] is None


def test_mean_and_range_over_seeds_refuses_a_mean_over_fewer_seeds():
    rows = [guard_figures(_guard_summaries(dice, 0.02)) for dice in (0.4, 0.5, 0.6)]
    spread = mean_and_range(rows)
    mean, low, high = spread["painted depigmented Dice"]
    assert (mean, low, high) == pytest.approx((0.5, 0.4, 0.6))
    rows[1] = {**rows[1], "real lesion Dice": None}
    assert mean_and_range(rows)["real lesion Dice"] is None
    assert mean_and_range(rows)["painted depigmented Dice"] is not None


def _write_evaluation_root(root: Path, summaries: dict) -> Path:
    for guard_set, summary in summaries.items():
        if summary is not None:
            (root / guard_set).mkdir(parents=True)
            (root / guard_set / "summary.json").write_text(json.dumps(summary))
    return root


def test_read_guard_summaries_names_an_empty_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds a summary.json") as error:
        read_guard_summaries(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_guard_table_script_prints_each_seed_and_the_mean(tmp_path):
    script = Path(__file__).parents[1] / "scripts" / "guard_table.py"
    first = _write_evaluation_root(tmp_path / "s0", _guard_summaries(0.4, 0.02))
    second = _write_evaluation_root(tmp_path / "s1", _guard_summaries(0.6, 0.04))
    done = subprocess.run(
        [sys.executable, str(script), f"seed0={first}", str(second)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "| figure | seed0 | s1 | mean (range) |"
    assert "| painted depigmented Dice | 0.400 | 0.600 | 0.500 (0.400 to 0.600) |" in lines
    false_area_row = (
        "| skin photos: false affected fraction, pp | 2.00 | 4.00 | 3.00 (2.00 to 4.00) |"
    )
    assert false_area_row in lines
    assert "| backdrops: skin Dice | – | – | – |" in lines
