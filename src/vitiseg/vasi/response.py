"""Treatment response between a baseline and a follow-up VASI (``docs/vasi.md``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from vitiseg.vasi._records import JsonRecord
from vitiseg.vasi.config import VasiConfig
from vitiseg.vasi.scoring import RegionContribution, RegionScore, TotalScore

# Improvements are ratios of float sums; a tolerance keeps 0.3 -> 0.15 a VASI50 responder.
_FLAG_TOLERANCE = 1e-9

ScoreLike = float | int | RegionScore | RegionContribution | TotalScore


@dataclass(frozen=True)
class Response(JsonRecord):
    """Change from baseline to follow-up.

    Attributes:
        baseline: Baseline VASI.
        followup: Follow-up VASI.
        change: ``followup - baseline`` (negative = repigmentation).
        improvement: ``(baseline - followup) / baseline``; None for a zero baseline.
            Negative when the vitiligo spread.
        vasi50: ``improvement >= 0.50``; None for a zero baseline.
        vasi75: ``improvement >= 0.75``; None for a zero baseline.
        vasi90: ``improvement >= 0.90``; None for a zero baseline.
        below_detectable_change: The relative change is smaller than the configured
            smallest detectable change, i.e. within measurement error. With a zero baseline
            it is True only when the follow-up is zero too.
    """

    baseline: float
    followup: float
    change: float
    improvement: float | None
    vasi50: bool | None
    vasi75: bool | None
    vasi90: bool | None
    below_detectable_change: bool


def response(
    baseline: ScoreLike, followup: ScoreLike, config: VasiConfig | None = None
) -> Response:
    """Improvement and responder flags from a baseline and a follow-up score.

    Args:
        baseline: VASI at baseline: a number, a :class:`RegionScore` / region contribution
            (its ``vasi``) or a :class:`TotalScore` (its ``t_vasi``).
        followup: VASI at follow-up, same kinds.
        config: For ``smallest_detectable_change``; None for the defaults.

    Returns:
        The response; a zero baseline gives ``improvement`` and flags of None, no error.

    Raises:
        ValueError: a score is negative or not finite.
    """
    config = config or VasiConfig()
    before, after = _value(baseline, "baseline"), _value(followup, "followup")
    if before == 0:
        return Response(
            baseline=before,
            followup=after,
            change=after - before,
            improvement=None,
            vasi50=None,
            vasi75=None,
            vasi90=None,
            below_detectable_change=after == 0,
        )
    improvement = (before - after) / before
    return Response(
        baseline=before,
        followup=after,
        change=after - before,
        improvement=improvement,
        vasi50=improvement >= 0.50 - _FLAG_TOLERANCE,
        vasi75=improvement >= 0.75 - _FLAG_TOLERANCE,
        vasi90=improvement >= 0.90 - _FLAG_TOLERANCE,
        below_detectable_change=abs(improvement) < config.smallest_detectable_change,
    )


def _value(score: ScoreLike, name: str) -> float:
    if isinstance(score, TotalScore):
        value = score.t_vasi
    elif isinstance(score, (RegionScore, RegionContribution)):
        value = score.vasi
    else:
        value = float(score)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: VASI must be a finite number >= 0, got {value}")
    return value
