"""Compare two visits for every patient and region listed in a manifest CSV.

Manifest columns: ``patient_id``, ``visit``, ``region``, and ``image`` (a path, relative to
the manifest's folder unless absolute) or ``case_id`` (looked up as
``<images>/<case_id>.<jpg|png|tif...>``, ``images`` defaulting to the manifest's
``images/`` folder, as in a vitiseg dataset). Optional: ``pixels_per_cm``,
``body_surface_cm2``.

Per patient and region with one photo at each visit, the photos are aligned and compared
(:func:`vitiseg.compare.pairs.compare_photos`); with several photos per visit each photo is
scored on its own and combined (:func:`vitiseg.vasi.total_vasi`). A region photographed at
only one visit is left out of both visits' totals, so F-VASI and T-VASI compare like with
like; the report says so.
"""

from __future__ import annotations

import csv
import html
import logging
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitiseg.compare.align import AlignSettings
from vitiseg.compare.change import Comparison
from vitiseg.compare.lighting import LightingChange, is_lighting_note
from vitiseg.compare.pairs import (
    COMPARISON_COLUMNS,
    AlignMethod,
    FollowupSegmenter,
    Segmenter,
    compare_photos,
    comparison_row,
    light_skin_note,
    segment_photo,
    write_pair_outputs,
)
from vitiseg.compare.retake import RetakeNoise, is_retake_note
from vitiseg.data.dataset_format import find_images
from vitiseg.io.atomic import write_json_atomic, write_text_atomic
from vitiseg.io.images import ImageReadError, read_rgb
from vitiseg.io.tables import csv_text
from vitiseg.quality import QualityConfig
from vitiseg.vasi import (
    RegionScore,
    Response,
    TotalScore,
    VasiConfig,
    combine_photos,
    response,
    score_region,
)
from vitiseg.vasi import total_vasi as sum_regions

logger = logging.getLogger(__name__)

PATIENT_COLUMNS = (
    "patient_id",
    "regions",
    "regions_not_compared",
    "baseline_f_vasi",
    "followup_f_vasi",
    "f_vasi_improvement",
    "f_vasi50",
    "f_vasi75",
    "f_vasi90",
    "f_vasi_retake_share",
    "baseline_t_vasi",
    "followup_t_vasi",
    "t_vasi_improvement",
    "t_vasi50",
    "t_vasi75",
    "t_vasi90",
    "notes",
)
VISIT_SCORE_COLUMNS = ("patient_id", "visit", "f_vasi", "t_vasi", "t_vasi_regions")


class ManifestError(ValueError):
    """The manifest cannot be used; the message names the file, rows and columns."""


@dataclass(frozen=True)
class ManifestPhoto:
    """One manifest row.

    Attributes:
        row: Line number in the CSV (header = 1).
        patient_id, visit, region: As written (stripped).
        image: Photo path.
        pixels_per_cm: Photo scale, if given.
        body_surface_cm2: Patient's body surface area in cm², if given.
    """

    row: int
    patient_id: str
    visit: str
    region: str
    image: Path
    pixels_per_cm: float | None = None
    body_surface_cm2: float | None = None


@dataclass(frozen=True)
class RegionOutcome:
    """One patient's region at both visits.

    Attributes:
        region: Region name.
        baseline_images, followup_images: Photo paths as given in the manifest.
        comparison: The aligned pair comparison (one photo per visit), else None.
        baseline_scores, followup_scores: Region scores that enter the totals (empty when
            the region cannot be compared).
        response: Region VASI change (combined photos when there are several).
        single_visit: The visit name when the region was photographed at one visit only.
        single_visit_scores: That visit's scores (kept out of the paired totals).
        files: Pair outputs, relative to the run folder.
        note: Why the region was scored the way it was (empty for a plain pair).
        lighting: The change of lighting between the pair's photos (one photo per visit).
    """

    region: str
    baseline_images: tuple[str, ...]
    followup_images: tuple[str, ...]
    comparison: Comparison | None = None
    baseline_scores: tuple[RegionScore, ...] = ()
    followup_scores: tuple[RegionScore, ...] = ()
    response: Response | None = None
    single_visit: str = ""
    single_visit_scores: tuple[RegionScore, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    note: str = ""
    lighting: LightingChange | None = None

    @property
    def compared(self) -> bool:
        return bool(self.baseline_scores and self.followup_scores)


@dataclass(frozen=True)
class PatientOutcome:
    """Per-patient F-VASI and T-VASI at both visits (regions present at both only)."""

    patient_id: str
    regions: tuple[RegionOutcome, ...]
    baseline_total: TotalScore | None
    followup_total: TotalScore | None
    f_vasi: Response | None
    t_vasi: Response | None
    # When only one visit has photos: that visit's total, so a cohort lists the patient
    # as missing a visit rather than dropping them.
    single_visit: tuple[str, TotalScore] | None = None
    notes: tuple[str, ...] = ()
    # The face pair's retake_share: F-VASI is that pair's VASI, so its change is the
    # pair's (None without one aligned face pair or a record of the model's noise).
    f_vasi_retake_share: float | None = None


@dataclass(frozen=True)
class ManifestComparison:
    """Every patient of a manifest compared between two visits, and the model's re-take
    noise the pairs were measured against (None when not known)."""

    baseline_visit: str
    followup_visit: str
    patients: tuple[PatientOutcome, ...]
    failures: tuple[str, ...] = ()
    retake_noise: RetakeNoise | None = None


def read_manifest(path: str | Path, images_dir: str | Path | None = None) -> list[ManifestPhoto]:
    """Read the manifest rows (see the module docstring for the columns).

    Raises:
        ManifestError: missing file or columns, or rows without patient, visit or region,
            or a number that does not parse (every problem is listed).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    with open(path, newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        columns = set(reader.fieldnames or [])
        missing = [name for name in ("patient_id", "visit", "region") if name not in columns]
        if "image" not in columns and "case_id" not in columns:
            missing.append("image (or case_id)")
        if missing:
            raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]
    folder = Path(images_dir) if images_dir else path.parent / "images"
    images = find_images(folder) if "case_id" in columns else {}
    photos, problems = [], []
    for line, row in enumerate(rows, start=2):
        empty = [name for name in ("patient_id", "visit", "region") if not row.get(name)]
        if row.get("image"):
            image = Path(row["image"]).expanduser()
            image = image if image.is_absolute() else path.parent / image
        elif row.get("case_id"):
            image = images.get(row["case_id"], folder / row["case_id"])
        else:
            empty.append("image/case_id")
        if empty:
            problems.append(f"row {line}: empty {', '.join(empty)}")
            continue
        try:
            numbers = {
                name: _optional_positive(row.get(name, ""), name)
                for name in ("pixels_per_cm", "body_surface_cm2")
            }
        except ValueError as error:
            problems.append(f"row {line}: {error}")
            continue
        photos.append(
            ManifestPhoto(
                row=line,
                patient_id=row["patient_id"],
                visit=row["visit"],
                region=row["region"],
                image=image,
                **numbers,
            )
        )
    if problems:
        raise ManifestError(f"{path}: " + "; ".join(problems))
    return photos


def compare_manifest(
    photos: Sequence[ManifestPhoto],
    segment: Segmenter,
    *,
    baseline_visit: str,
    followup_visit: str,
    out_dir: str | Path,
    align_method: AlignMethod = "features",
    align_settings: AlignSettings | None = None,
    tolerance_px: int = 0,
    config: VasiConfig | None = None,
    panels: bool = True,
    panel_max_side: int = 1024,
    quality: QualityConfig | None = None,
    match_lighting: bool = False,
    segment_aligned: bool = False,
    segment_followup: FollowupSegmenter | None = None,
    hold_levels_within: float | None = None,
    follow_baseline_patches: bool = False,
    retake_noise: RetakeNoise | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> ManifestComparison:
    """Compare every patient's regions between two visits; pair files go to
    ``out_dir/pairs/<patient>/<region>/``.

    A photo that cannot be read is reported in ``failures`` and its region is left out for
    that patient; the run goes on. ``quality`` sets the light-skin note of each compared
    pair (:func:`vitiseg.compare.pairs.compare_photos`); None for the default thresholds.
    ``match_lighting`` re-balances each aligned one-photo-per-visit follow-up to its
    baseline's normal skin before it is segmented, ``segment_aligned`` segments it
    warped into the baseline frame, ``segment_followup`` segments it there against its
    baseline, ``hold_levels_within`` keeps a patch's level where its share barely
    moved, ``follow_baseline_patches`` grades the follow-up along the baseline's
    patches, and ``retake_noise`` gives each compared pair its share of the model's
    no-change comparisons that moved as much (all as ``compare_photos``).
    ``provenance`` goes into each pair's ``comparison.json``.

    Raises:
        ManifestError: neither visit occurs in the manifest, or a region is unknown to the
            VASI config.
    """
    config = config or VasiConfig()
    visits = {photo.visit for photo in photos}
    for visit in (baseline_visit, followup_visit):
        if visit not in visits:
            raise ManifestError(f"visit {visit!r} not in the manifest; it has {sorted(visits)}")
    unknown = sorted({p.region for p in photos} - set(config.regions))
    if unknown:
        raise ManifestError(
            f"unknown region(s) {unknown}; the VASI config knows {list(config.regions)}"
        )
    out_dir = Path(out_dir)
    grouped: dict[str, dict[str, dict[str, list[ManifestPhoto]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for photo in photos:
        if photo.visit in (baseline_visit, followup_visit):
            grouped[photo.patient_id][photo.region][photo.visit].append(photo)

    failures: list[str] = []
    patients = []
    for patient_id in sorted(grouped):
        outcomes = []
        for region in [name for name in config.regions if name in grouped[patient_id]]:
            by_visit = grouped[patient_id][region]
            outcome = _compare_region(
                patient_id,
                region,
                by_visit.get(baseline_visit, []),
                by_visit.get(followup_visit, []),
                segment,
                out_dir,
                failures,
                align_method=align_method,
                align_settings=align_settings,
                tolerance_px=tolerance_px,
                config=config,
                panels=panels,
                panel_max_side=panel_max_side,
                quality=quality,
                match_lighting=match_lighting,
                segment_aligned=segment_aligned,
                segment_followup=segment_followup,
                hold_levels_within=hold_levels_within,
                follow_baseline_patches=follow_baseline_patches,
                retake_noise=retake_noise,
                provenance=provenance,
            )
            outcomes.append(outcome)
        patients.append(
            _patient_outcome(patient_id, outcomes, baseline_visit, followup_visit, config)
        )
        logger.info("patient %s: %d region(s)", patient_id, len(outcomes))
    return ManifestComparison(
        baseline_visit=baseline_visit,
        followup_visit=followup_visit,
        patients=tuple(patients),
        failures=tuple(failures),
        retake_noise=retake_noise,
    )


def _compare_region(
    patient_id: str,
    region: str,
    baseline: list[ManifestPhoto],
    followup: list[ManifestPhoto],
    segment: Segmenter,
    out_dir: Path,
    failures: list[str],
    **options: Any,
) -> RegionOutcome:
    names = {
        "baseline_images": tuple(str(p.image) for p in baseline),
        "followup_images": tuple(str(p.image) for p in followup),
    }
    config: VasiConfig = options["config"]
    quality: QualityConfig | None = options["quality"]
    light_skin_notes: list[str] = []

    def score_all(visit: str, photos: list[ManifestPhoto]) -> tuple[RegionScore, ...]:
        scores = []
        for photo in photos:
            score, note = _score_photo(photo, segment, config, quality, f"{visit} photo")
            scores.append(score)
            if note:
                light_skin_notes.append(note)
        return tuple(scores)

    try:
        if not baseline or not followup:
            present = baseline or followup
            missing = "baseline" if not baseline else "follow-up"
            scores = score_all("follow-up" if not baseline else "baseline", present)
            return RegionOutcome(
                region=region,
                **names,
                single_visit=present[0].visit,
                single_visit_scores=scores,
                note=" | ".join(
                    [f"no {missing} photo: left out of both visits' totals", *light_skin_notes]
                ),
            )
        if len(baseline) == 1 and len(followup) == 1:
            return _compare_pair(
                patient_id, region, baseline[0], followup[0], segment, out_dir, names, **options
            )
        baseline_scores = score_all("baseline", baseline)
        followup_scores = score_all("follow-up", followup)
    except ImageReadError as error:
        failures.append(f"{patient_id}/{region}: {error}")
        logger.warning("%s/%s: %s", patient_id, region, error)
        return RegionOutcome(
            region=region, **names, note=f"unreadable photo, left out of both visits: {error}"
        )
    combined = response(
        combine_photos(baseline_scores, config), combine_photos(followup_scores, config), config
    )
    return RegionOutcome(
        region=region,
        **names,
        baseline_scores=baseline_scores,
        followup_scores=followup_scores,
        response=combined,
        note=" | ".join(
            [
                "several photos at a visit: each scored on its own and combined; no change map",
                *light_skin_notes,
            ]
        ),
    )


def _compare_pair(
    patient_id: str,
    region: str,
    baseline: ManifestPhoto,
    followup: ManifestPhoto,
    segment: Segmenter,
    out_dir: Path,
    names: dict[str, tuple[str, ...]],
    *,
    panels: bool,
    panel_max_side: int,
    provenance: Mapping[str, Any] | None,
    **pair_options: Any,
) -> RegionOutcome:
    """One photo per visit: compared as two photos are; ``pair_options`` (alignment,
    VASI config, quality, lighting and holding options) go to ``compare_photos``."""
    baseline_rgb, followup_rgb = read_rgb(baseline.image), read_rgb(followup.image)
    result = compare_photos(
        baseline_rgb,
        followup_rgb,
        segment,
        region,
        pixels_per_cm=baseline.pixels_per_cm,
        followup_pixels_per_cm=followup.pixels_per_cm,
        body_surface_cm2=baseline.body_surface_cm2 or followup.body_surface_cm2,
        **pair_options,
    )
    pair_dir = Path("pairs") / _safe_name(patient_id) / _safe_name(region)
    files = write_pair_outputs(
        out_dir / pair_dir,
        result,
        baseline_rgb,
        followup_rgb,
        identifiers={
            "patient_id": patient_id,
            "baseline_image": str(baseline.image),
            "followup_image": str(followup.image),
        },
        panels=panels,
        panel_max_side=panel_max_side,
        provenance=provenance,
    )
    comparison = result.comparison
    files = {kind: (pair_dir / name).as_posix() for kind, name in files.items()}
    return RegionOutcome(
        region=region,
        **names,
        comparison=comparison,
        baseline_scores=(comparison.baseline,),
        followup_scores=(comparison.followup,),
        response=comparison.response,
        files=files,
        note=" | ".join(comparison.notes),
        lighting=result.lighting,
    )


def _score_photo(
    photo: ManifestPhoto,
    segment: Segmenter,
    config: VasiConfig,
    quality: QualityConfig | None,
    label: str,
) -> tuple[RegionScore, str | None]:
    """The photo's region score, and its light-skin note (named by ``label`` and file)."""
    rgb = read_rgb(photo.image)
    skin, lesion, depigmented = segment_photo(segment, rgb)
    score = score_region(
        skin,
        lesion,
        photo.region,
        pixels_per_cm=photo.pixels_per_cm,
        body_surface_cm2=photo.body_surface_cm2,
        config=config,
        depigmented=depigmented,
    )
    return score, light_skin_note(f"{label} {Path(photo.image).name}", rgb, skin, lesion, quality)


def _patient_outcome(
    patient_id: str,
    outcomes: list[RegionOutcome],
    baseline_visit: str,
    followup_visit: str,
    config: VasiConfig,
) -> PatientOutcome:
    compared = [outcome for outcome in outcomes if outcome.compared]
    notes = [f"{o.region}: {o.note}" for o in outcomes if not o.compared and o.note]
    if not compared:
        single = None
        only = [o for o in outcomes if o.single_visit_scores]
        visits = {o.single_visit for o in only}
        if len(visits) == 1:  # photos at one visit only: its total, for the cohort table
            scores = [s for o in only for s in o.single_visit_scores]
            single = (visits.pop(), sum_regions(scores, config))
        return PatientOutcome(
            patient_id=patient_id,
            regions=tuple(outcomes),
            baseline_total=None,
            followup_total=None,
            f_vasi=None,
            t_vasi=None,
            single_visit=single,
            notes=(*notes, "no region comparable between the visits"),
        )
    baseline = sum_regions([s for o in compared for s in o.baseline_scores], config)
    followup = sum_regions([s for o in compared for s in o.followup_scores], config)
    face = None
    if baseline.f_vasi is not None and followup.f_vasi is not None:
        face = response(baseline.f_vasi, followup.f_vasi, config)
    face_pairs = [
        o.comparison for o in compared if o.region == config.face_region and o.comparison
    ]
    return PatientOutcome(
        patient_id=patient_id,
        regions=tuple(outcomes),
        baseline_total=baseline,
        followup_total=followup,
        f_vasi=face,
        t_vasi=response(baseline.t_vasi, followup.t_vasi, config),
        notes=tuple(notes),
        f_vasi_retake_share=face_pairs[0].retake_share if face_pairs else None,
    )


def patient_row(patient: PatientOutcome) -> dict[str, Any]:
    """One row of ``patients.csv``."""
    row: dict[str, Any] = {
        "patient_id": patient.patient_id,
        "regions": ";".join(o.region for o in patient.regions if o.compared),
        "regions_not_compared": ";".join(o.region for o in patient.regions if not o.compared),
        "f_vasi_retake_share": patient.f_vasi_retake_share,
        "notes": " | ".join(patient.notes),
    }
    for name, result in (("f_vasi", patient.f_vasi), ("t_vasi", patient.t_vasi)):
        row[f"baseline_{name}"] = None if result is None else result.baseline
        row[f"followup_{name}"] = None if result is None else result.followup
        row[f"{name}_improvement"] = None if result is None else result.improvement
        for level in (50, 75, 90):
            row[f"{name}{level}"] = None if result is None else getattr(result, f"vasi{level}")
    return row


def visit_score_rows(result: ManifestComparison) -> list[dict[str, Any]]:
    """Long table ``patient_id, visit, f_vasi, t_vasi`` ready for ``vitiseg-cohort``."""
    rows = []
    for patient in result.patients:
        totals = []
        if patient.baseline_total is not None and patient.followup_total is not None:
            totals = [
                (result.baseline_visit, patient.baseline_total),
                (result.followup_visit, patient.followup_total),
            ]
        elif patient.single_visit is not None:
            totals = [patient.single_visit]
        else:  # nothing comparable: listed with blank scores, so a cohort names them
            visits = [
                visit
                for visit, key in (
                    (result.baseline_visit, "baseline_images"),
                    (result.followup_visit, "followup_images"),
                )
                if any(getattr(o, key) for o in patient.regions)
            ]
            for visit in visits:
                rows.append(
                    {
                        "patient_id": patient.patient_id,
                        "visit": visit,
                        "f_vasi": None,
                        "t_vasi": None,
                        "t_vasi_regions": "",
                    }
                )
        for visit, total in totals:
            rows.append(
                {
                    "patient_id": patient.patient_id,
                    "visit": visit,
                    "f_vasi": total.f_vasi,
                    "t_vasi": total.t_vasi,
                    "t_vasi_regions": ";".join(
                        c.region for c in total.contributions if c.in_t_vasi
                    ),
                }
            )
    return rows


def write_manifest_outputs(
    out_dir: str | Path,
    result: ManifestComparison,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Write ``comparison.csv`` (patient x region), ``patients.csv``, ``visit_scores.csv``,
    ``comparison.json`` and ``report.html`` into ``out_dir``; returns them by kind.
    ``provenance`` (disclaimer, model, settings) goes into the JSON and the report."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    region_rows = []
    for patient in result.patients:
        for outcome in patient.regions:
            region_rows.append(_region_row(patient.patient_id, outcome))
    write_text_atomic(
        out_dir / "comparison.csv", csv_text(region_rows, ("patient_id", *COMPARISON_COLUMNS))
    )
    write_text_atomic(
        out_dir / "patients.csv",
        csv_text([patient_row(p) for p in result.patients], PATIENT_COLUMNS),
    )
    write_text_atomic(
        out_dir / "visit_scores.csv", csv_text(visit_score_rows(result), VISIT_SCORE_COLUMNS)
    )
    summary = _manifest_json(result)
    if provenance:
        summary["provenance"] = dict(provenance)
    write_json_atomic(out_dir / "comparison.json", summary)
    write_text_atomic(out_dir / "report.html", manifest_report_html(result, provenance))
    return {
        "comparison_csv": "comparison.csv",
        "patients_csv": "patients.csv",
        "visit_scores_csv": "visit_scores.csv",
        "json": "comparison.json",
        "report": "report.html",
    }


def _region_row(patient_id: str, outcome: RegionOutcome) -> dict[str, Any]:
    images = {
        "baseline_image": ";".join(outcome.baseline_images),
        "followup_image": ";".join(outcome.followup_images),
    }
    if outcome.comparison is not None:
        return comparison_row(
            outcome.comparison, outcome.lighting, patient_id=patient_id, **images
        )
    row: dict[str, Any] = {
        "patient_id": patient_id,
        "region": outcome.region,
        **images,
        "notes": outcome.note,
    }
    change = outcome.response
    if change is not None:
        row.update(
            baseline_vasi=change.baseline,
            followup_vasi=change.followup,
            change=change.change,
            improvement=change.improvement,
            vasi50=change.vasi50,
            vasi75=change.vasi75,
            vasi90=change.vasi90,
            below_detectable_change=change.below_detectable_change,
            scored_within="each_photo",
        )
    return row


def _manifest_json(result: ManifestComparison) -> dict[str, Any]:
    patients = []
    for patient in result.patients:
        patients.append(
            {
                **patient_row(patient),
                "regions_detail": [
                    {
                        "region": o.region,
                        "baseline_images": list(o.baseline_images),
                        "followup_images": list(o.followup_images),
                        "comparison": None if o.comparison is None else o.comparison.to_dict(),
                        "files": o.files,
                        "note": o.note,
                    }
                    for o in patient.regions
                ],
                "baseline_total": None
                if patient.baseline_total is None
                else patient.baseline_total.to_dict(),
                "followup_total": None
                if patient.followup_total is None
                else patient.followup_total.to_dict(),
            }
        )
    return {
        "baseline_visit": result.baseline_visit,
        "followup_visit": result.followup_visit,
        "patients": patients,
        "failures": list(result.failures),
    }


def lighting_summary(result: ManifestComparison) -> str | None:
    """One sentence on how many compared pairs carry a lighting note and how many
    follow-ups were re-balanced; None when no pair was compared."""
    compared = [
        outcome
        for patient in result.patients
        for outcome in patient.regions
        if outcome.comparison is not None
    ]
    if not compared:
        return None
    noted = sum(any(map(is_lighting_note, o.comparison.notes)) for o in compared)
    rebalanced = sum(o.lighting is not None and o.lighting.rebalanced for o in compared)
    return (
        f"Lighting: {noted} of {len(compared)} compared photo pairs carry a lighting note "
        f"(the light or camera settings changed between the visits, or re-balancing could not "
        f"undo it fully); {rebalanced} follow-up photo(s) were re-balanced to their baseline's "
        "normal skin before segmenting (match_lighting). Read those pairs' notes before their "
        "responses."
    )


def retake_summary(result: ManifestComparison) -> str | None:
    """One sentence on how many compared pairs changed within the model's re-take noise;
    None when no compared pair has a known re-take noise (``retake_share``)."""
    known = [
        outcome.comparison
        for patient in result.patients
        for outcome in patient.regions
        if outcome.comparison is not None and outcome.comparison.retake_share is not None
    ]
    if not known:
        return None
    noted = sum(any(map(is_retake_note, comparison.notes)) for comparison in known)
    summary = (
        f"Re-take noise: {noted} of {len(known)} aligned photo pairs changed by no more than "
        "the model's own comparisons of unchanged photos often do (see each pair's note); "
        "their responses are not evidence of a change."
    )
    noise = result.retake_noise
    if noise is not None:
        summary += (
            f" On unchanged photos the model read {noise.responder_share():.0%} of "
            f"{len(noise.improvements)} pairs as VASI50 responders ({noise.description})."
        )
    return summary


def manifest_report_html(
    result: ManifestComparison, provenance: Mapping[str, Any] | None = None
) -> str:
    """A self-contained HTML page (every value escaped) linking the pair panels; with
    ``provenance``, its disclaimer and the model that made the masks."""
    esc = html.escape
    made_by = ""
    if provenance:
        made_by = (
            f"<p><strong>{esc(str(provenance.get('disclaimer', '')))}</strong></p>"
            f"<p>Model {esc(str(provenance.get('model_id', '?')))} "
            f"({esc(str(provenance.get('model_folder', '?')))}), vitiseg "
            f"{esc(str(provenance.get('vitiseg_version', '?')))}; the settings are in "
            "comparison.json (<code>provenance</code>).</p>"
        )
        if accuracy := provenance.get("measured_accuracy"):
            made_by += (
                "<p>How accurate the model was measured to be:</p><ul>"
                + "".join(f"<li>{esc(str(sentence))}</li>" for sentence in accuracy)
                + "</ul>"
            )
    patient_rows = []
    for patient in result.patients:
        row = patient_row(patient)
        cells = [esc(str(row["patient_id"]))]
        for name in ("f_vasi", "t_vasi"):
            cells += [
                _fmt(row[f"baseline_{name}"]),
                _fmt(row[f"followup_{name}"]),
                _fmt_percent(row[f"{name}_improvement"]),
            ]
        cells += [_fmt(row["f_vasi75"]), _fmt(row["t_vasi50"]), esc(row["notes"])]
        patient_rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    pair_blocks = []
    for patient in result.patients:
        for outcome in patient.regions:
            comparison = outcome.comparison
            title = f"{patient.patient_id} / {outcome.region}"
            if comparison is None:
                pair_blocks.append(f"<h3>{esc(title)}</h3><p>{esc(outcome.note)}</p>")
                continue
            status = (
                "aligned"
                if comparison.alignment.reliable
                else f"NOT aligned: {comparison.alignment.reason}"
            )
            picture = outcome.files.get("side_by_side")
            image = (
                f'<a href="{esc(picture)}"><img src="{esc(picture)}" alt="{esc(title)}"></a>'
                if picture
                else ""
            )
            improvement = _fmt_percent(comparison.response.improvement)
            notes = "".join(f"<li>{esc(note)}</li>" for note in comparison.notes)
            pair_blocks.append(
                f"<h3>{esc(title)}</h3><p>VASI {comparison.baseline.vasi:.2f} &rarr; "
                f"{comparison.followup.vasi:.2f} ({esc(improvement)} improvement); "
                f"alignment: {esc(status)}</p>" + (f"<ul>{notes}</ul>" if notes else "") + image
            )
    failures = "".join(f"<li>{esc(item)}</li>" for item in result.failures)
    header = (
        "<tr><th>patient</th><th>F-VASI baseline</th><th>F-VASI follow-up</th>"
        "<th>F-VASI improvement</th><th>T-VASI baseline</th><th>T-VASI follow-up</th>"
        "<th>T-VASI improvement</th><th>F-VASI75</th><th>T-VASI50</th><th>notes</th></tr>"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>vitiseg comparison</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "img{max-width:100%;border:1px solid #ccc}</style></head><body>"
        f"<h1>Comparison {esc(result.baseline_visit)} &rarr; {esc(result.followup_visit)}</h1>"
        "<p>Approximate VASI from automatic segmentation; F-VASI and T-VASI sum the regions "
        "photographed at both visits. Improvement = (baseline &minus; follow-up) / baseline."
        "</p>"
        + made_by
        + f"<table>{header}{''.join(patient_rows)}</table>"
        + (f"<p>{esc(lighting)}</p>" if (lighting := lighting_summary(result)) else "")
        + (f"<p>{esc(retake)}</p>" if (retake := retake_summary(result)) else "")
        + (f"<h2>Failures</h2><ul>{failures}</ul>" if failures else "")
        + "<h2>Photo pairs</h2>"
        + "".join(pair_blocks)
        + "</body></html>\n"
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return html.escape(str(value))


def _fmt_percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _optional_positive(text: str, name: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {text}")
    return value


def _safe_name(text: str) -> str:
    """A folder name without path separators or characters Windows refuses."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned or "unnamed"
