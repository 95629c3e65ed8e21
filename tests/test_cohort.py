"""Cohort endpoints against independent NumPy/SciPy computations on the same tables."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from vitiseg.cohort import (
    CohortInputError,
    median_iqr,
    summarise_cohort,
    wilcoxon_signed_rank,
    wilson_interval,
    write_cohort_report,
)

REPO = Path(__file__).resolve().parents[1]


def random_table(seed: int = 7, n_patients: int = 40) -> list[dict[str, str]]:
    """A long table with ties (2-decimal values), zero baselines, an unchanged patient,
    patients missing a visit, a blank cell and rows of a third visit."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(n_patients):
        patient = f"P{index:02d}"
        f0 = round(float(rng.uniform(0, 3)), 2) if index % 9 else 0.0
        t0 = round(f0 + float(rng.uniform(0, 6)), 2)
        f1 = round(f0 * float(rng.uniform(-0.2, 1.0)) + f0 * 0.2, 2) if index % 9 else 0.0
        t1 = round(t0 * float(rng.uniform(0.0, 1.3)), 2)
        if index == 5:
            f1, t1 = f0, t0  # no change at all: a zero difference for the test to drop
        if index != 3:  # P03 never came back
            rows.append(
                {
                    "patient_id": patient,
                    "visit": "V1",
                    "f_vasi": f"{f1:.2f}",
                    "t_vasi": f"{t1:.2f}",
                }
            )
        blank_face = index == 11  # face not assessed at baseline
        rows.append(
            {
                "patient_id": patient,
                "visit": "V0",
                "f_vasi": "" if blank_face else f"{f0:.2f}",
                "t_vasi": f"{t0:.2f}",
            }
        )
        rows.append({"patient_id": patient, "visit": "V2", "f_vasi": "0.1", "t_vasi": "0.2"})
    rows.append({"patient_id": "P99", "visit": "V1", "f_vasi": "1.0", "t_vasi": "2.0"})
    return rows


def expected_summary(rows, score, baseline="V0", followup="V1"):
    """Everything the module reports, computed here directly with NumPy and SciPy."""
    by_patient: dict[str, dict[str, str]] = {}
    for row in rows:
        visits = by_patient.setdefault(row["patient_id"], {})
        if row["visit"] in (baseline, followup) and row[score] != "":
            visits[row["visit"]] = row[score]
    pairs = [
        (pid, v[baseline], v[followup])
        for pid, v in by_patient.items()
        if baseline in v and followup in v
    ]
    missing = sorted(pid for pid, v in by_patient.items() if not (baseline in v and followup in v))
    before = np.array([float(b) for _, b, _ in pairs])
    after = np.array([float(f) for _, _, f in pairs])
    # Responders in exact integer hundredths: improvement >= L % <=> 100 (B - F) >= L B.
    hundredths = [(round(float(b) * 100), round(float(f) * 100)) for _, b, f in pairs]
    improvable = [(b, f) for b, f in hundredths if b > 0]
    responders = {}
    for level in (50, 75, 90):
        count = sum(100 * (b - f) >= level * b for b, f in improvable)
        interval = stats.binomtest(count, len(improvable)).proportion_ci(0.95, method="wilson")
        responders[str(level)] = (count, len(improvable), interval.low, interval.high)
    test = stats.wilcoxon(before, after, zero_method="wilcox", alternative="two-sided")
    return {
        "n": len(pairs),
        "missing": missing,
        "before": before,
        "after": after,
        "p": test.pvalue,
        "statistic": test.statistic,
        "responders": responders,
        "n_nonzero_baseline": len(improvable),
    }


@pytest.mark.parametrize("score", ["f_vasi", "t_vasi"])
def test_cohort_figures_equal_an_independent_scipy_computation(score):
    rows = random_table()
    summary = summarise_cohort(rows, "V0", "V1").to_dict()[score]
    expected = expected_summary(rows, score)
    assert summary["n"] == expected["n"]
    assert summary["n_nonzero_baseline"] == expected["n_nonzero_baseline"]
    for visit, values in (("baseline", expected["before"]), ("followup", expected["after"])):
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        assert summary[f"{visit}_median"] == pytest.approx(median)
        assert summary[f"{visit}_q1"] == pytest.approx(q1)
        assert summary[f"{visit}_q3"] == pytest.approx(q3)
    assert summary["p_value"] == pytest.approx(expected["p"], rel=1e-12)
    assert summary["test"]["statistic"] == pytest.approx(expected["statistic"])
    assert summary["test"]["n_nonzero"] == np.count_nonzero(expected["before"] - expected["after"])
    for level, (count, n, low, high) in expected["responders"].items():
        got = summary["responders"][level]
        assert (got["count"], got["n"]) == (count, n)
        assert got["share"] == pytest.approx(count / n)
        assert got["ci_low"] == pytest.approx(low, abs=1e-12)
        assert got["ci_high"] == pytest.approx(high, abs=1e-12)
    assert sorted(item["patient_id"] for item in summary["missing_visit"]) == expected["missing"]


def test_missing_visits_are_listed_with_the_visit_they_lack():
    summary = summarise_cohort(random_table(), "V0", "V1").to_dict()
    missing = {item["patient_id"]: item["missing"] for item in summary["f_vasi"]["missing_visit"]}
    assert missing["P03"] == ["V1"]
    assert missing["P11"] == ["V0"]  # blank cell = not measured
    assert missing["P99"] == ["V0"]
    assert "P11" not in {i["patient_id"] for i in summary["t_vasi"]["missing_visit"]}


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(20, 50)
    assert (round(low, 3), round(high, 3)) == (0.276, 0.538)
    # 0 of 10: the upper bound is z^2 / (n + z^2) in closed form.
    z = stats.norm.ppf(0.975)
    assert wilson_interval(0, 10) == pytest.approx((0.0, z * z / (10 + z * z)))
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + z * z), 1.0))
    with pytest.raises(ValueError):
        wilson_interval(3, 0)


def test_median_iqr_uses_linear_percentiles():
    result = median_iqr(np.array([1.0, 2.0, 3.0, 4.0]))
    assert (result.median, result.q1, result.q3) == (2.5, 1.75, 3.25)
    assert median_iqr(np.array([])).median is None


@pytest.mark.parametrize(
    ("before", "after", "method"),
    [
        (
            [3.1, 2.0, 1.7, 4.4, 0.9, 2.2, 1.3, 3.8],
            [1.0, 1.7, 1.9, 2.1, 0.1, 0.2, 1.2, 1.0],
            "exact",
        ),  # no ties, no zeros
        ([2.0, 2.0, 1.0, 3.0, 1.5, 2.5], [1.0, 1.0, 1.0, 2.0, 1.0, 1.0], "permutation"),
    ],
)
def test_small_samples_use_the_test_scipy_picks(before, after, method):
    result = wilcoxon_signed_rank(np.array(before), np.array(after))
    assert result.method == method
    expected = stats.wilcoxon(before, after, zero_method="wilcox", alternative="two-sided")
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)


def test_untestable_samples_give_no_p_value_and_a_reason():
    one = wilcoxon_signed_rank(np.array([1.0]), np.array([0.5]))
    assert one.p_value is None and "at least 2" in one.reason
    same = wilcoxon_signed_rank(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    assert same.p_value is None and "zero" in same.reason


def test_bad_tables_are_refused_with_the_row():
    rows = [
        {"patient_id": "A", "visit": "V0", "f_vasi": "1"},
        {"patient_id": "A", "visit": "V0", "f_vasi": "2"},
        {"patient_id": "A", "visit": "V1", "f_vasi": "0.5"},
    ]
    with pytest.raises(CohortInputError, match="second f_vasi at V0"):
        summarise_cohort(rows, "V0", "V1")
    with pytest.raises(CohortInputError, match=">= 0"):
        summarise_cohort([{**rows[0], "f_vasi": "-1"}, rows[2]], "V0", "V1")
    with pytest.raises(CohortInputError, match="'W12' not in the table"):
        summarise_cohort(rows[:1] + rows[2:], "V0", "W12")
    with pytest.raises(CohortInputError, match="no score column"):
        summarise_cohort([{"patient_id": "A", "visit": "V0", "x": "1"}], "V0", "V1")


def write_table(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=["patient_id", "visit", "f_vasi", "t_vasi"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_cohort_command_writes_a_summary_equal_to_scipy(tmp_path):
    rows = random_table(seed=11)
    table = write_table(tmp_path / "scores.csv", rows)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "vitiseg.cli.cohort",
        f"input={table}",
        f"output={out}",
        "baseline=V0",
        "followup=V1",
        "followup_label=week 12",
    ]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"f_vasi", "t_vasi"}
    for score in ("f_vasi", "t_vasi"):
        expected = expected_summary(rows, score)
        assert summary[score]["n"] == expected["n"]
        assert summary[score]["baseline_median"] == pytest.approx(np.median(expected["before"]))
        assert summary[score]["followup_median"] == pytest.approx(np.median(expected["after"]))
        assert summary[score]["p_value"] == pytest.approx(expected["p"], rel=1e-12)
        count, n, low, high = expected["responders"]["75"]
        assert summary[score]["responders"]["75"]["share"] == pytest.approx(count / n)
        assert summary[score]["responders"]["75"]["ci_low"] == pytest.approx(low)
    table_md = (out / "results_table.md").read_text()
    assert "Median (IQR) F-VASI at week 12" in table_md and "T-VASI50 at week 12" in table_md
    for name in (
        "report.html",
        "results_table.html",
        "waterfall.png",
        "boxplots.png",
        "patients.csv",
    ):
        assert (out / name).stat().st_size > 0, name


def test_report_escapes_what_the_table_says(tmp_path):
    rows = [
        {"patient_id": "<script>x</script>", "visit": "V0", "f_vasi": "1.0"},
        {"patient_id": "<script>x</script>", "visit": "V1", "f_vasi": "0.2"},
        {"patient_id": "b", "visit": "V0", "f_vasi": "1.0"},
    ]
    summary = summarise_cohort(rows, "V0", "V1")
    write_cohort_report(tmp_path, summary, followup_label="<b>wk</b>")
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page and "<b>wk</b>" not in page and "&lt;b&gt;wk" in page


def test_patients_csv_does_not_hand_a_spreadsheet_a_formula(tmp_path):
    rows = [
        {"patient_id": "=HYPERLINK(1)", "visit": "V0", "f_vasi": "1.0"},
        {"patient_id": "=HYPERLINK(1)", "visit": "V1", "f_vasi": "0.2"},
    ]
    write_cohort_report(tmp_path, summarise_cohort(rows, "V0", "V1"))
    with open(tmp_path / "patients.csv", newline="") as stream:
        (row,) = list(csv.DictReader(stream))
    assert row["patient_id"] == "'=HYPERLINK(1)"
    assert float(row["change"]) == pytest.approx(-0.8)  # numbers stay numbers


def _example_module():
    spec = importlib.util.spec_from_file_location(
        "make_cohort_example", REPO / "scripts" / "make_cohort_example.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fifty_patient_example_reproduces_a_real_world_style_table():
    example = _example_module()
    rows = example.simulate_cohort()
    shipped = REPO / "docs" / "examples" / "cohort_50.csv"
    assert shipped.read_text() == example.table_csv(rows)  # docs stay in step with the script
    summary = summarise_cohort(rows, "baseline", "week12").to_dict()
    face, total = summary["f_vasi"], summary["t_vasi"]
    assert face["n"] == total["n"] == 50
    assert len(face["missing_visit"]) == 2
    assert face["baseline_median"] == pytest.approx(1.0, abs=0.1)
    assert face["followup_median"] == pytest.approx(0.34, abs=0.08)
    assert total["baseline_median"] == pytest.approx(2.09, abs=0.2)
    assert total["followup_median"] == pytest.approx(0.95, abs=0.15)
    assert face["responders"]["75"]["share"] == pytest.approx(0.40, abs=0.05)
    assert face["responders"]["90"]["share"] == pytest.approx(0.10, abs=0.05)
    assert total["responders"]["50"]["share"] == pytest.approx(0.42, abs=0.05)
    assert face["p_value"] < 0.001 and total["p_value"] < 0.001
    table = (REPO / "docs" / "cohort_example.md").read_text()
    rate = face["responders"]["75"]
    assert f"{rate['count']}/{rate['n']} ({100 * rate['share']:.1f})" in table
