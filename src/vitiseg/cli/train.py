"""vitiseg-train: Hydra config -> TrainSettings -> training.train."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vitiseg.cli._hydra import output_dir, run_hydra
from vitiseg.data.augment import OUTPUTS, AugmentSettings
from vitiseg.data.colour_constancy import check_colour_constancy
from vitiseg.training.settings import DatasetSpec, TrainSettings, scaled_budget
from vitiseg.training.trainer import train

log = logging.getLogger(__name__)


def dataset_specs(cfg: DictConfig) -> list[DatasetSpec]:
    """``dataset`` (path or list) and ``dataset_weights`` (mapping or list) -> specs."""
    paths = cfg.dataset if OmegaConf.is_list(cfg.dataset) else [cfg.dataset]
    weights = cfg.get("dataset_weights") or {}
    if OmegaConf.is_list(weights) and len(weights) != len(paths):
        raise ValueError(
            f"dataset_weights lists {len(weights)} weights for {len(paths)} dataset folders"
        )
    specs = []
    for index, path in enumerate(paths):
        path = Path(str(path)).expanduser().resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"dataset folder not found: {path}")
        if OmegaConf.is_list(weights):
            weight = float(weights[index])
        else:
            weight = float(weights.get(path.name, 1.0))
        specs.append(DatasetSpec(path=path, weight=weight, name=path.name))
    if OmegaConf.is_dict(weights) and weights and len(specs) > 1:  # shares need a mix
        unweighted = [spec.label for spec in specs if spec.label not in weights]
        unused = sorted(set(weights) - {spec.label for spec in specs})
        # A misspelt folder name would silently train that set at weight 1.0.
        if unweighted and unused:
            raise ValueError(
                f"dataset folders {unweighted} have no entry in dataset_weights, which names "
                f"{unused} instead; weights are keyed by folder name"
            )
        if unweighted:
            log.warning("dataset_weights gives %s no weight; using 1.0", unweighted)
    return specs


def _per_output_option(value, option: str = "dice_per_image") -> bool | tuple[str, ...]:
    """``loss.<option>``: true/false, or a list of output names (``[lesion]``)."""
    if isinstance(value, bool):
        return value
    if OmegaConf.is_list(value):
        return tuple(str(name) for name in value)
    raise ValueError(f"loss.{option} must be true, false or a list of outputs, not {value!r}")


def settings_from_config(cfg: DictConfig) -> TrainSettings:
    trainer, model, optim = cfg.trainer, cfg.model, cfg.optim
    return TrainSettings(
        arch=model.arch,
        model_kwargs=OmegaConf.to_container(model.kwargs, resolve=True),
        init_weights=Path(model.init_weights) if model.get("init_weights") else None,
        long_side=cfg.data.long_side,
        colour_constancy=check_colour_constancy(cfg.data.get("colour_constancy", "none")),
        tile=model.tile,
        augment=AugmentSettings(
            crop=cfg.augment.crop,
            scale=tuple(cfg.augment.scale),
            rotate_deg=cfg.augment.rotate_deg,
            colour=cfg.augment.colour,
            noise_blur=cfg.augment.noise_blur,
            background_swap=cfg.augment.get("background_swap", 0.0),
            pale_skin=cfg.augment.get("pale_skin", 0.0),
            lighter_patch=cfg.augment.get("lighter_patch", 0.0),
            white_balance=cfg.augment.get("white_balance", 0.0),
            white_balance_kelvin=tuple(
                cfg.augment.get("white_balance_kelvin", AugmentSettings.white_balance_kelvin)
            ),
            white_balance_exposure=tuple(
                cfg.augment.get("white_balance_exposure", AugmentSettings.white_balance_exposure)
            ),
            white_balance_spares_depigmented_truth=cfg.augment.get(
                "white_balance_spares_depigmented_truth", False
            ),
            white_balance_skip_datasets=tuple(cfg.augment.get("white_balance_skip_datasets", ())),
            white_balance_teaches=tuple(cfg.augment.get("white_balance_teaches", OUTPUTS)),
        ),
        batch_size=trainer.batch_size,
        samples_per_epoch=trainer.samples_per_epoch,
        max_epochs=trainer.max_epochs,
        max_minutes=scaled_budget(trainer.max_minutes, trainer.get("budget_scale", 1.0)),
        lr=optim.lr,
        weight_decay=optim.weight_decay,
        warmup_steps=optim.warmup_steps,
        min_lr_ratio=optim.min_lr_ratio,
        dice_weight=cfg.loss.dice_weight,
        dice_per_image=_per_output_option(cfg.loss.get("dice_per_image", False)),
        empty_photo_reference=str(cfg.loss.get("empty_photo_reference", "smooth")),
        lovasz=_per_output_option(cfg.loss.get("lovasz", False), "lovasz"),
        val_fraction=cfg.data.val_fraction,
        split_file=Path(cfg.data.split_file) if cfg.data.get("split_file") else None,
        val_max_cases=cfg.data.val_max_cases,
        select_dataset=cfg.data.select_dataset,
        select_output=cfg.data.get("select_output", "lesion"),
        outline_band_px={
            str(k): int(v) for k, v in (cfg.data.get("outline_band_px") or {}).items()
        },
        freeze=tuple(trainer.get("freeze") or ()),
        early_stop_patience=trainer.early_stop_patience,
        validate_every=trainer.get("validate_every", 1),
        seed=trainer.seed,
        device=trainer.device,
        amp=trainer.amp,
        channels_last=trainer.get("channels_last", False),
        ema_decay=trainer.get("ema_decay", 0.0),
        num_workers=trainer.num_workers,
        threads=trainer.threads,
        resume=trainer.resume,
        provenance=cfg.provenance,
        config_snapshot=OmegaConf.to_container(
            OmegaConf.masked_copy(cfg, [k for k in cfg if k not in ("output",)]), resolve=False
        ),
    )


def task(cfg: DictConfig) -> int:
    result = train(settings_from_config(cfg), dataset_specs(cfg), output_dir())
    log.info(
        "best val Dice %.4f after %d epochs (%.1f min); model folder: %s",
        result.best_metric,
        result.epochs_run,
        result.minutes,
        result.model_dir,
    )
    return 0


def main() -> None:
    run_hydra("train", task)


if __name__ == "__main__":
    main()
