"""Patient-clustered bootstrap intervals for means over cases."""

from __future__ import annotations

import math

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
