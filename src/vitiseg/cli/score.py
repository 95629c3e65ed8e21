"""vitiseg-score: score clinic photos into tables, masks, overlays and an HTML report.

::

    vitiseg-score input=PHOTO_OR_FOLDER output=DIR [checkpoint=MODEL] [manifest=CSV]
    vitiseg-score input=... output=DIR_i shard=i/n          # one shard of a large batch
    vitiseg-score merge=[DIR_0,DIR_1] output=DIR            # join the shards

Exit code 0 when every photo was scored, 1 when any photo failed (see the error rows),
2 when the job could not start (no model, no input, shards that do not fit together).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vitiseg.cli._hydra import output_dir, run_hydra
from vitiseg.cli._quality import quality_for_model
from vitiseg.inference.factory import predictor_from_config
from vitiseg.scoring import (
    InputError,
    JobResult,
    MergeError,
    OutputBusyError,
    ScoreJob,
    ScoreSettings,
    merge_shards,
    parse_shard,
    run_score_job,
)
from vitiseg.scoring.inputs import normalise_region
from vitiseg.vasi import load_vasi_config

log = logging.getLogger(__name__)


def _path(value: object) -> Path | None:
    return None if value in (None, "") else Path(str(value)).expanduser().resolve()


def _finish(result: JobResult) -> int:
    n_ok = len(result.records) - result.n_failed
    peak = "?" if result.peak_rss_mb is None else f"{result.peak_rss_mb:.0f}"
    log.info(
        "%d photo(s) ok, %d failed (%d finished by an earlier run); peak memory %s MiB",
        n_ok,
        result.n_failed,
        result.n_reused,
        peak,
    )
    log.info("scores: %s | report: %s", result.paths.scores_csv, result.paths.report_html)
    if result.n_failed:
        log.error(
            "%d photo(s) failed; see the error rows in %s",
            result.n_failed,
            result.paths.scores_csv,
        )
    return 1 if result.n_failed else 0


def task(cfg: DictConfig) -> int:
    out = output_dir()
    snapshot = OmegaConf.to_container(cfg, resolve=True)
    try:
        if cfg.merge:
            shards = cfg.merge if OmegaConf.is_list(cfg.merge) else [cfg.merge]
            result = merge_shards([_path(s) for s in shards], out, config=snapshot)
            return _finish(result)
        predictor, model_dir = predictor_from_config(cfg.checkpoint, cfg.infer)
        settings = ScoreSettings(
            vasi=load_vasi_config(cfg.vasi),
            quality=quality_for_model(cfg.quality, predictor.metadata),
            # Spelled like the manifest's region column ("Upper extremities" works too).
            default_region=normalise_region(str(cfg.region or "")) or None,
            write_masks=bool(cfg.masks),
            write_overlays=bool(cfg.overlays),
            overlay_long_side=int(cfg.overlay_long_side),
            thumbnail_long_side=int(cfg.thumbnail_long_side),
            max_pixels=int(cfg.max_pixels),
        )
        job = ScoreJob(
            output=out,
            input=_path(cfg.input),
            manifest=_path(cfg.manifest),
            shard=parse_shard(cfg.shard),
            config={**snapshot, "model_folder": str(model_dir)},
            progress=bool(cfg.progress),
        )
        result = run_score_job(job, predictor, settings)
    except (InputError, MergeError, OutputBusyError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    return _finish(result)


def main() -> None:
    run_hydra("score", task)


if __name__ == "__main__":
    main()
