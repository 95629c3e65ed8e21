"""Make the simulated 50-patient cohort example and its results table (docs/cohort_example.md).

The table is SIMULATED: no patient data. It is built to resemble the figures a published
real-world study of 12-week vitiligo treatment reports (median F-VASI about 1.0 -> 0.34,
T-VASI about 2.09 -> 0.95, about 40 % reaching F-VASI75, 10 % F-VASI90 and 42 % T-VASI50),
so the cohort command can be shown producing a table of that kind. Deterministic: the same
seed gives the same CSV byte for byte.

Usage (from the repository root)::

    python scripts/make_cohort_example.py

writes ``docs/examples/cohort_50.csv``, runs ``vitiseg-cohort`` on it into a temporary
folder, and copies the tool's results table and figures into ``docs/``.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CSV_PATH = REPO / "docs" / "examples" / "cohort_50.csv"
DOC_PATH = REPO / "docs" / "cohort_example.md"
FIGURES = {"waterfall.png": "cohort_50_waterfall.png", "boxplots.png": "cohort_50_boxplots.png"}
SEED = 52  # chosen among the first 80 seeds as the closest to the published figures
N_COMPLETE = 50  # patients seen at baseline and week 12
N_LOST = 2  # patients seen at baseline only (lost to follow-up)
N_NO_FACE = 3  # patients without facial vitiligo (F-VASI 0 at both visits)

# Improvement bands (lower, upper) and how many patients fall in each. F-VASI is for the
# 47 patients with facial vitiligo, T-VASI for all 50.
F_BANDS = [
    ((0.90, 0.99), 5),
    ((0.75, 0.89), 14),
    ((0.60, 0.74), 9),
    ((0.20, 0.49), 13),
    ((-0.10, 0.09), 4),
    ((-0.40, -0.11), 2),
]
T_BANDS = [
    ((0.90, 0.97), 2),
    ((0.75, 0.89), 6),
    ((0.50, 0.74), 13),
    ((0.38, 0.49), 16),
    ((0.00, 0.24), 9),
    ((-0.30, -0.01), 4),
]


def _improvements(rng: np.random.Generator, bands) -> np.ndarray:
    values = np.concatenate([rng.uniform(low, high, size=count) for (low, high), count in bands])
    return rng.permutation(values)


def simulate_cohort(seed: int = SEED) -> list[dict[str, str]]:
    """Rows ``patient_id, visit, f_vasi, t_vasi`` (visits ``baseline`` and ``week12``)."""
    rng = np.random.default_rng(seed)
    n_total = N_COMPLETE + N_LOST
    f_baseline = np.clip(rng.lognormal(np.log(1.0), 0.55, n_total), 0.1, 3.0)
    f_baseline[rng.choice(N_COMPLETE, N_NO_FACE, replace=False)] = 0.0
    # T-VASI counts the face too, so it is never below F-VASI.
    t_baseline = np.maximum(rng.lognormal(np.log(2.09), 0.7, n_total), f_baseline + 0.05)
    face = np.flatnonzero(f_baseline[:N_COMPLETE] > 0)
    f_improvement = np.zeros(N_COMPLETE)
    f_improvement[face] = _improvements(rng, F_BANDS)
    f_followup = f_baseline[:N_COMPLETE] * (1 - f_improvement)
    # Patients who respond on the face tend to respond elsewhere: T-VASI improvements are
    # handed out in the order of a noisy copy of the F-VASI improvement.
    order = np.argsort(f_improvement + rng.normal(0, 0.3, N_COMPLETE))
    t_improvement = np.empty(N_COMPLETE)
    t_improvement[order] = np.sort(_improvements(rng, T_BANDS))
    t_followup = np.maximum(t_baseline[:N_COMPLETE] * (1 - t_improvement), f_followup)
    rows = []
    for index in range(n_total):
        patient = f"RW{index + 1:03d}"
        rows.append(
            {
                "patient_id": patient,
                "visit": "baseline",
                "f_vasi": f"{f_baseline[index]:.2f}",
                "t_vasi": f"{t_baseline[index]:.2f}",
            }
        )
        if index < N_COMPLETE:
            rows.append(
                {
                    "patient_id": patient,
                    "visit": "week12",
                    "f_vasi": f"{f_followup[index]:.2f}",
                    "t_vasi": f"{t_followup[index]:.2f}",
                }
            )
    return rows


def table_csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=["patient_id", "visit", "f_vasi", "t_vasi"], lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def main() -> int:
    CSV_PATH.parent.mkdir(parents=True, exist_ok=True)
    CSV_PATH.write_text(table_csv(simulate_cohort()), encoding="utf-8")
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "cohort"
        command = [
            sys.executable,
            "-m",
            "vitiseg.cli.cohort",
            f"input={CSV_PATH}",
            f"output={out}",
            "baseline=baseline",
            "followup=week12",
            "baseline_label=baseline",
            "followup_label=week 12",
        ]
        subprocess.run(command, check=True, cwd=scratch)
        table = (out / "results_table.md").read_text(encoding="utf-8")
        for produced, kept in FIGURES.items():
            shutil.copyfile(out / produced, CSV_PATH.parent / kept)
    DOC_PATH.write_text(
        "# Cohort example: 50 simulated patients, baseline and week 12\n\n"
        "**Simulated data.** `docs/examples/cohort_50.csv` is made by "
        "`scripts/make_cohort_example.py` (fixed seed) to resemble the figures a published "
        "real-world study of 12-week vitiligo treatment reports: median F-VASI about 1.0 at "
        "baseline and 0.34 at week 12, T-VASI about 2.09 and 0.95, about 40 % of patients "
        "reaching F-VASI75, 10 % F-VASI90 and 42 % T-VASI50. It holds 52 patients: 50 seen at "
        "both visits (3 of them without facial vitiligo, F-VASI 0) and 2 seen at baseline "
        "only, who are listed, not dropped.\n\n"
        "The table below is the unedited `results_table.md` written by\n\n"
        "```\nvitiseg-cohort input=docs/examples/cohort_50.csv output=DIR baseline=baseline "
        'followup=week12 followup_label="week 12"\n```\n\n'
        "(regenerate everything with `python scripts/make_cohort_example.py`).\n\n"
        f"{table}\n"
        "![Per-patient change](examples/cohort_50_waterfall.png)\n\n"
        "![Before and after](examples/cohort_50_boxplots.png)\n",
        encoding="utf-8",
    )
    print(f"wrote {CSV_PATH.relative_to(REPO)} and {DOC_PATH.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
