"""The quality thresholds a command uses, shared by score, eval and compare."""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

from vitiseg.quality import QualityConfig, quality_config_from_mapping

log = logging.getLogger(__name__)


def quality_for_model(cfg_quality: DictConfig, metadata: object) -> QualityConfig:
    """The config's numbers, and for each key it leaves null the model folder's own value
    (``metadata.json`` "quality"), else the package default; says which in the log."""
    values = OmegaConf.to_container(cfg_quality, resolve=True)
    chosen = dict(getattr(metadata, "quality", None) or {})
    quality = quality_config_from_mapping(values, chosen)
    left_null = sorted(name for name, value in values.items() if value is None)
    from_model = [name for name in left_null if name in chosen]
    if from_model:
        log.info(
            "quality thresholds chosen for this model (its metadata.json): %s",
            ", ".join(f"{name}={getattr(quality, name)}" for name in from_model),
        )
    defaulted = [name for name in left_null if name not in chosen]
    if defaulted:
        log.warning(
            "the model folder chooses no %s: using the package default (%s), chosen for the "
            "shipped model; see docs/scoring.md#quality-flags to choose one for this model",
            ", ".join(defaulted),
            ", ".join(str(getattr(quality, name)) for name in defaulted),
        )
    return quality
