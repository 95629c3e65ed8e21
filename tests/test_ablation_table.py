"""scripts/ablation_table.py: late means of training runs, and seed pairs compared."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ablation_table.py"
_spec = importlib.util.spec_from_file_location("ablation_table", SCRIPT)
ablation_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ablation_table)


def _history(values: list[float]) -> list[dict[str, str]]:
    return [
        {"epoch": str(i + 1), "minutes": str(i + 1.0), "select_metric": str(v)}
        for i, v in enumerate(values)
    ]


def test_the_late_mean_averages_the_last_n_validations_and_the_best_is_found():
    s = ablation_table.summarise(_history([0.1, 0.6, 0.3, 0.4, 0.5]), None, last=3)
    assert s["late_mean"] == pytest.approx(0.4)
    assert (s["best"], s["best_epoch"], s["late_n"]) == (0.6, 2, 3)


def test_epochs_not_validated_count_as_no_figure():
    history = _history([0.1, 0.6, 0.3, 0.4, 0.5])
    for row in history[:4:2]:  # trainer.validate_every=2 leaves epochs 1 and 3 empty
        row["select_metric"] = ""
    s = ablation_table.summarise(history, None, last=2)
    assert (s["best"], s["best_epoch"], s["epochs"]) == (0.6, 2, 5)
    assert s["late_mean"] == pytest.approx(0.45) and s["late_n"] == 2


def test_seed_pairs_give_the_mean_difference_with_a_t_interval():
    p = ablation_table.paired_seed_differences([0.01, 0.03, -0.01])
    assert p["mean"] == pytest.approx(0.01)
    # standard error 0.02 / sqrt(3); t(0.975, 2 df) = 4.303
    half_width = 4.303 * 0.02 / math.sqrt(3)
    assert p["low"] == pytest.approx(0.01 - half_width, abs=1e-4)
    assert p["high"] == pytest.approx(0.01 + half_width, abs=1e-4)
    assert (p["pairs"], p["treated_ahead"]) == (3, 2)


def test_one_pair_has_no_interval():
    p = ablation_table.paired_seed_differences([0.02])
    assert p["mean"] == pytest.approx(0.02)
    assert math.isnan(p["low"]) and math.isnan(p["high"])
    assert "no interval from one pair" in ablation_table.describe_pairs(p)
    assert "nan" not in ablation_table.describe_pairs(p)


def test_several_pairs_are_described_with_their_interval():
    text = ablation_table.describe_pairs(ablation_table.paired_seed_differences([0.01, 0.03]))
    assert "95 % t interval" in text and "treated ahead in 2 of 2" in text


def test_a_paired_argument_without_a_control_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="TREATED_DIR=CONTROL_DIR"):
        ablation_table.print_pairs([str(tmp_path)], None, 3)


def test_the_table_names_the_column_it_compares(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch,minutes,skin_dice\n1,1.0,0.7\n2,2.0,0.8\n")
    ablation_table.print_runs([f"a={run}"], "skin_dice", last=2)
    header, _, row = capsys.readouterr().out.splitlines()
    assert "best skin_dice (epoch)" in header and "lesion" not in header
    assert "| 0.800 (2) | 0.750 |" in row
