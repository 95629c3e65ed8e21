"""Statistics of a paired cohort: median and IQR, Wilcoxon signed-rank, Wilson intervals.

Pure functions of arrays (NumPy, SciPy); definitions in ``docs/compare_and_cohort.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy import stats

from vitiseg.vasi._records import JsonRecord


@dataclass(frozen=True)
class MedianIqr(JsonRecord):
    """Median and interquartile range of one sample.

    Attributes:
        median: 50th percentile.
        q1: 25th percentile.
        q3: 75th percentile. All three by NumPy's default ``"linear"`` method (type 7 of
            Hyndman and Fan, as R's default and Excel's ``PERCENTILE.INC``).
        n: Values used.
    """

    median: float | None
    q1: float | None
    q3: float | None
    n: int


@dataclass(frozen=True)
class PairedTest(JsonRecord):
    """Wilcoxon signed-rank test of paired baseline and follow-up values.

    Attributes:
        p_value: Two-sided P, or None when the test cannot be run (see ``reason``).
        statistic: The smaller of the positive and negative rank sums (SciPy's two-sided
            statistic), or None.
        method: ``"exact"``, ``"permutation"`` (all sign flips enumerated) or
            ``"normal approximation"`` (with tie correction, no continuity correction), as
            SciPy's ``method="auto"`` picks; None when not run.
        n: Pairs given.
        n_nonzero: Pairs with a non-zero difference (zero differences are dropped,
            Wilcoxon's original method).
        reason: Why ``p_value`` is None; empty otherwise.
    """

    p_value: float | None
    statistic: float | None
    method: str | None
    n: int
    n_nonzero: int
    reason: str = ""


@dataclass(frozen=True)
class Proportion(JsonRecord):
    """A share with its Wilson score interval.

    Attributes:
        count: Successes.
        n: Trials (the denominator).
        share: ``count / n``, or None when ``n`` is 0.
        ci_low: Lower bound of the interval, or None.
        ci_high: Upper bound of the interval, or None.
        confidence: Confidence level of the interval, e.g. 0.95.
    """

    count: int
    n: int
    share: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float


def median_iqr(values: np.ndarray) -> MedianIqr:
    """Median and IQR of a 1-D sample (NumPy ``"linear"`` percentiles).

    Args:
        values: (N,) finite numbers; N = 0 gives Nones.
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        return MedianIqr(median=None, q1=None, q3=None, n=0)
    q1, median, q3 = np.percentile(array, [25, 50, 75], method="linear")
    return MedianIqr(median=float(median), q1=float(q1), q3=float(q3), n=int(array.size))


def wilson_interval(count: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927; no continuity correction).

    ``centre = (p + z²/2n) / (1 + z²/n)``,
    ``half width = z / (1 + z²/n) * sqrt(p(1 - p)/n + z²/4n²)``, with ``p = count / n`` and
    ``z`` the two-sided standard-normal quantile of ``confidence``.

    Args:
        count: Successes, 0 <= count <= n.
        n: Trials, > 0.
        confidence: Two-sided confidence level in (0, 1).

    Returns:
        (low, high), within [0, 1].
    """
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n}")
    if not 0 <= count <= n:
        raise ValueError(f"count must lie in [0, n], got {count} of {n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    share = count / n
    denominator = 1 + z * z / n
    centre = (share + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(count: int, n: int, confidence: float = 0.95) -> Proportion:
    """``count / n`` with its Wilson interval; all None when ``n`` is 0."""
    if n == 0:
        return Proportion(
            count=0, n=0, share=None, ci_low=None, ci_high=None, confidence=confidence
        )
    low, high = wilson_interval(count, n, confidence)
    return Proportion(
        count=count, n=n, share=count / n, ci_low=low, ci_high=high, confidence=confidence
    )


def scipy_auto_method(differences: np.ndarray) -> str:
    """The test SciPy's ``wilcoxon(method="auto")`` runs for these paired differences.

    SciPy >= 1.15: more than 50 pairs (zeros included) -> normal approximation; else exact
    when there are no ties and no zeros; else, up to 13 pairs, a permutation test over all
    sign flips; else the normal approximation.
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.size > 50:
        return "normal approximation"
    nonzero = np.abs(d[d != 0])
    has_ties = np.unique(nonzero).size < nonzero.size
    if not has_ties and nonzero.size == d.size:
        return "exact"
    return "permutation" if d.size <= 13 else "normal approximation"


_SCIPY_METHOD = {"exact": "exact", "normal approximation": "asymptotic"}


def wilcoxon_signed_rank(baseline: np.ndarray, followup: np.ndarray) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of paired values, zero differences dropped.

    Equals ``scipy.stats.wilcoxon(baseline, followup, zero_method="wilcox",
    alternative="two-sided")`` and reports which method SciPy's ``"auto"`` uses; the method
    is passed explicitly so the report and the computation cannot disagree.

    Args:
        baseline: (N,) values at baseline.
        followup: (N,) values at follow-up, same patient order.

    Returns:
        The test; ``p_value`` None with a reason for fewer than 2 pairs or when every
        difference is zero.
    """
    before = np.asarray(baseline, dtype=np.float64).ravel()
    after = np.asarray(followup, dtype=np.float64).ravel()
    if before.shape != after.shape:
        raise ValueError(f"paired samples differ in length: {before.size} vs {after.size}")
    differences = before - after
    n, n_nonzero = int(differences.size), int(np.count_nonzero(differences))
    if n < 2:
        return PairedTest(
            p_value=None,
            statistic=None,
            method=None,
            n=n,
            n_nonzero=n_nonzero,
            reason=f"{n} pair(s); the test needs at least 2",
        )
    if n_nonzero == 0:
        return PairedTest(
            p_value=None,
            statistic=None,
            method=None,
            n=n,
            n_nonzero=0,
            reason="every difference is zero; nothing to test",
        )
    method = scipy_auto_method(differences)
    scipy_method = _SCIPY_METHOD.get(method) or stats.PermutationMethod()
    result = stats.wilcoxon(
        before, after, zero_method="wilcox", alternative="two-sided", method=scipy_method
    )
    return PairedTest(
        p_value=float(result.pvalue),
        statistic=float(result.statistic),
        method=method,
        n=n,
        n_nonzero=n_nonzero,
    )
