"""Batch scoring of clinic photos (``vitiseg-score``): resumable, shardable, mergeable.

Typical use from Python::

    from vitiseg.inference.predictor import Predictor
    from vitiseg.scoring import ScoreJob, ScoreSettings, run_score_job

    predictor = Predictor.from_folder("models/default")
    result = run_score_job(ScoreJob(output=Path("scores"), input=Path("photos")),
                           predictor, ScoreSettings())
    print(result.paths.report_html, result.n_failed)
"""

from __future__ import annotations

from vitiseg.scoring.inputs import (
    InputError,
    PhotoInput,
    discover_inputs,
    parse_shard,
    photo_key,
    select_shard,
    shard_of,
)
from vitiseg.scoring.job import JobResult, MergeError, ScoreJob, merge_shards, run_score_job
from vitiseg.scoring.outputs import OutputPaths, region_sums, visit_totals, write_outputs
from vitiseg.scoring.records import CSV_COLUMNS, PhotoRecord, load_record
from vitiseg.scoring.runner import (
    BatchResult,
    OutputBusyError,
    ScoreSettings,
    peak_rss_mb,
    score_batch,
    score_photo,
    settings_fingerprint,
)

__all__ = [
    "CSV_COLUMNS",
    "BatchResult",
    "InputError",
    "JobResult",
    "MergeError",
    "OutputBusyError",
    "OutputPaths",
    "PhotoInput",
    "PhotoRecord",
    "ScoreJob",
    "ScoreSettings",
    "discover_inputs",
    "load_record",
    "merge_shards",
    "parse_shard",
    "peak_rss_mb",
    "photo_key",
    "region_sums",
    "run_score_job",
    "score_batch",
    "score_photo",
    "select_shard",
    "settings_fingerprint",
    "shard_of",
    "visit_totals",
    "write_outputs",
]
