"""The training loop: CPU, one GPU, or data-parallel through torchrun (DDP).

Checkpoints every epoch (``checkpoints/last.pt``, loadable with ``weights_only=True``),
the best model by validation lesion Dice as a self-contained model folder
(``model/``), metrics per epoch in ``metrics.csv``, and resume from ``last.pt``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import pickle
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from vitiseg.data.augment import (
    relit_transform,
    training_transform,
    unlit_transform,
    untaught_by_relit,
)
from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.splits import deterministic_rng, load_split, save_split, split_by_patient
from vitiseg.data.torch_dataset import LoadedCase, SegmentationDataset, load_case, normalise
from vitiseg.io.atomic import write_tensors_atomic, write_text_atomic
from vitiseg.metrics.segmentation import mean_scores, score_masks
from vitiseg.models.metadata import output_names_for
from vitiseg.models.model_folder import (
    ModelMetadata,
    Preprocessing,
    load_start_weights,
    save_model_folder,
)
from vitiseg.models.unet import build_model
from vitiseg.training.loss import (
    check_empty_photo_reference,
    masked_bce_dice,
    output_flags,
)
from vitiseg.training.settings import DatasetSpec, TrainSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    best_metric: float
    epochs_run: int
    minutes: float


# ---------------------------------------------------------------- distributed helpers
def _init_distributed(device: str) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device_for_rank(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device(device)


def _broadcast_float(value: float, device: torch.device) -> float:
    if not dist.is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


# ---------------------------------------------------------------- data
def _selection_label(
    specs: list[DatasetSpec], select_dataset: str, select_output: str = "lesion"
) -> str:
    """The dataset whose validation picks the best model; labels must be unique."""
    labels = [spec.label for spec in specs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        paths = [str(spec.path) for spec in specs if spec.label in repeated]
        raise ValueError(
            f"datasets {paths} share the folder name {repeated[0]!r}; weights, splits and "
            "metrics are keyed by folder name, so give each dataset its own"
        )
    if select_dataset and select_dataset not in labels:
        # Otherwise no epoch ever improves and no model folder is written.
        raise ValueError(f"select_dataset {select_dataset!r} names no dataset; one of {labels}")
    outputs = output_names_for(3)
    if select_output not in outputs:
        raise ValueError(f"select_output {select_output!r} names no output; one of {outputs}")
    return select_dataset or labels[0]


def _load_split_cases(
    specs: list[DatasetSpec], settings: TrainSettings, output_dir: Path
) -> tuple[list[LoadedCase], dict[str, list[LoadedCase]], dict[str, dict[str, list[str]]]]:
    # A resumed run keeps its own split; a new run may reuse another run's.
    split_path = output_dir / "split.json"
    if not split_path.is_file():
        split_path = settings.split_file
    elif settings.split_file and Path(settings.split_file).resolve() != split_path.resolve():
        log.warning(
            "%s exists: this run keeps its split; %s is not used", split_path, settings.split_file
        )
    saved = load_split(split_path) if split_path else {}
    labels = {spec.label for spec in specs}
    unknown_bands = sorted(set(settings.outline_band_px) - labels)
    if unknown_bands:  # a misspelt name would silently train with exact edges
        raise ValueError(f"outline_band_px names no dataset folder: {unknown_bands}")
    unknown_unlit = sorted(set(settings.augment.white_balance_skip_datasets) - labels)
    if unknown_unlit:  # a misspelt name would silently re-light that set
        raise ValueError(f"augment.white_balance_skip_datasets names no dataset: {unknown_unlit}")
    train: list[LoadedCase] = []
    val: dict[str, list[LoadedCase]] = {}
    splits: dict[str, dict[str, list[str]]] = {}
    for spec in specs:
        cases = load_dataset(spec.path)
        if not cases:
            raise ValueError(f"{spec.path}: dataset has no usable cases")
        split = saved.get(spec.label) or split_by_patient(
            cases, settings.val_fraction, settings.seed
        )
        splits[spec.label] = split
        by_id = {c.case_id: c for c in cases}
        unknown = sorted(set(split["train"] + split["val"]) - by_id.keys())
        if unknown:
            raise ValueError(
                f"{split_path}: {spec.label} split names cases not in {spec.path}: {unknown[:5]}"
            )
        val_ids = list(split["val"])
        if len(val_ids) > settings.val_max_cases:
            picker = deterministic_rng(settings.seed, spec.label, "val")
            val_ids = sorted(picker.choice(val_ids, settings.val_max_cases, replace=False))
        band = settings.outline_band_px.get(spec.label, 0)
        train += [
            load_case(
                by_id[i],
                spec.label,
                settings.long_side,
                outline_band_px=band,
                colour_constancy=settings.colour_constancy,
            )
            for i in split["train"]
        ]
        val[spec.label] = [
            load_case(
                by_id[i],
                spec.label,
                settings.long_side,
                colour_constancy=settings.colour_constancy,
            )
            for i in val_ids
        ]
        log.info(
            "%s: %d train / %d val cases (%d val patients)",
            spec.label,
            len(split["train"]),
            len(val_ids),
            len({by_id[i].patient_id for i in val_ids}),
        )
    return train, val, splits


def _epoch_draws(
    train: list[LoadedCase], specs: list[DatasetSpec], seed: int, epoch: int, n_draws: int
) -> np.ndarray:
    """Case indices drawn with per-dataset shares, identical on every rank for an epoch."""
    counts = {spec.label: 0 for spec in specs}
    for item in train:
        counts[item.dataset] += 1
    shares = {spec.label: spec.weight for spec in specs if counts[spec.label]}
    total = sum(shares.values())
    probabilities = np.array(
        [shares[item.dataset] / total / counts[item.dataset] for item in train]
    )
    probabilities /= probabilities.sum()
    rng = deterministic_rng(seed, "epoch", epoch)
    return rng.choice(len(train), n_draws, replace=True, p=probabilities)


# ---------------------------------------------------------------- validation
@torch.no_grad()
def validate(
    model: nn.Module,
    val: dict[str, list[LoadedCase]],
    device: torch.device,
    mean,
    std,
) -> dict[str, Any]:
    """Mean Dice per dataset and output over the validation cases (full photos)."""
    model.eval()
    results: dict[str, Any] = {}
    for label, cases in val.items():
        rows: dict[str, list] = {
            "skin": [],
            "lesion": [],
            "lesion_nonempty": [],
            "depigmented": [],
        }
        for item in cases:
            image = normalise(item.image, mean, std, item.gains)[None].to(device)
            probabilities = torch.sigmoid(model(image).float())[0].cpu().numpy()
            for channel, name in enumerate(output_names_for(len(probabilities))):
                if not item.valid[channel].all():
                    continue  # only fully annotated outputs are scored
                truth = item.targets[channel].astype(bool)
                scores = score_masks(probabilities[channel] >= 0.5, truth, with_hd95=False)
                rows[name].append(scores)
                if name == "lesion" and truth.any():
                    rows["lesion_nonempty"].append(scores)
        results[label] = {name: mean_scores(r) for name, r in rows.items() if r}
    model.train()
    return results


def _selection_metric(results: dict[str, Any], label: str, output: str = "lesion") -> float:
    metrics = results.get(label, {})
    keys = ("lesion_nonempty", "lesion", "skin") if output == "lesion" else (output,)
    for key in keys:
        if key in metrics and metrics[key].get("dice") is not None:
            return float(metrics[key]["dice"])
    return math.nan


# ---------------------------------------------------------------- frozen parts
def _in_prefixes(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(f"{prefix}.") for prefix in prefixes)


def freeze_parameters(model: nn.Module, prefixes: tuple[str, ...]) -> int:
    """Stop gradients for parameters under ``prefixes``; returns how many stay trainable."""
    names = [name for name, _ in model.named_parameters()]
    unmatched = [p for p in prefixes if not any(_in_prefixes(n, (p,)) for n in names)]
    if unmatched:
        # A misspelt prefix would otherwise train what was meant to stay fixed.
        raise ValueError(f"freeze names no parameters: {unmatched}")
    for name, parameter in model.named_parameters():
        if _in_prefixes(name, prefixes):
            parameter.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if not trainable:
        raise ValueError(f"freeze {list(prefixes)} leaves nothing to train")
    return trainable


def keep_frozen_in_eval(model: nn.Module, prefixes: tuple[str, ...]) -> None:
    """Eval mode for frozen modules: their batch-norm statistics must not drift in training,
    or the frozen outputs would change after all."""
    for name, module in model.named_modules():
        if name and _in_prefixes(name, prefixes):
            module.eval()


def skip_frozen_outputs(model: nn.Module) -> tuple[int, ...]:
    """Have training leave out the outputs whose every weight is frozen (their loss moves
    nothing); returns their channels, which the loss must then ignore."""
    frozen_outputs = getattr(model, "frozen_outputs", None)
    if frozen_outputs is None:
        return ()
    channels = frozen_outputs()
    if channels:
        model.skip_frozen_outputs = True
        log.info("outputs %s frozen throughout: not computed in training", list(channels))
    return channels


# ---------------------------------------------------------------- checkpoints
def _restore_checkpoint(path: Path, model, optimizer, scaler, ema) -> dict[str, Any]:
    """Load ``last.pt`` into the training objects; returns the saved loop state."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as error:
        raise ValueError(
            f"{path}: unreadable checkpoint ({error}); delete it or set trainer.resume=false"
        ) from error
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scaler.load_state_dict(checkpoint["scaler"])
    if ema is not None and "ema" in checkpoint:
        ema.load_state_dict(checkpoint["ema"])
    return checkpoint["state"]


def checkpoint_weights(path: Path) -> dict[str, torch.Tensor]:
    """The weights a checkpoint's epoch was validated with: the moving average when on.

    Lets a run be judged at its last epoch rather than at the epoch its validation split
    chose (for example in cross-validation).
    """
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if "ema" in payload:
        prefix = "module."  # torch.optim.swa_utils.AveragedModel wraps the network
        return {k[len(prefix) :]: v for k, v in payload["ema"].items() if k.startswith(prefix)}
    return {k.removeprefix("module."): v for k, v in payload["model"].items()}


def _write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(path, buffer.getvalue())


def _flatten(prefix: str, tree: dict[str, Any], out: dict[str, Any]) -> None:
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else key
        if isinstance(value, dict):
            _flatten(name, value, out)
        elif key in ("dice", "iou"):
            out[name] = value


def _stop_reason(
    state: dict[str, Any], settings: TrainSettings, budget_seconds: float
) -> str | None:
    """Why training should stop before the next epoch, or None to go on."""
    if settings.early_stop_patience and state["stale"] >= settings.early_stop_patience:
        return f"early stop: no improvement in {state['stale']} validations"
    if state["elapsed"] >= budget_seconds:
        return f"time budget of {settings.max_minutes:.1f} min reached"
    return None


def _validation_due(state: dict[str, Any], settings: TrainSettings, budget_seconds: float) -> bool:
    """Whether the epoch just finished is validated: every ``validate_every``-th epoch, and
    always the run's last (by epoch count or by time budget), so the final weights are
    always measured and exported when best."""
    epoch = state["epoch"]
    return (
        epoch % settings.validate_every == 0
        or epoch >= settings.max_epochs
        or state["elapsed"] >= budget_seconds
    )


def _learning_rate(settings: TrainSettings, step: int, progress: float) -> float:
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    floor = settings.lr * settings.min_lr_ratio
    return floor + 0.5 * (settings.lr - floor) * (1 + math.cos(math.pi * min(progress, 1.0)))


# ---------------------------------------------------------------- precision and averaging
def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere CPU
    autocast to bf16 is emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _mixed_precision(requested: bool, device: torch.device) -> tuple[bool, torch.dtype]:
    if not requested:
        return False, torch.float32
    if device.type == "cuda":
        return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return True, torch.bfloat16
    # The shipped recipe's time budgets were set on a bf16 CPU; here they buy fewer epochs.
    log.warning(
        "mixed precision off: this CPU has no native bf16 (fp32 is faster here); a time "
        "budget (trainer.max_minutes) trains about 4x fewer epochs than on the CPU the "
        "default recipe was timed on: trainer.budget_scale=4 gives them back"
    )
    return False, torch.float32


def _make_ema(model: nn.Module, decay: float):
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    # use_buffers: BatchNorm statistics are averaged along with the weights.
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


# ---------------------------------------------------------------- the loop
def train(settings: TrainSettings, specs: list[DatasetSpec], output_dir: Path) -> TrainResult:
    """Train, validate every epoch, keep the best model folder; resume if a checkpoint exists."""
    output_dir = Path(output_dir)
    rank, world = _init_distributed(settings.device)
    device = _device_for_rank(settings.device)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed + rank)
    main_process = rank == 0
    select_label = _selection_label(specs, settings.select_dataset, settings.select_output)
    # Resolved once, before any data is read, so a misnamed output fails at once.
    output_names = output_names_for(int(settings.model_kwargs.get("out_channels", 2)))
    dice_per_image = output_flags(settings.dice_per_image, output_names, "dice_per_image")
    lovasz = output_flags(settings.lovasz, output_names, "lovasz")
    check_empty_photo_reference(settings.empty_photo_reference)
    if settings.validate_every < 1:
        raise ValueError(
            f"trainer.validate_every must be 1 or more, not {settings.validate_every}"
        )

    train_cases, val_cases, splits = _load_split_cases(specs, settings, output_dir)
    if main_process:
        save_split(output_dir / "split.json", splits)
    preprocessing = Preprocessing(
        long_side=settings.long_side,
        tile=settings.tile,
        colour_constancy=settings.colour_constancy,
    )
    relit = relit_transform(settings.augment)
    # With a separate re-lit pipeline the main one must not re-light as well.
    main_augment = (
        settings.augment if relit is None else replace(settings.augment, white_balance=0.0)
    )
    dataset = SegmentationDataset(
        train_cases,
        training_transform(main_augment),
        mean=preprocessing.mean,
        std=preprocessing.std,
        seed=settings.seed,
        background_swap=settings.augment.background_swap,
        lighter_patch=settings.augment.lighter_patch,
        unlit_transform=unlit_transform(settings.augment),
        unlit_depigmented_truth=settings.augment.white_balance_spares_depigmented_truth,
        unlit_datasets=settings.augment.white_balance_skip_datasets,
        relit_transform=relit,
        relit_share=settings.augment.white_balance,
        relit_untaught=untaught_by_relit(settings.augment),
    )

    model = build_model(settings.arch, **settings.model_kwargs)
    if settings.init_weights:
        load_start_weights(model, settings.init_weights)
        log.info("initialised from %s", settings.init_weights)
    skipped_outputs: tuple[int, ...] = ()
    if settings.freeze:
        trainable = freeze_parameters(model, settings.freeze)
        log.info("frozen: %s; %d parameters train", list(settings.freeze), trainable)
        skipped_outputs = skip_frozen_outputs(model)
    model = model.to(device)
    network: nn.Module = model
    if dist.is_initialized():
        network = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=settings.lr,
        weight_decay=settings.weight_decay,
    )
    use_amp, amp_dtype = _mixed_precision(settings.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    # Validation and the exported model use the weight average when enabled: on small
    # data the raw weights' validation Dice swings by tens of points between epochs.
    ema = _make_ema(model, settings.ema_decay)
    evaluated = ema.module if ema is not None else model

    steps_per_epoch = max(1, settings.samples_per_epoch // (settings.batch_size * world))
    # Each rank gets exactly its steps' worth of samples: none sits idle while others step.
    samples_per_rank = steps_per_epoch * settings.batch_size
    total_steps = steps_per_epoch * settings.max_epochs
    budget_seconds = settings.max_minutes * 60 if settings.max_minutes else math.inf
    state = {"epoch": 0, "step": 0, "elapsed": 0.0, "best": -math.inf, "stale": 0, "history": []}
    checkpoint_path = output_dir / "checkpoints" / "last.pt"
    if settings.resume and checkpoint_path.is_file():
        state.update(_restore_checkpoint(checkpoint_path, model, optimizer, scaler, ema))
        log.info("resumed from %s at epoch %d", checkpoint_path, state["epoch"])

    model_dir = output_dir / "model"
    started = time.monotonic() - state["elapsed"]
    while state["epoch"] < settings.max_epochs:
        network.train()
        keep_frozen_in_eval(model, settings.freeze)
        # Checked before an epoch, not after: a finished run that is resumed stops at once.
        stop_reason = _stop_reason(state, settings, budget_seconds)
        # Rank 0 decides for all: clocks differ, and a rank that stopped alone would hang.
        if _broadcast_float(float(stop_reason is not None), device):
            log.info("%s", stop_reason or "stopped by rank 0")
            break
        epoch = state["epoch"]
        # Every rank draws the same list and takes every world-th draw of it.
        dataset.set_epoch(
            epoch, _epoch_draws(train_cases, specs, settings.seed, epoch, samples_per_rank * world)
        )
        loader = DataLoader(
            Subset(dataset, range(rank, len(dataset), world)),
            batch_size=settings.batch_size,
            shuffle=False,
            num_workers=settings.num_workers,
            drop_last=True,
        )
        losses: list[float] = []
        bar = tqdm(
            loader,
            total=steps_per_epoch,
            disable=not main_process,
            leave=False,
            desc=f"epoch {epoch + 1}/{settings.max_epochs}",
            dynamic_ncols=True,
        )
        for batch_index, batch in enumerate(bar):
            if batch_index >= steps_per_epoch:
                break
            # Rank 0's clock for all ranks: learning rates that differ would drift the replicas.
            progress = _broadcast_float(
                max(state["step"] / total_steps, (time.monotonic() - started) / budget_seconds),
                device,
            )
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(settings, state["step"], progress)
            images = batch["image"].to(device, non_blocking=True, memory_format=memory_format)
            targets = batch["targets"].to(device, non_blocking=True)
            valid = batch["valid"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                logits = network(images)
            outputs = logits.shape[1]  # a two-output model ignores the depigmented masks
            valid = valid[:, :outputs]
            if skipped_outputs:  # not computed (zeros): no loss on them
                valid = valid.clone()
                valid[:, list(skipped_outputs)] = 0
            loss, _ = masked_bce_dice(
                logits.float(),
                targets[:, :outputs],
                valid,
                dice_weight=settings.dice_weight,
                output_weights=(1.0,) * outputs,
                dice_per_image=dice_per_image,
                empty_photo_reference=settings.empty_photo_reference,
                lovasz=lovasz,
            )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update_parameters(model)
            state["step"] += 1
            losses.append(float(loss.detach()))
            bar.set_postfix(
                loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{optimizer.param_groups[0]['lr']:.1e}"
            )
        bar.close()
        state["epoch"] = epoch + 1
        state["elapsed"] = time.monotonic() - started

        # Rank 0's clock decides, as for stopping: every rank must take part or none.
        validated = bool(
            _broadcast_float(float(_validation_due(state, settings, budget_seconds)), device)
        )
        metric = math.nan
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": state["step"],
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": float(np.mean(losses)) if losses else math.nan,
            "minutes": round(state["elapsed"] / 60, 2),
        }
        if main_process and validated:
            results = validate(evaluated, val_cases, device, preprocessing.mean, preprocessing.std)
            metric = _selection_metric(results, select_label, settings.select_output)
            row["select_metric"] = metric
            _flatten("val", results, row)
        metric = _broadcast_float(metric, device)
        improved = not math.isnan(metric) and metric > state["best"]
        if improved:
            state["best"], state["stale"] = metric, 0
        elif validated:  # patience counts validations, not epochs
            state["stale"] += 1
        if main_process:
            state["history"].append(row)
            _write_metrics_csv(output_dir / "metrics.csv", state["history"])
            if improved:
                _export(evaluated, settings, specs, preprocessing, results, row, model_dir)
            write_tensors_atomic(
                checkpoint_path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    **({"ema": ema.state_dict()} if ema is not None else {}),
                    "state": state,
                    "settings": {k: str(v) for k, v in asdict(settings).items()},
                },
            )
            measured = (
                f"val {select_label} {settings.select_output} Dice {metric:.4f}  "
                f"best {state['best']:.4f}"
                if validated
                else f"not validated (every {settings.validate_every})"
            )
            log.info(
                "epoch %d  loss %.4f  %s  (%.1f min)",
                epoch + 1,
                row["train_loss"],
                measured,
                state["elapsed"] / 60,
            )
    if dist.is_initialized():
        dist.barrier()
    return TrainResult(model_dir, state["best"], state["epoch"], state["elapsed"] / 60)


def _export(model, settings, specs, preprocessing, results, row, model_dir) -> None:
    # The folder's weights include the encoder: a path to the starting file would tie the
    # folder to this machine.
    model_kwargs = dict(settings.model_kwargs)
    if model_kwargs.get("encoder_weights"):
        model_kwargs["encoder_weights"] = None
    output_names = output_names_for(int(model_kwargs.get("out_channels", 2)))
    metadata = ModelMetadata(
        arch=settings.arch,
        model_kwargs=model_kwargs,
        preprocessing=preprocessing,
        output_names=output_names,
        thresholds=dict.fromkeys(output_names, 0.5),
        training={
            "datasets": [
                {"name": s.label, "path": s.path.name, "weight": s.weight} for s in specs
            ],
            "epoch": row["epoch"],
            "step": row["step"],
            "minutes": row["minutes"],
            "config": settings.config_snapshot,
        },
        validation=results,
        provenance=settings.provenance,
    )
    save_model_folder(model_dir, model, metadata)
