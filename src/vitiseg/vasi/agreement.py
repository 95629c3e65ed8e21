"""Agreement between two measurements of the same thing (model vs truth, rater vs rater).

``icc_2_1`` follows Shrout & Fleiss (1979), case 2: every target rated by the same k
raters, raters a random sample, absolute agreement, reliability of a single rating. Limits
of agreement follow Bland & Altman (1986): mean difference ± 1.96 SD of the differences.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitiseg.vasi._records import JsonRecord

_LOA_Z = 1.96


def _as_ratings(ratings: np.ndarray) -> np.ndarray:
    array = np.asarray(ratings, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 2:
        raise ValueError(f"ratings: need an (n >= 2, k >= 2) array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("ratings: every value must be finite")
    return array


def _as_pairs(a: np.ndarray, b: np.ndarray, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    first = np.asarray(a, dtype=np.float64).ravel()
    second = np.asarray(b, dtype=np.float64).ravel()
    if first.shape != second.shape:
        raise ValueError(f"a and b differ in length: {first.size} vs {second.size}")
    if first.size < minimum:
        raise ValueError(f"need at least {minimum} pairs, got {first.size}")
    if not (np.all(np.isfinite(first)) and np.all(np.isfinite(second))):
        raise ValueError("a and b: every value must be finite")
    return first, second


def icc_2_1(ratings: np.ndarray) -> float:
    """ICC(2,1): two-way random effects, absolute agreement, single rater.

    ``(BMS - EMS) / (BMS + (k - 1) EMS + k (JMS - EMS) / n)`` with the between-targets,
    between-judges and residual mean squares of a two-way ANOVA.

    Args:
        ratings: (n targets, k raters) array of numbers, no missing values.

    Returns:
        The ICC; 1.0 when all raters agree exactly on targets that differ; NaN when it is
        undefined (every rating identical, so no variance to explain).

    Raises:
        ValueError: fewer than 2 targets or raters, or non-finite values.
    """
    x = _as_ratings(ratings)
    n, k = x.shape
    grand_mean = x.mean()
    ss_targets = k * np.sum((x.mean(axis=1) - grand_mean) ** 2)
    ss_raters = n * np.sum((x.mean(axis=0) - grand_mean) ** 2)
    ss_total = np.sum((x - grand_mean) ** 2)
    ss_error = max(ss_total - ss_targets - ss_raters, 0.0)
    bms = ss_targets / (n - 1)
    jms = ss_raters / (k - 1)
    ems = ss_error / ((n - 1) * (k - 1))
    denominator = bms + (k - 1) * ems + k * (jms - ems) / n
    if denominator <= 0:
        return math.nan
    return float((bms - ems) / denominator)


@dataclass(frozen=True)
class BlandAltman(JsonRecord):
    """Bland–Altman summary of ``a - b``.

    Attributes:
        n: Number of pairs.
        mean_difference: Mean of ``a - b`` (bias).
        sd: Sample standard deviation of ``a - b`` (ddof 1).
        lower_loa: ``mean_difference - 1.96 sd``.
        upper_loa: ``mean_difference + 1.96 sd``.
    """

    n: int
    mean_difference: float
    sd: float
    lower_loa: float
    upper_loa: float


def bland_altman(a: np.ndarray, b: np.ndarray) -> BlandAltman:
    """Bias and 95 % limits of agreement of paired measurements.

    Args:
        a: (n,) measurements by method A (e.g. the model), n >= 2.
        b: (n,) measurements of the same targets by method B (e.g. the truth).
    """
    first, second = _as_pairs(a, b, minimum=2)
    differences = first - second
    mean_difference = float(differences.mean())
    sd = float(differences.std(ddof=1))
    return BlandAltman(
        n=int(differences.size),
        mean_difference=mean_difference,
        sd=sd,
        lower_loa=mean_difference - _LOA_Z * sd,
        upper_loa=mean_difference + _LOA_Z * sd,
    )


def mean_absolute_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean of ``|a - b|`` over paired measurements ((n,) arrays, n >= 1)."""
    first, second = _as_pairs(a, b, minimum=1)
    return float(np.mean(np.abs(first - second)))


def plot_bland_altman(
    a: np.ndarray, b: np.ndarray, path: str | Path, title: str = "Bland–Altman"
) -> Path:
    """Write a Bland–Altman plot (mean of the pair vs difference ``a - b``) as a PNG.

    Matplotlib is imported here, not at module import, so scoring never pays for it; the
    figure is drawn on the Agg canvas without pyplot, so no global state or display is used.

    Args:
        a: (n,) measurements by method A, n >= 2.
        b: (n,) measurements by method B.
        path: Output PNG path; written atomically.
        title: Figure title.

    Returns:
        The written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from vitiseg.io.atomic import write_bytes_atomic

    first, second = _as_pairs(a, b, minimum=2)
    summary = bland_altman(first, second)
    figure = Figure(figsize=(5.0, 4.0), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.scatter((first + second) / 2.0, first - second, s=14, color="tab:blue")
    for value, label, style in (
        (summary.mean_difference, f"bias {summary.mean_difference:.3g}", "-"),
        (summary.upper_loa, f"+1.96 SD {summary.upper_loa:.3g}", "--"),
        (summary.lower_loa, f"-1.96 SD {summary.lower_loa:.3g}", "--"),
    ):
        axes.axhline(value, color="tab:red", linestyle=style, linewidth=1, label=label)
    axes.set_xlabel("mean of the two measurements")
    axes.set_ylabel("difference (a - b)")
    axes.set_title(title)
    axes.legend(fontsize="small", loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    output = Path(path)
    write_bytes_atomic(output, buffer.getvalue())
    return output
