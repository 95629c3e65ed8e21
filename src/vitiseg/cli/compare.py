"""vitiseg-compare: baseline vs follow-up for two photos or a whole manifest.

Two photos:  ``vitiseg-compare baseline=IMG followup=IMG output=DIR [region=face]
[checkpoint=MODEL]``; a manifest: ``vitiseg-compare manifest=CSV output=DIR
baseline_visit=V0 followup_visit=V1``. Options in ``configs/compare.yaml``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vitiseg import __version__
from vitiseg.cli._hydra import output_dir, run_hydra
from vitiseg.cli._quality import quality_for_model
from vitiseg.compare import AlignSettings, compare_photos, write_pair_outputs
from vitiseg.compare.manifest import (
    ManifestError,
    compare_manifest,
    lighting_summary,
    read_manifest,
    retake_summary,
    write_manifest_outputs,
)
from vitiseg.compare.pairs import FollowupSegmenter, Segmenter
from vitiseg.compare.retake import COMPARED_SETTINGS, RetakeNoise, retake_noise_of
from vitiseg.io.images import ImageReadError, read_rgb
from vitiseg.paths import default_model_dir
from vitiseg.report import DISCLAIMER
from vitiseg.report.accuracy import measured_accuracy
from vitiseg.vasi import load_vasi_config

log = logging.getLogger(__name__)


class UsageError(ValueError):
    """The command line does not describe one of the two modes."""


def model_folder(checkpoint: str | None) -> Path:
    """The model folder a comparison uses: the one named, else the shipped model."""
    return Path(checkpoint).expanduser() if checkpoint else default_model_dir()


def load_segmenter(
    checkpoint: str | None,
    device: str,
    tta: bool,
    scales: tuple[float, ...] = (1.0,),
    depigmented_source: str = "model",
    hold_unchanged_within: float | None = None,
) -> tuple[Segmenter, FollowupSegmenter | None]:
    """Photo -> (skin, lesion, depigmented or None) masks with the given or the shipped
    model folder; ``depigmented_source`` as ``infer.depigmented_source`` in scoring. The
    second segmenter, given ``hold_unchanged_within``, segments a follow-up in the baseline
    frame against its baseline (:class:`~vitiseg.inference.paired.HoldingSegmenter`)."""
    folder = model_folder(checkpoint)
    if not (folder / "metadata.json").is_file():
        hint = (
            "pass checkpoint=MODEL_FOLDER"
            if checkpoint
            else "no model has shipped yet; pass checkpoint=MODEL_FOLDER (a vitiseg-train output)"
        )
        raise FileNotFoundError(f"no vitiseg model folder at {folder}: {hint}")
    from vitiseg.inference.predictor import Predictor  # torch only once a model is found

    predictor = Predictor.from_folder(
        folder, device=device, tta=tta, scales=scales, depigmented_source=depigmented_source
    )
    log.info("model %s from %s", predictor.metadata.model_id, folder)
    if hold_unchanged_within is None:
        return predictor.segment, None
    from vitiseg.inference.paired import HoldingSegmenter

    holding = HoldingSegmenter(predictor, float(hold_unchanged_within))
    return holding.segment, holding


def _segmenter_metadata(segment: Segmenter):
    """The model metadata behind a segmenter (a predictor's bound method), or None."""
    return getattr(getattr(segment, "__self__", None), "metadata", None)


def model_retake_noise(cfg: DictConfig, segment: Segmenter) -> RetakeNoise | None:
    """The model's re-take noise when it was measured with this command's settings; None
    (and a log line saying why) otherwise."""
    metadata = _segmenter_metadata(segment)
    noise = retake_noise_of(getattr(metadata, "evaluation", None) or {})
    if noise is None:
        log.info("the model has no record of its re-take noise: comparisons carry no retake_share")
        return None
    settings = OmegaConf.to_container(cfg, resolve=True)
    differing = noise.settings_differing({name: settings.get(name) for name in COMPARED_SETTINGS})
    if differing:
        log.info(
            "the model's re-take noise was measured with other %s: comparisons carry no "
            "retake_share",
            ", ".join(differing),
        )
        return None
    return noise


def comparison_provenance(cfg: DictConfig, segment: Segmenter) -> dict:
    """What made a comparison: the research-use disclaimer, the model (id, folder, how
    accurate it was measured to be), the package version and the whole resolved command
    configuration (the quality thresholds the comparison used are added beside it)."""
    metadata = _segmenter_metadata(segment)
    return {
        "disclaimer": DISCLAIMER,
        "model_id": getattr(metadata, "model_id", None),
        "model_folder": str(model_folder(cfg.checkpoint)),
        "measured_accuracy": measured_accuracy(getattr(metadata, "evaluation", None)),
        "vitiseg_version": __version__,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def align_settings(cfg: DictConfig) -> AlignSettings:
    values = OmegaConf.to_container(cfg.align, resolve=True)
    values.pop("method", None)
    return AlignSettings(**values)


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def task(cfg: DictConfig) -> int:
    try:
        return _run(cfg)
    except (UsageError, FileNotFoundError) as error:
        log.error("%s", error)
        return 2


def _run(cfg: DictConfig) -> int:
    photos = cfg.baseline is not None or cfg.followup is not None
    if bool(cfg.manifest) == photos:
        raise UsageError(
            "give either baseline=IMG followup=IMG, or manifest=CSV baseline_visit=V0 "
            "followup_visit=V1"
        )
    if photos and (cfg.baseline is None or cfg.followup is None):
        raise UsageError("two-photo mode needs both baseline=IMG and followup=IMG")
    if not photos and (cfg.baseline_visit is None or cfg.followup_visit is None):
        raise UsageError("manifest mode needs baseline_visit=V0 and followup_visit=V1")
    scales = tuple(cfg.get("scales") or (1.0,))
    try:
        segment, segment_followup = load_segmenter(
            cfg.checkpoint,
            str(cfg.device),
            bool(cfg.tta),
            scales,
            str(cfg.depigmented_source),
            _optional_float(cfg.get("hold_unchanged_within")),
        )
    except ValueError as error:  # a bad inference option (scales, depigmented_source, hold)
        raise UsageError(str(error)) from error
    hold_levels_within = _optional_float(cfg.get("hold_levels_within"))
    if hold_levels_within is not None and not 0 <= hold_levels_within <= 1:
        raise UsageError(f"hold_levels_within must be between 0 and 1, not {hold_levels_within}")
    config = load_vasi_config(cfg.vasi)
    options = {
        "align_method": str(cfg.align.method),
        "align_settings": align_settings(cfg),
        "tolerance_px": int(cfg.tolerance_px),
        "config": config,
        "quality": quality_for_model(cfg.quality, _segmenter_metadata(segment)),
        "match_lighting": bool(cfg.match_lighting),
        "segment_aligned": bool(cfg.segment_aligned),
        "segment_followup": segment_followup,
        "hold_levels_within": hold_levels_within,
        "follow_baseline_patches": bool(cfg.get("follow_baseline_patches", False)),
        "retake_noise": model_retake_noise(cfg, segment),
    }
    if segment_followup is not None and not cfg.segment_aligned:
        log.warning("hold_unchanged_within acts only with segment_aligned=true; ignored")
    provenance = comparison_provenance(cfg, segment)
    provenance["quality"] = options["quality"].to_dict()  # the config's nulls resolved
    out = output_dir()
    if photos:
        return _two_photos(cfg, segment, out, options, provenance)
    return _manifest(cfg, segment, out, options, provenance)


def _two_photos(
    cfg: DictConfig, segment: Segmenter, out: Path, options: dict, provenance: dict
) -> int:
    paths = Path(str(cfg.baseline)).expanduser(), Path(str(cfg.followup)).expanduser()
    try:
        baseline_rgb, followup_rgb = read_rgb(paths[0]), read_rgb(paths[1])
    except ImageReadError as error:
        log.error("%s", error)
        return 1
    result = compare_photos(
        baseline_rgb,
        followup_rgb,
        segment,
        str(cfg.region),
        pixels_per_cm=_optional_float(cfg.pixels_per_cm),
        followup_pixels_per_cm=_optional_float(cfg.followup_pixels_per_cm),
        body_surface_cm2=_optional_float(cfg.body_surface_cm2),
        **options,
    )
    write_pair_outputs(
        out,
        result,
        baseline_rgb,
        followup_rgb,
        identifiers={"baseline_image": str(paths[0]), "followup_image": str(paths[1])},
        panels=bool(cfg.panels),
        panel_max_side=int(cfg.panel_max_side),
        provenance=provenance,
    )
    comparison = result.comparison
    improvement = comparison.response.improvement
    log.info(
        "%s VASI %.3f -> %.3f (improvement %s); alignment %s",
        comparison.region,
        comparison.baseline.vasi,
        comparison.followup.vasi,
        "undefined: baseline 0" if improvement is None else f"{improvement:+.1%}",
        comparison.alignment.reason,
    )
    for note in comparison.notes:
        log.warning("note: %s", note)
    log.info("results: %s", out / "comparison.json")
    return 0


def _manifest(
    cfg: DictConfig, segment: Segmenter, out: Path, options: dict, provenance: dict
) -> int:
    try:
        photos = read_manifest(Path(str(cfg.manifest)).expanduser(), cfg.images)
        result = compare_manifest(
            photos,
            segment,
            baseline_visit=str(cfg.baseline_visit),
            followup_visit=str(cfg.followup_visit),
            out_dir=out,
            panels=bool(cfg.panels),
            panel_max_side=int(cfg.panel_max_side),
            provenance=provenance,
            **options,
        )
    except ManifestError as error:
        log.error("%s", error)
        return 1
    write_manifest_outputs(out, result, provenance)
    log.info("%d patient(s) compared; report: %s", len(result.patients), out / "report.html")
    for summary in (lighting_summary(result), retake_summary(result)):
        if summary:
            log.info("%s", summary)
    for failure in result.failures:
        log.error("%s", failure)
    return 1 if result.failures else 0


def main() -> None:
    run_hydra("compare", task)


if __name__ == "__main__":
    main()
