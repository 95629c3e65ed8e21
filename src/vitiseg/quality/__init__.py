"""Photo quality flags reported beside the scores (``configs/quality/default.yaml``)."""

from __future__ import annotations

from vitiseg.quality.flags import (
    FLAG_DESCRIPTIONS,
    FLAG_NAMES,
    QualityConfig,
    QualityReport,
    assess_quality,
    quality_config_from_mapping,
)

__all__ = [
    "FLAG_DESCRIPTIONS",
    "FLAG_NAMES",
    "QualityConfig",
    "QualityReport",
    "assess_quality",
    "quality_config_from_mapping",
]
