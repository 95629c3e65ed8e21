"""Rebuild ``scores.csv``, ``scores.json`` and ``report.html`` from the photo records.

Built from the records each time (never appended to), so an interrupted run cannot leave
a half row or a duplicate, and shards merged later give the same files as one run.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitiseg.io.atomic import write_json_atomic, write_text_atomic
from vitiseg.quality import FLAG_DESCRIPTIONS
from vitiseg.report import RegionSum, ReportPhoto, VisitTotal, write_report
from vitiseg.scoring.records import CSV_COLUMNS, PhotoRecord, csv_row, format_levels
from vitiseg.vasi import VasiConfig, total_vasi

log = logging.getLogger(__name__)

SCORES_FORMAT = "vitiseg-scores/1"
# Written last, so its presence marks a finished run (merge_shards relies on it).
SCORES_JSON_NAME = "scores.json"


@dataclass(frozen=True)
class OutputPaths:
    """The files a run writes at the end."""

    scores_csv: Path
    scores_json: Path
    report_html: Path


def region_sums(records: Sequence[PhotoRecord], config: VasiConfig) -> list[RegionSum]:
    """Per-region sums over the scored photos that have a region, in table order."""
    by_region: dict[str, list[PhotoRecord]] = defaultdict(list)
    for record in records:
        if record.ok and record.region and record.vasi is not None:
            by_region[record.region].append(record)
    order = [name for name in config.regions if name in by_region]
    order += sorted(set(by_region) - set(order))
    sums = []
    for region in order:
        group = by_region[region]
        sums.append(
            RegionSum(
                region=region,
                n_photos=len(group),
                n_flagged=sum(bool(r.quality_flags) for r in group),
                hand_units_affected=sum(r.hand_units_affected or 0.0 for r in group),
                vasi=sum(r.vasi or 0.0 for r in group),
                mean_affected_fraction=sum(r.affected_fraction or 0.0 for r in group) / len(group),
            )
        )
    return sums


def visit_totals(records: Sequence[PhotoRecord], config: VasiConfig) -> list[VisitTotal]:
    """F-VASI and T-VASI per (patient_id, visit), for photos whose manifest names a patient.

    Patients and visits keep the order they first appear in.
    """
    groups: dict[tuple[str, str], list[PhotoRecord]] = {}
    for record in records:
        if record.patient_id:
            groups.setdefault((record.patient_id, record.visit), []).append(record)
    totals = []
    for (patient_id, visit), group in groups.items():
        scored = [r for r in group if r.ok and r.region_score is not None]
        problems = []
        failed = sum(not r.ok for r in group)
        if failed:
            problems.append(f"{failed} photo{'s' if failed != 1 else ''} could not be scored")
        unplaced = sum(r.ok and r.region_score is None for r in group)
        if unplaced:
            problems.append(f"{unplaced} photo{'s' if unplaced != 1 else ''} without a region")
        base = dict(
            patient_id=patient_id,
            visit=visit,
            n_photos=len(scored),
            n_flagged=sum(bool(r.quality_flags) for r in scored),
        )
        if not scored:
            totals.append(
                VisitTotal(
                    **base,
                    f_vasi=None,
                    t_vasi=None,
                    t_vasi_max=None,
                    problem="; ".join(problems or ["no scored photo"]),
                )
            )
            continue
        try:
            total = total_vasi([r.region_score_object() for r in scored], config)
        except (ValueError, KeyError) as exc:
            problems.append(f"no total: {exc}")
            totals.append(
                VisitTotal(
                    **base, f_vasi=None, t_vasi=None, t_vasi_max=None, problem="; ".join(problems)
                )
            )
            continue
        counts = defaultdict(int)
        for record in scored:
            counts[record.region] += 1
        totals.append(
            VisitTotal(
                **base,
                f_vasi=total.f_vasi,
                t_vasi=total.t_vasi,
                t_vasi_max=total.t_vasi_max,
                regions=tuple((c.region, c.vasi, counts[c.region]) for c in total.contributions),
                regions_missing=total.regions_missing,
                problem="; ".join(problems),
            )
        )
    return totals


def scores_csv_text(records: Sequence[PhotoRecord]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(csv_row(record))
    return buffer.getvalue()


def _read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def report_photos(records: Sequence[PhotoRecord], out_dir: Path) -> list[ReportPhoto]:
    photos = []
    for record in records:
        files = record.files
        photos.append(
            ReportPhoto(
                image=record.image,
                status=record.status,
                error=record.error,
                patient_id=record.patient_id,
                visit=record.visit,
                region=record.region,
                affected_fraction=record.affected_fraction,
                n_patches=record.n_patches,
                patch_levels=format_levels(record.patch_levels),
                hand_units_affected=record.hand_units_affected,
                vasi=record.vasi,
                mean_uncertainty=record.mean_uncertainty,
                quality_flags=record.quality_flags,
                photo_jpeg=_read_optional(out_dir / files["photo_thumbnail"])
                if "photo_thumbnail" in files
                else None,
                overlay_jpeg=_read_optional(out_dir / files["overlay_thumbnail"])
                if "overlay_thumbnail" in files
                else None,
                overlay_href=files.get("overlay", ""),
            )
        )
    return photos


def write_outputs(
    out_dir: Path,
    entries: Sequence[tuple[int, PhotoRecord]],
    run_info: Mapping[str, Any],
    config: VasiConfig,
) -> OutputPaths:
    """Write the run's tables and report from its records.

    Args:
        out_dir: Run folder (thumbnails are read from it for the report).
        entries: (index in the full input list, record); rows are ordered by index.
        run_info: Run settings, model metadata and counts for ``scores.json`` and the report.
        config: VASI settings for the per-visit sums.
    """
    ordered = sorted(entries, key=lambda entry: (entry[0], entry[1].key))
    records = [record for _, record in ordered]
    sums = region_sums(records, config)
    visits = visit_totals(records, config)
    paths = OutputPaths(
        out_dir / "scores.csv", out_dir / SCORES_JSON_NAME, out_dir / "report.html"
    )
    write_text_atomic(paths.scores_csv, scores_csv_text(records))
    write_json_atomic(
        paths.scores_json,
        {
            "format": SCORES_FORMAT,
            "run": dict(run_info),
            "summary": {
                "n_photos": len(records),
                "n_ok": sum(r.ok for r in records),
                "n_failed": sum(not r.ok for r in records),
                "n_flagged": sum(r.ok and bool(r.quality_flags) for r in records),
                "regions": [s.to_dict() for s in sums],
                "visits": [v.to_dict() for v in visits],
            },
            "photos": [{"index": index, **record.to_dict()} for index, record in ordered],
        },
    )
    write_report(
        paths.report_html,
        report_photos(records, out_dir),
        region_sums=sums,
        visits=visits,
        run=run_info,
        flag_descriptions=FLAG_DESCRIPTIONS,
    )
    return paths
