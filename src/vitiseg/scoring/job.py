"""A whole scoring job: find the photos, take this shard, score, write tables and report.

Also the merge of shard folders into one result equal to a single run.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vitiseg.inference.predictor import Predictor, backend_name
from vitiseg.scoring.inputs import discover_inputs, select_shard
from vitiseg.scoring.outputs import SCORES_FORMAT, SCORES_JSON_NAME, OutputPaths, write_outputs
from vitiseg.scoring.records import PhotoRecord, load_record, record_path
from vitiseg.scoring.runner import (
    ScoreSettings,
    environment_summary,
    lock_and_clean,
    score_batch,
)
from vitiseg.vasi import load_vasi_config

log = logging.getLogger(__name__)

# Folders whose files a merge copies from each shard.
ARTEFACT_DIRS = ("records", "masks", "overlays", "thumbnails")


class MergeError(ValueError):
    """Shard folders that cannot be joined (unfinished, mismatched or missing shards)."""


@dataclass(frozen=True)
class ScoreJob:
    """What to score and where.

    Attributes:
        output: Run folder.
        input: A photo or a folder (recursive); with a manifest, where its names resolve.
        manifest: CSV listing photos with patient_id, visit, region, pixels_per_cm, ...
        shard: (i, n) to score only shard i of n.
        config: The command's configuration, kept in ``scores.json``.
        progress: Show a progress bar.
    """

    output: Path
    input: Path | None = None
    manifest: Path | None = None
    shard: tuple[int, int] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    progress: bool = True


@dataclass(frozen=True)
class JobResult:
    """Records in output order, the files written and the failure count."""

    records: tuple[PhotoRecord, ...]
    paths: OutputPaths
    n_failed: int
    n_reused: int = 0
    peak_rss_mb: float | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_score_job(job: ScoreJob, predictor: Predictor, settings: ScoreSettings) -> JobResult:
    """Score a folder, a photo or a manifest's photos into ``job.output``; resumable.

    Re-running the same job skips finished photos (see
    :func:`vitiseg.scoring.runner.is_reusable`) and rebuilds the tables from the records.
    """
    out_dir = Path(job.output)
    started = _now()
    with lock_and_clean(out_dir):
        photos = discover_inputs(job.input, job.manifest, exclude=[out_dir])
        index_of = {photo.key: index for index, photo in enumerate(photos)}
        selected = select_shard(photos, *job.shard) if job.shard else photos
        if job.shard:
            log.info("shard %d/%d: %d of %d photos", *job.shard, len(selected), len(photos))
        # A run killed halfway must not leave the previous run's scores.json, which says
        # "finished", beside records made with other settings; it is written again at the end.
        (out_dir / SCORES_JSON_NAME).unlink(missing_ok=True)
        batch = score_batch(selected, predictor, out_dir, settings, progress=job.progress)
        metadata = predictor.metadata
        run_info = {
            "format": SCORES_FORMAT,
            "command": "vitiseg-score",
            "model_id": metadata.model_id,
            "started": started,
            "finished": _now(),
            "input": None if job.input is None else str(job.input),
            "manifest": None if job.manifest is None else str(job.manifest),
            "shard": None if job.shard is None else f"{job.shard[0]}/{job.shard[1]}",
            "n_inputs_total": len(photos),
            "n_inputs": len(selected),
            "n_reused": batch.n_reused,
            "n_scored": batch.n_scored,
            "settings_id": batch.settings_id,
            "peak_rss_mb": batch.peak_rss_mb,
            "inference": {
                "backend": backend_name(predictor.backend),
                "long_side": predictor.long_side,
                "tile": predictor.tile,
                "overlap": predictor.overlap,
                "tta": predictor.tta,
                "scales": list(predictor.scales),
                "batch_size": predictor.batch_size,
                "depigmented_source": predictor.depigmented_source,
                "colour_min_lift": predictor.colour_min_lift,
            },
            "model": metadata.to_dict(),
            "vasi": settings.vasi.to_dict(),
            "quality": settings.quality.to_dict(),
            "environment": environment_summary(),
            "config": dict(job.config),
        }
        entries = [(index_of[r.key], r) for r in batch.records]
        paths = write_outputs(out_dir, entries, run_info, settings.vasi)
    return JobResult(
        records=batch.records,
        paths=paths,
        n_failed=batch.n_failed,
        n_reused=batch.n_reused,
        peak_rss_mb=batch.peak_rss_mb,
    )


def _copy_atomic(source: Path, target: Path) -> None:
    """Copy a file so a reader never sees it half-written (streamed, any size)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".part", dir=target.parent
    )
    try:
        with os.fdopen(handle, "wb") as out, open(source, "rb") as stream:
            while chunk := stream.read(1 << 20):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_shard(folder: Path) -> dict[str, Any]:
    path = folder / SCORES_JSON_NAME
    if not path.is_file():
        raise MergeError(
            f"{folder}: no scores.json; this shard has not finished. Re-run its command "
            "(it resumes) and merge again"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != SCORES_FORMAT:
        raise MergeError(f"{path}: not a vitiseg-score output ({data.get('format')!r})")
    return data


def merge_shards(
    shard_dirs: Sequence[Path], output: Path, *, config: Mapping[str, Any] | None = None
) -> JobResult:
    """Join shard folders into ``output``: the same tables and report as one run.

    Shards must come from the same command with different ``shard=i/n`` (same inputs,
    model and settings) and together cover every shard. Their records, masks, overlays
    and thumbnails are copied unless ``output`` is one of them.

    Raises:
        MergeError: a shard is unfinished, the shards disagree, one is missing, or a
            photo has two different results.
    """
    output = Path(output)
    if not shard_dirs:
        raise MergeError("merge=[DIR1,DIR2,...] needs at least one shard folder")
    shards = [(Path(folder), _read_shard(Path(folder))) for folder in shard_dirs]
    first_dir, first = shards[0]
    first_run = first["run"]
    for folder, data in shards[1:]:
        run = data["run"]
        for name in ("settings_id", "n_inputs_total", "input", "manifest", "model_id"):
            if run.get(name) != first_run.get(name):
                raise MergeError(
                    f"{folder} and {first_dir} differ in {name} ({run.get(name)!r} vs "
                    f"{first_run.get(name)!r}); merge only shards of the same command"
                )
    specs = [data["run"].get("shard") for _, data in shards]
    if None in specs:
        if len(shards) > 1:
            raise MergeError("a folder without shard=i/n can only be merged on its own")
    else:
        counts = {int(spec.split("/")[1]) for spec in specs}
        if len(counts) != 1:
            raise MergeError(f"shards of different counts: {sorted(specs)}")
        count = counts.pop()
        present = {int(spec.split("/")[0]) for spec in specs}
        missing = sorted(set(range(count)) - present)
        if missing:
            names = ", ".join(f"{i}/{count}" for i in missing)
            raise MergeError(f"missing shard(s) {names}; run them and merge all {count}")

    entries: dict[str, tuple[int, PhotoRecord]] = {}
    with lock_and_clean(output):
        for folder, data in shards:
            same_folder = folder.resolve() == output.resolve()
            for photo in data["photos"]:
                key, index = photo["key"], int(photo["index"])
                record = load_record(record_path(folder, key))
                if record is None:
                    raise MergeError(f"{folder}: record of {photo['image']!r} is missing")
                if key in entries and entries[key][1] != record:
                    raise MergeError(f"{photo['image']!r} has different results in two shards")
                entries[key] = (index, record)
                if same_folder:
                    continue
                sources = [record_path(folder, key)] + [
                    folder / relative for relative in record.files.values()
                ]
                for source in sources:
                    _copy_atomic(source, output / source.relative_to(folder))
        expected = int(first_run.get("n_inputs_total", len(entries)))
        if specs[0] is not None and len(entries) != expected:
            raise MergeError(f"the shards hold {len(entries)} photos, the inputs {expected}")
        run_info = {
            **first_run,
            "shard": None,
            "merged_from": [str(folder) for folder, _ in shards],
            "n_inputs": len(entries),
            "n_reused": None,
            "n_scored": None,
            "finished": _now(),
            "peak_rss_mb": max(
                (d["run"].get("peak_rss_mb") or 0.0 for _, d in shards), default=None
            ),
        }
        if config is not None:
            run_info["merge_config"] = dict(config)
        vasi = load_vasi_config(first_run.get("vasi"))
        paths = write_outputs(output, list(entries.values()), run_info, vasi)
    records = tuple(record for _, record in sorted(entries.values(), key=lambda e: e[0]))
    return JobResult(records=records, paths=paths, n_failed=sum(not r.ok for r in records))
