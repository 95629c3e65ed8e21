"""Confidence intervals for a mean over cases when several cases come from one patient.

Photos of one patient (or flipped and cropped copies of one source photo) are not
independent: a naive interval over cases is too narrow. The cluster bootstrap resamples
whole patients with replacement and recomputes the mean over all their cases.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np


def patient_bootstrap_ci(
    values: Sequence[float | None],
    patients: Sequence[str],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile interval of the mean of ``values`` under resampling of ``patients``.

    None and NaN values are left out. None when fewer than two patients remain: one patient says
    nothing about how the mean varies between patients.
    """
    if len(values) != len(patients):
        raise ValueError(f"{len(values)} values but {len(patients)} patient ids")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    by_patient: dict[str, list[float]] = defaultdict(list)
    for value, patient in zip(values, patients, strict=True):
        if value is not None and not math.isnan(value):
            by_patient[patient].append(float(value))
    if len(by_patient) < 2:
        return None
    sums = np.array([sum(v) for v in by_patient.values()])
    counts = np.array([len(v) for v in by_patient.values()])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sums), size=(resamples, len(sums)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)
