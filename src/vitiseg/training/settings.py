"""Typed training settings; the command module fills them from Hydra configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitiseg.data.augment import AugmentSettings


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset folder and its share of the training samples drawn each epoch."""

    path: Path
    weight: float = 1.0
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.path.name


@dataclass(frozen=True)
class TrainSettings:
    arch: str = "resnet_unet"
    model_kwargs: dict[str, Any] = field(default_factory=lambda: {"encoder": "resnet18"})
    init_weights: Path | None = None  # a vitiseg model folder to start from (fine-tuning)
    long_side: int = 448  # photos are held in memory at most this large
    colour_constancy: str = "none"  # per-photo channel rescaling (vitiseg.data.colour_constancy)
    tile: int = 512
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    batch_size: int = 8
    samples_per_epoch: int = 256
    max_epochs: int = 100
    max_minutes: float | None = None  # time budget; the LR schedule anneals within it
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    min_lr_ratio: float = 0.02
    dice_weight: float = 1.0
    # Soft Dice per photo rather than over the batch: all outputs, or only those named.
    dice_per_image: bool | tuple[str, ...] = False
    # Per photo, how photos annotated as empty are scored (loss.masked_bce_dice).
    empty_photo_reference: str = "smooth"
    # The per-photo Lovasz hinge in place of the soft Dice: all outputs, or those named.
    lovasz: bool | tuple[str, ...] = False
    val_fraction: float = 0.2
    # Another run's split.json to reuse, so a fine-tuned model never trains on the photos its
    # starting model was validated on (the seed alone decides the split otherwise).
    split_file: Path | None = None
    val_max_cases: int = 80  # per dataset, to keep validation quick on CPU
    select_dataset: str = ""  # dataset whose val lesion Dice picks the best model
    select_output: str = "lesion"  # the output whose val Dice picks it (lesion, depigmented, skin)
    # Per dataset label: px around each training lesion outline left out of the lesion loss.
    outline_band_px: dict[str, int] = field(default_factory=dict)
    # Parameter-name prefixes trained not at all, batch-norm statistics included; with
    # ("stem", "layers", "decoders", "head") only a branch decoder learns.
    freeze: tuple[str, ...] = ()
    early_stop_patience: int = 0  # validations without improvement; 0 = off
    # Validate every n-th epoch and the last: stages that ship their last epoch need the
    # per-epoch figures only to watch the run, and validation takes about half of a
    # frozen-encoder stage's time on CPU. Validation draws no random numbers, so the weights
    # are the same whatever n (stages 6 and 7 retrained bit for bit, docs/model_history.md,
    # session 66).
    validate_every: int = 1
    seed: int = 0
    device: str = "cpu"
    amp: bool = False  # mixed precision: fp16/bf16 on GPU, bf16 on CPUs with native bf16
    channels_last: bool = False  # NHWC memory layout; faster convolutions on CPU and GPU
    ema_decay: float = 0.0  # exponential moving average of the weights; 0 = off
    num_workers: int = 0
    threads: int = 0  # torch CPU threads; 0 = leave PyTorch's default
    resume: bool = True
    provenance: str = ""
    config_snapshot: dict[str, Any] = field(default_factory=dict)


def scaled_budget(minutes: float | None, scale: float) -> float | None:
    """A stage's time budget stretched by ``scale`` (``trainer.budget_scale``).

    A time-budgeted stage trains as many epochs as the CPU manages in its minutes, so on a
    CPU k times slower than the one a recipe was timed on it trains a k-th of the epochs and
    ends a different, weaker model; a budget k times longer gives back about the same
    epochs (and the schedule anneals over them alike). Epoch-based stages (no budget) need
    no scaling."""
    if not scale > 0:
        raise ValueError(f"trainer.budget_scale must be a positive number, got {scale}")
    return None if minutes is None else minutes * scale
