"""Cohort endpoints: paired medians, Wilcoxon P, VASI50/75/90 shares with Wilson intervals.

NumPy/SciPy only (Matplotlib for the report); definitions in ``docs/compare_and_cohort.md``.
Typical use::

    from vitiseg.cohort import read_score_table, summarise_cohort, write_cohort_report

    summary = summarise_cohort(read_score_table("scores.csv"), "V0", "V1")
    summary.to_dict()["f_vasi"]["responders"]["75"]
"""

from __future__ import annotations

from vitiseg.cohort.report import write_cohort_report
from vitiseg.cohort.stats import (
    MedianIqr,
    PairedTest,
    Proportion,
    median_iqr,
    proportion,
    wilcoxon_signed_rank,
    wilson_interval,
)
from vitiseg.cohort.summary import (
    CohortInputError,
    CohortSummary,
    MissingVisit,
    PatientChange,
    ScoreSummary,
    read_score_table,
    summarise_cohort,
    summarise_score,
)

__all__ = [
    "CohortInputError",
    "CohortSummary",
    "MedianIqr",
    "MissingVisit",
    "PairedTest",
    "PatientChange",
    "Proportion",
    "ScoreSummary",
    "median_iqr",
    "proportion",
    "read_score_table",
    "summarise_cohort",
    "summarise_score",
    "wilcoxon_signed_rank",
    "wilson_interval",
    "write_cohort_report",
]
