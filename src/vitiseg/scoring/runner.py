"""Score photos one by one, writing each result atomically, resuming where a run stopped.

Per photo: read (EXIF, any bit depth, bombs refused) -> tiled prediction -> masks ->
quality flags -> region VASI -> masks, overlay and thumbnails -> record. The record is
written last, so after ``kill -9`` a photo either has a complete record or is scored again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vitiseg.inference.predictor import Predictor, backend_name
from vitiseg.io.atomic import write_bytes_atomic, write_png_atomic
from vitiseg.io.images import DEFAULT_MAX_PIXELS, ImageReadError, read_rgb
from vitiseg.quality import QualityConfig, assess_quality
from vitiseg.report.overlay import draw_overlay, encode_jpeg, shrink_long_side
from vitiseg.scoring.inputs import PhotoInput
from vitiseg.scoring.records import (
    ERROR_INPUT,
    ERROR_PROCESSING,
    STATUS_ERROR,
    STATUS_OK,
    PhotoRecord,
    load_record,
    record_path,
    write_record,
)
from vitiseg.vasi import VasiConfig, score_region

log = logging.getLogger(__name__)

LOCK_NAME = ".vitiseg-score.lock"


class OutputBusyError(RuntimeError):
    """Another run holds the output folder's lock."""


@dataclass(frozen=True)
class ScoreSettings:
    """What a scoring run does besides the model's own settings.

    Attributes:
        vasi: VASI settings (region table, levels, patch sizes).
        quality: Quality flag thresholds.
        default_region: Region used for photos without one (e.g. a folder of hands);
            None leaves hand units and VASI empty for them.
        write_masks: Write lossless skin/lesion masks at the photo's full size.
        write_overlays: Write full overlays (thumbnails for the report are always made).
        overlay_long_side: Long side of the overlay JPEG in px (0 = the photo's size).
        thumbnail_long_side: Long side of the report's thumbnails in px.
        max_pixels: Photos whose header claims more pixels are refused unread.
    """

    vasi: VasiConfig = field(default_factory=VasiConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    default_region: str | None = None
    write_masks: bool = True
    write_overlays: bool = True
    overlay_long_side: int = 2000
    thumbnail_long_side: int = 240
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class BatchResult:
    """Records of a batch in input order, and what the run did.

    Attributes:
        records: One per input photo, in input order.
        n_reused: Photos finished by an earlier run and skipped.
        n_scored: Photos scored (or failed) in this run.
        settings_id: Hash of the settings the records were made with.
        peak_rss_mb: Peak resident memory of the process in MiB (None where unknown).
    """

    records: tuple[PhotoRecord, ...]
    n_reused: int
    n_scored: int
    settings_id: str
    peak_rss_mb: float | None

    @property
    def n_failed(self) -> int:
        return sum(not record.ok for record in self.records)


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process in MiB (None where unsupported)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def settings_fingerprint(predictor: Predictor, settings: ScoreSettings) -> str:
    """Hash of everything that changes a photo's result (not device or batch size)."""
    pre = predictor.metadata.preprocessing
    payload = {
        "model_id": predictor.metadata.model_id,
        # bf16 and int8 give slightly different masks: a resumed run must not mix them.
        "backend": backend_name(predictor.backend),
        "thresholds": predictor.metadata.thresholds,
        "lesion_postprocess": predictor.metadata.lesion_postprocess,
        "mean": list(pre.mean),
        "std": list(pre.std),
        "long_side": predictor.long_side,
        "tile": predictor.tile,
        "overlap": predictor.overlap,
        "tta": predictor.tta,
        "scales": list(predictor.scales),
        "depigmented_source": predictor.depigmented_source,
        "colour_min_lift": predictor.colour_min_lift,
        "vasi": settings.vasi.to_dict(),
        "quality": settings.quality.to_dict(),
        "default_region": settings.default_region,
        "write_masks": settings.write_masks,
        "write_overlays": settings.write_overlays,
        "overlay_long_side": settings.overlay_long_side,
        "thumbnail_long_side": settings.thumbnail_long_side,
        "max_pixels": settings.max_pixels,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Refuse a second run writing into the same folder at the same time.

    The lock is an ``flock`` on a file, which the kernel releases when the process dies,
    even by ``kill -9``, so a killed run never blocks its own resumption.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; run one job per folder
        yield
        return
    with open(out_dir / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise OutputBusyError(
                f"{out_dir}: another vitiseg-score run is writing here; wait for it or use "
                "another output folder"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def remove_partial_files(out_dir: Path) -> int:
    """Delete ``.part`` files left by a killed run (only call while holding the lock)."""
    removed = 0
    for folder in ("records", "masks", "overlays", "thumbnails"):
        for path in (out_dir / folder).glob(".*.part"):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _base_record(photo: PhotoInput, region: str, settings_id: str, model_id: str) -> dict:
    return {
        "key": photo.key,
        "image": photo.image,
        "source": "" if photo.path is None else str(photo.path),
        "patient_id": photo.patient_id,
        "visit": photo.visit,
        "region": region,
        "case_id": photo.case_id,
        "pixels_per_cm": photo.pixels_per_cm,
        "body_surface_cm2": photo.body_surface_cm2,
        "model_id": model_id,
        "settings_id": settings_id,
    }


def _file_signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def score_photo(
    photo: PhotoInput,
    predictor: Predictor,
    out_dir: Path,
    settings: ScoreSettings,
    settings_id: str,
) -> PhotoRecord:
    """Score one photo and write its masks, overlay and thumbnails (not its record).

    Never raises for a bad photo: problems become an error record naming the file.
    """
    start = time.perf_counter()
    region = photo.region or settings.default_region or ""
    base = _base_record(photo, region, settings_id, predictor.metadata.model_id)

    def failed(message: str, kind: str, signature: tuple[int, int] | None = None) -> PhotoRecord:
        size, mtime = signature or (None, None)
        if photo.path is not None:
            # Name the file as the user gave it: reports get shared, and folder names can
            # identify people. The absolute path stays in the record's ``source``.
            message = message.replace(str(photo.path), photo.image)
        return PhotoRecord(
            **base,
            status=STATUS_ERROR,
            error=message,
            error_kind=kind,
            input_size=size,
            input_mtime_ns=mtime,
            seconds=time.perf_counter() - start,
        )

    if photo.problem or photo.path is None:
        return failed(photo.problem or f"{photo.image}: file not found", ERROR_INPUT)
    if region:
        try:
            settings.vasi.hand_units(region)
        except KeyError as exc:
            return failed(f"{photo.image}: {exc.args[0]}", ERROR_INPUT)
    try:
        signature = _file_signature(photo.path)
    except OSError as exc:
        return failed(f"{photo.image}: cannot read ({exc.strerror or exc})", ERROR_INPUT)
    try:
        rgb = read_rgb(photo.path, max_pixels=settings.max_pixels)
    except ImageReadError as exc:
        return failed(str(exc), ERROR_INPUT, signature)
    try:
        fields = _score_pixels(rgb, photo, region, predictor, out_dir, settings)
    except Exception as exc:  # one photo must never stop the batch
        log.exception("%s: scoring failed", photo.path)
        message = f"{photo.image}: scoring failed ({exc.__class__.__name__}: {exc})"
        return failed(message, ERROR_PROCESSING, signature)
    return PhotoRecord(
        **base,
        status=STATUS_OK,
        input_size=signature[0],
        input_mtime_ns=signature[1],
        seconds=time.perf_counter() - start,
        **fields,
    )


def _score_pixels(
    rgb: np.ndarray,
    photo: PhotoInput,
    region: str,
    predictor: Predictor,
    out_dir: Path,
    settings: ScoreSettings,
) -> dict:
    height, width = rgb.shape[:2]
    prediction = predictor.predict(rgb)
    skin, lesion = predictor.masks(prediction, rgb)
    depigmented = predictor.depigmented_mask(prediction, lesion, rgb, skin)
    quality = assess_quality(
        rgb,
        skin,
        prediction.lesion,
        prediction.uncertainty,
        settings.quality,
        lesion=lesion,
        skin_probability=prediction.skin,
        depigmented=depigmented,
    )
    files: dict[str, str] = {}
    if settings.write_masks and prediction.uncertainty is not None:
        # Spread of a probability is at most 0.5, so x510 fills the 8-bit range.
        spread = np.clip(prediction.uncertainty * 510.0, 0, 255).astype(np.uint8)
        files["uncertainty"] = f"masks/{photo.key}_uncertainty.png"
        write_png_atomic(out_dir / files["uncertainty"], spread)
        del spread
    del prediction  # the probability maps are the largest arrays; free them early

    # Patches and the affected fraction do not depend on the region; hand units and VASI
    # do, so without a region the first table entry stands in and those stay empty.
    scored_region = region or next(iter(settings.vasi.regions))
    score = score_region(
        skin,
        lesion,
        scored_region,
        pixels_per_cm=photo.pixels_per_cm,
        body_surface_cm2=photo.body_surface_cm2,
        config=settings.vasi,
        depigmented=depigmented,
    )
    if settings.write_masks:
        masks = {"skin": skin, "lesion": lesion}
        if depigmented is not None:
            masks["depigmented"] = depigmented
        for kind, mask in masks.items():
            files[f"mask_{kind}"] = f"masks/{photo.key}_{kind}.png"
            write_png_atomic(out_dir / files[f"mask_{kind}"], mask.view(np.uint8) * np.uint8(255))
    if settings.write_overlays:
        files["overlay"] = f"overlays/{photo.key}.jpg"
        overlay = draw_overlay(
            rgb, skin, lesion, long_side=settings.overlay_long_side, depigmented=depigmented
        )
        write_bytes_atomic(out_dir / files["overlay"], encode_jpeg(overlay, 88))
        del overlay
    thumb = settings.thumbnail_long_side
    files["photo_thumbnail"] = f"thumbnails/{photo.key}_photo.jpg"
    files["overlay_thumbnail"] = f"thumbnails/{photo.key}_overlay.jpg"
    write_bytes_atomic(
        out_dir / files["photo_thumbnail"], encode_jpeg(shrink_long_side(rgb, thumb), 80)
    )
    write_bytes_atomic(
        out_dir / files["overlay_thumbnail"],
        encode_jpeg(
            draw_overlay(
                rgb, skin, lesion, long_side=thumb, legend=False, depigmented=depigmented
            ),
            80,
        ),
    )
    return {
        "width": width,
        "height": height,
        "skin_px": score.skin_px,
        "lesion_px": score.lesion_px,
        "affected_fraction": score.affected_fraction,
        "lesion_fraction": score.lesion_fraction,
        "n_patches": len(score.patches),
        "patch_levels": tuple(patch.level for patch in score.patches),
        "hand_units_region": score.hand_units_region if region else None,
        "hand_units_affected": score.hand_units_affected if region else None,
        "vasi": score.vasi if region else None,
        "vasi_mode": score.mode if region else "",
        "mean_uncertainty": quality.mean_uncertainty,
        "ambiguous_share": quality.ambiguous_share,
        "ambiguous_skin_share": quality.ambiguous_skin_share,
        "depigmented_share": quality.depigmented_share,
        "quality_flags": quality.flags,
        "quality": quality.to_dict(),
        "region_score": score.to_dict() if region else None,
        "files": files,
    }


def is_reusable(record: PhotoRecord, photo: PhotoInput, settings_id: str, out_dir: Path) -> bool:
    """Whether an earlier record still stands for this photo and these settings.

    Finished photos are kept when their input file (size and modification time), their
    manifest values and every result-changing setting are unchanged and their files exist.
    Processing errors and manifest problems are always tried again (they are cheap or may
    have been transient).
    """
    if record.settings_id != settings_id or photo.path is None or photo.problem:
        return False
    if record.source != str(photo.path) or record.image != photo.image:
        return False
    manifest_values = (
        photo.patient_id,
        photo.visit,
        photo.case_id,
        photo.pixels_per_cm,
        photo.body_surface_cm2,
    )
    if manifest_values != (
        record.patient_id,
        record.visit,
        record.case_id,
        record.pixels_per_cm,
        record.body_surface_cm2,
    ):
        return False
    if photo.region and photo.region != record.region:
        return False
    if not record.ok and record.error_kind != ERROR_INPUT:
        return False
    try:
        if _file_signature(photo.path) != (record.input_size, record.input_mtime_ns):
            return False
    except OSError:
        return False
    return all((out_dir / relative).is_file() for relative in record.files.values())


def score_batch(
    photos: Sequence[PhotoInput],
    predictor: Predictor,
    out_dir: Path,
    settings: ScoreSettings,
    *,
    progress: bool = True,
) -> BatchResult:
    """Score every photo not already finished in ``out_dir``; one record per photo.

    Args:
        photos: The photos of this run (or shard), in output order.
        predictor: The model with its inference settings.
        out_dir: Run folder: ``records/``, ``masks/``, ``overlays/``, ``thumbnails/``.
        settings: Scoring settings.
        progress: Show a progress bar with count and ETA on stderr.

    Returns:
        The records in input order and what was reused.
    """
    out_dir = Path(out_dir)
    settings_id = settings_fingerprint(predictor, settings)
    records: dict[str, PhotoRecord] = {}
    todo: list[PhotoInput] = []
    for photo in photos:
        existing = load_record(record_path(out_dir, photo.key))
        if existing is not None and is_reusable(existing, photo, settings_id, out_dir):
            records[photo.key] = existing
        else:
            todo.append(photo)
    if records:
        log.info(
            "%d of %d photos already finished in %s; skipped", len(records), len(photos), out_dir
        )
    n_failed = 0
    with tqdm(
        total=len(photos),
        initial=len(records),
        unit="photo",
        desc="scoring",
        disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        for photo in todo:
            record = score_photo(photo, predictor, out_dir, settings, settings_id)
            write_record(out_dir, record)
            records[photo.key] = record
            if not record.ok:
                n_failed += 1
                log.warning("%s", record.error)
            bar.update(1)
            bar.set_postfix(failed=n_failed, refresh=False)
    return BatchResult(
        records=tuple(records[photo.key] for photo in photos),
        n_reused=len(photos) - len(todo),
        n_scored=len(todo),
        settings_id=settings_id,
        peak_rss_mb=peak_rss_mb(),
    )


def lock_and_clean(out_dir: Path) -> contextlib.AbstractContextManager[None]:
    """:func:`output_lock` that also removes ``.part`` files of a killed run."""

    @contextlib.contextmanager
    def _locked() -> Iterator[None]:
        with output_lock(out_dir):
            removed = remove_partial_files(out_dir)
            if removed:
                log.info("removed %d partial file(s) left by an interrupted run", removed)
            yield

    return _locked()


def environment_summary() -> dict[str, str]:
    """Versions worth keeping beside the scores (for reproducing a run)."""
    from importlib.metadata import version  # reads the version without importing torch

    from vitiseg import __version__

    return {
        "vitiseg": __version__,
        "torch": version("torch"),
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }
