"""vitiseg-cohort input=CSV output=DIR baseline=V0 followup=V1: cohort endpoints and report."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vitiseg.cli._hydra import output_dir, run_hydra
from vitiseg.cohort import (
    CohortInputError,
    read_score_table,
    summarise_cohort,
    write_cohort_report,
)

log = logging.getLogger(__name__)


def task(cfg: DictConfig) -> int:
    scores = OmegaConf.to_container(cfg.scores) if cfg.scores is not None else None
    if isinstance(scores, str):
        scores = [scores]
    try:
        summary = summarise_cohort(
            read_score_table(Path(str(cfg.input)).expanduser()),
            str(cfg.baseline),
            str(cfg.followup),
            scores,
            confidence=float(cfg.confidence),
        )
    except CohortInputError as error:
        log.error("%s", error)
        return 1
    out = output_dir()
    write_cohort_report(
        out,
        summary,
        baseline_label=cfg.baseline_label and str(cfg.baseline_label),
        followup_label=cfg.followup_label and str(cfg.followup_label),
        source=Path(str(cfg.input)).name,
    )
    for name, score in summary.scores.items():
        log.info(
            "%s: n=%d, median %s -> %s, P=%s, missing a visit: %d",
            name,
            score.n,
            _short(score.baseline.median),
            _short(score.followup.median),
            _short(score.test.p_value),
            len(score.missing_visit),
        )
    log.info("report: %s", out / "report.html")
    return 0


def _short(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def main() -> None:
    run_hydra("cohort", task)


if __name__ == "__main__":
    main()
