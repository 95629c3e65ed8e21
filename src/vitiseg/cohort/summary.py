"""From a table of visit scores to a cohort summary: pairs, medians, P, responder shares.

The input is a long table, one row per patient visit::

    patient_id,visit,f_vasi,t_vasi
    P001,V0,1.2,3.4
    P001,V1,0.3,1.9

Score columns are any numeric columns (``f_vasi`` and ``t_vasi`` by default). A blank
cell means "not measured": that patient is listed as missing the visit for that score.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitiseg.cohort.stats import (
    MedianIqr,
    PairedTest,
    Proportion,
    median_iqr,
    proportion,
    wilcoxon_signed_rank,
)
from vitiseg.vasi import VasiConfig, response
from vitiseg.vasi._records import JsonRecord

DEFAULT_SCORES = ("f_vasi", "t_vasi")
RESPONDER_LEVELS = (50, 75, 90)


class CohortInputError(ValueError):
    """The score table cannot be summarised; the message names the file, rows and columns."""


@dataclass(frozen=True)
class PatientChange(JsonRecord):
    """One patient's score at both visits.

    Attributes:
        patient_id: As in the table.
        baseline: Score at the baseline visit.
        followup: Score at the follow-up visit.
        change: ``followup - baseline``.
        improvement: ``(baseline - followup) / baseline`` (0.75 = 75 % better); None for a
            zero baseline.
        vasi50, vasi75, vasi90: Improvement of at least 50 / 75 / 90 %; None for a zero
            baseline.
    """

    patient_id: str
    baseline: float
    followup: float
    change: float
    improvement: float | None
    vasi50: bool | None
    vasi75: bool | None
    vasi90: bool | None


@dataclass(frozen=True)
class MissingVisit(JsonRecord):
    """A patient left out of a score's paired analysis, and the visit(s) without a value."""

    patient_id: str
    missing: tuple[str, ...]


@dataclass(frozen=True)
class ScoreSummary:
    """Paired baseline/follow-up summary of one score column.

    Attributes:
        score: Column name, e.g. ``"f_vasi"``.
        baseline_visit, followup_visit: Visit names compared.
        n: Patients with a value at both visits.
        n_nonzero_baseline: Of those, patients with a baseline above 0: the denominator of
            the responder shares (a zero baseline cannot improve).
        baseline, followup: Median and IQR at each visit over the ``n`` patients.
        improvement: Median and IQR of the relative improvement over the
            ``n_nonzero_baseline`` patients.
        test: Wilcoxon signed-rank test over the ``n`` pairs.
        responders: ``"50"``, ``"75"``, ``"90"`` -> share with at least that improvement.
        patients: Every paired patient, in table order.
        missing_visit: Patients in the table without a value at one or both visits.
    """

    score: str
    baseline_visit: str
    followup_visit: str
    n: int
    n_nonzero_baseline: int
    baseline: MedianIqr
    followup: MedianIqr
    improvement: MedianIqr
    test: PairedTest
    responders: Mapping[str, Proportion]
    patients: tuple[PatientChange, ...]
    missing_visit: tuple[MissingVisit, ...]

    def to_dict(self) -> dict[str, Any]:
        """``summary.json`` shape: medians, IQRs, P, responder shares, lists."""
        return {
            "n": self.n,
            "n_nonzero_baseline": self.n_nonzero_baseline,
            "baseline_visit": self.baseline_visit,
            "followup_visit": self.followup_visit,
            "baseline_median": self.baseline.median,
            "baseline_q1": self.baseline.q1,
            "baseline_q3": self.baseline.q3,
            "followup_median": self.followup.median,
            "followup_q1": self.followup.q1,
            "followup_q3": self.followup.q3,
            "median_improvement": self.improvement.median,
            "improvement_q1": self.improvement.q1,
            "improvement_q3": self.improvement.q3,
            "p_value": self.test.p_value,
            "test": {
                "name": "Wilcoxon signed-rank, two-sided, zero differences dropped",
                **self.test.to_dict(),
            },
            "responders": {level: share.to_dict() for level, share in self.responders.items()},
            "missing_visit": [item.to_dict() for item in self.missing_visit],
            "patients": [patient.to_dict() for patient in self.patients],
        }


@dataclass(frozen=True)
class CohortSummary:
    """Summaries of every score column, in column order."""

    baseline_visit: str
    followup_visit: str
    scores: Mapping[str, ScoreSummary]

    def to_dict(self) -> dict[str, Any]:
        """``{"f_vasi": {...}, "t_vasi": {...}}``: one entry per score column."""
        return {name: summary.to_dict() for name, summary in self.scores.items()}


def read_score_table(path: str | Path) -> list[dict[str, str]]:
    """Rows of a CSV score table as dicts of stripped strings.

    Raises:
        CohortInputError: the file is missing or lacks ``patient_id`` / ``visit``.
    """
    path = Path(path)
    if not path.is_file():
        raise CohortInputError(f"{path}: score table not found")
    with open(path, newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        missing = [c for c in ("patient_id", "visit") if c not in (reader.fieldnames or [])]
        if missing:
            raise CohortInputError(f"{path}: missing column(s) {', '.join(missing)}")
        return [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]


def summarise_cohort(
    rows: Sequence[Mapping[str, Any]],
    baseline_visit: str,
    followup_visit: str,
    scores: Sequence[str] | None = None,
    *,
    confidence: float = 0.95,
    config: VasiConfig | None = None,
) -> CohortSummary:
    """Summarise every score column between two visits.

    Args:
        rows: Table rows with ``patient_id``, ``visit`` and score columns (strings or
            numbers; blank or None = not measured).
        baseline_visit: Baseline visit name, e.g. ``"V0"``.
        followup_visit: Follow-up visit name, e.g. ``"V1"``.
        scores: Score columns; None = those of ``f_vasi`` / ``t_vasi`` the table has.
        confidence: Confidence level of the responder intervals.
        config: VASI settings (for :func:`vitiseg.vasi.response`); None for the defaults.

    Raises:
        CohortInputError: a visit or column is absent, a value is not a number >= 0, or a
            patient has two values for one visit.
    """
    baseline_visit, followup_visit = str(baseline_visit), str(followup_visit)
    if baseline_visit == followup_visit:
        raise CohortInputError(f"baseline and follow-up are the same visit {baseline_visit!r}")
    columns = set().union(*(row.keys() for row in rows)) if rows else set()
    if scores is None:
        scores = [name for name in DEFAULT_SCORES if name in columns]
        if not scores:
            raise CohortInputError(f"no score column: expected {' and/or '.join(DEFAULT_SCORES)}")
    absent = [name for name in scores if name not in columns]
    if absent:
        raise CohortInputError(f"score column(s) {absent} not in the table")
    visits = {str(row.get("visit", "")).strip() for row in rows}
    for visit in (baseline_visit, followup_visit):
        if visit not in visits:
            raise CohortInputError(f"visit {visit!r} not in the table; it has {sorted(visits)}")
    return CohortSummary(
        baseline_visit=baseline_visit,
        followup_visit=followup_visit,
        scores={
            name: summarise_score(
                rows, name, baseline_visit, followup_visit, confidence=confidence, config=config
            )
            for name in scores
        },
    )


def summarise_score(
    rows: Sequence[Mapping[str, Any]],
    score: str,
    baseline_visit: str,
    followup_visit: str,
    *,
    confidence: float = 0.95,
    config: VasiConfig | None = None,
) -> ScoreSummary:
    """Pair one score column by patient and summarise it (see :func:`summarise_cohort`)."""
    values = _values_by_patient(rows, score, (baseline_visit, followup_visit))
    patients: list[PatientChange] = []
    missing: list[MissingVisit] = []
    for patient_id, by_visit in values.items():
        absent = tuple(v for v in (baseline_visit, followup_visit) if v not in by_visit)
        if absent:
            missing.append(MissingVisit(patient_id=patient_id, missing=absent))
            continue
        change = response(by_visit[baseline_visit], by_visit[followup_visit], config)
        patients.append(
            PatientChange(
                patient_id=patient_id,
                baseline=change.baseline,
                followup=change.followup,
                change=change.change,
                improvement=change.improvement,
                vasi50=change.vasi50,
                vasi75=change.vasi75,
                vasi90=change.vasi90,
            )
        )
    baseline = np.array([p.baseline for p in patients], dtype=np.float64)
    followup = np.array([p.followup for p in patients], dtype=np.float64)
    improvable = [p for p in patients if p.improvement is not None]
    responders = {
        str(level): proportion(
            sum(bool(getattr(p, f"vasi{level}")) for p in improvable), len(improvable), confidence
        )
        for level in RESPONDER_LEVELS
    }
    return ScoreSummary(
        score=score,
        baseline_visit=baseline_visit,
        followup_visit=followup_visit,
        n=len(patients),
        n_nonzero_baseline=len(improvable),
        baseline=median_iqr(baseline),
        followup=median_iqr(followup),
        improvement=median_iqr(np.array([p.improvement for p in improvable], dtype=np.float64)),
        test=wilcoxon_signed_rank(baseline, followup),
        responders=responders,
        patients=tuple(patients),
        missing_visit=tuple(missing),
    )


def _values_by_patient(
    rows: Sequence[Mapping[str, Any]], score: str, visits: tuple[str, str]
) -> dict[str, dict[str, float]]:
    """patient -> {visit: value} for the two visits; every patient in the table is a key."""
    values: dict[str, dict[str, float]] = {}
    problems = []
    for line, row in enumerate(rows, start=2):
        patient_id = str(row.get("patient_id", "") or "").strip()
        visit = str(row.get("visit", "") or "").strip()
        if not patient_id:
            problems.append(f"row {line}: empty patient_id")
            continue
        by_visit = values.setdefault(patient_id, {})
        cell = row.get(score)
        if visit not in visits or cell is None or str(cell).strip() == "":
            continue
        try:
            value = float(cell)
        except ValueError:
            problems.append(f"row {line}: {score} {cell!r} is not a number")
            continue
        if not (math.isfinite(value) and value >= 0):
            problems.append(f"row {line}: {score} must be a finite number >= 0, got {cell}")
        elif visit in by_visit:
            problems.append(f"row {line}: patient {patient_id} has a second {score} at {visit}")
        else:
            by_visit[visit] = value
    if problems:
        raise CohortInputError("; ".join(problems))
    return values
