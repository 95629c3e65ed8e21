"""Patient-clustered bootstrap intervals for means over cases."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vitiseg.metrics.confidence import patient_bootstrap_ci


def test_interval_brackets_the_mean_and_narrows_with_more_patients():
    rng = np.random.default_rng(0)
    few = rng.uniform(0.3, 0.9, 8)
    many = rng.uniform(0.3, 0.9, 80)
    low, high = patient_bootstrap_ci(few, [f"p{i}" for i in range(8)])
    assert low < float(np.mean(few)) < high
    low_many, high_many = patient_bootstrap_ci(many, [f"p{i}" for i in range(80)])
    assert high_many - low_many < high - low


def test_copies_of_one_patient_do_not_narrow_the_interval():
    # Ten copies per patient are one patient's evidence, not ten: a case-level bootstrap
    # would shrink the interval about three-fold, the patient-level one must not.
    values = [0.2, 0.5, 0.6, 0.9, 0.4, 0.7]
    once = patient_bootstrap_ci(values, ["a", "b", "c", "d", "e", "f"])
    copies = patient_bootstrap_ci(
        [v for v in values for _ in range(10)],
        [p for p in "abcdef" for _ in range(10)],
    )
    assert copies == pytest.approx(once)


def test_missing_values_are_left_out_and_one_patient_gives_no_interval():
    assert patient_bootstrap_ci([0.5, 0.7, None, math.nan], ["a", "a", "b", "c"]) is None
    low, high = patient_bootstrap_ci([0.5, None, 0.9], ["a", "b", "c"])
    assert 0.5 <= low <= high <= 0.9
    with pytest.raises(ValueError, match="patient ids"):
        patient_bootstrap_ci([0.5], ["a", "b"])


def _summary(path, dice_by_case):
    cases = [
        {"case_id": case, "patient_id": case[0], "lesion": {"dice": dice}}
        for case, dice in dice_by_case.items()
    ]
    path.write_text(json.dumps({"cases": cases}))
    return path


def test_paired_difference_script_reports_the_shift_and_refuses_other_cases(tmp_path):
    script = Path(__file__).parents[1] / "scripts" / "paired_difference.py"
    base = {"a1": 0.2, "a2": 0.4, "b1": 0.5, "c1": 0.7}
    first = _summary(tmp_path / "a.json", base)
    second = _summary(tmp_path / "b.json", {k: v + 0.1 for k, v in base.items()})
    done = subprocess.run(
        [sys.executable, str(script), str(first), str(second)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "B - A = +0.100" in done.stdout
    assert "[+0.100, +0.100]" in done.stdout
    assert "B better on 4 of 4 cases (3 patients)" in done.stdout
    other = _summary(tmp_path / "c.json", {"a1": 0.3})
    done = subprocess.run(
        [sys.executable, str(script), str(first), str(other)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "a.json" in done.stderr and "c.json" in done.stderr
    # B's value from another output: a three-output model's depigmented Dice.
    third = json.loads(second.read_text())
    for case in third["cases"]:
        case["depigmented"] = {"dice": case.pop("lesion")["dice"] + 0.1}
    (tmp_path / "d.json").write_text(json.dumps(third))
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            str(first),
            str(tmp_path / "d.json"),
            "--other-metric",
            "depigmented.dice",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "lesion.dice vs depigmented.dice: B - A = +0.200" in done.stdout


def test_paired_difference_script_keeps_one_stratum_of_the_baseline(tmp_path):
    script = Path(__file__).parents[1] / "scripts" / "paired_difference.py"
    base = {"a1": 0.2, "b1": 0.5, "c1": 0.7}
    first = _summary(tmp_path / "a.json", base)
    second = _summary(tmp_path / "b.json", {"a1": 0.1, "b1": 0.3, "c1": 0.9})
    strata = {"a1": "fitzpatrick_1", "b1": "fitzpatrick_1", "c1": "fitzpatrick_4"}
    for path in (first, second):
        summary = json.loads(path.read_text())
        for case in summary["cases"]:
            case["stratum"] = strata[case["case_id"]]
        path.write_text(json.dumps(summary))

    def run(stratum: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(script), str(first), str(second), "--stratum", stratum],
            capture_output=True,
            text=True,
        )

    done = run("fitzpatrick_1")
    assert done.returncode == 0, done.stderr
    assert "(fitzpatrick_1): B - A = -0.150" in done.stdout
    assert "B better on 0 of 2 cases (2 patients)" in done.stdout
    done = run("fitzpatrick_6")
    assert done.returncode == 2 and "fitzpatrick_6" in done.stderr
