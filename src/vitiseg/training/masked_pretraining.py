"""Self-supervised pretraining of the ResNet encoder by masked-image inpainting.

ImageNet weights cannot be downloaded here, so the only way to give the encoder general
image features before the few labelled vitiligo photos is to learn them from the photos
themselves, labels unused: blocks of each augmented crop are blanked and the U-Net learns
to paint them back (L1 on the blanked pixels only, as SimMIM does). The encoder is then
saved as a torchvision ResNet state_dict, which ``model.kwargs.encoder_weights`` loads.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from vitiseg.io.atomic import write_tensors_atomic

log = logging.getLogger(__name__)

# ResNetUNet's encoder names -> torchvision ResNet's, so the file loads as a backbone.
_TORCHVISION_PREFIXES = {
    "stem.0.": "conv1.",
    "stem.1.": "bn1.",
    "layers.0.": "layer1.",
    "layers.1.": "layer2.",
    "layers.2.": "layer3.",
    "layers.3.": "layer4.",
}


def block_mask(
    batch: int, height: int, width: int, block: int, ratio: float, generator: torch.Generator
) -> torch.Tensor:
    """(batch, 1, height, width) bool: True on blanked pixels, in ``block``-px squares,
    each square blanked with probability ``ratio``."""
    if block < 1 or not 0 < ratio < 1:
        raise ValueError(f"block must be >= 1 and ratio in (0, 1); got {block}, {ratio}")
    rows, cols = math.ceil(height / block), math.ceil(width / block)
    coarse = torch.rand(batch, 1, rows, cols, generator=generator) < ratio
    fine = coarse.repeat_interleave(block, dim=2).repeat_interleave(block, dim=3)
    return fine[:, :, :height, :width]


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over blanked pixels only (all channels); 0 when none is blanked."""
    weight = mask.to(prediction.dtype).expand_as(prediction)
    return (weight * (prediction - target).abs()).sum() / weight.sum().clamp_min(1.0)


def encoder_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder of a ``ResNetUNet`` under torchvision ResNet names (no classifier)."""
    state = {}
    for key, value in model.state_dict().items():
        for ours, theirs in _TORCHVISION_PREFIXES.items():
            if key.startswith(ours):
                state[theirs + key[len(ours) :]] = value.detach().clone()
    if not state:
        raise ValueError("the model has no ResNet encoder (stem.*, layers.*) to export")
    return state


@dataclass(frozen=True)
class PretrainSettings:
    minutes: float = 30.0
    max_steps: int = 100_000
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    block: int = 32
    ratio: float = 0.5
    seed: int = 0
    checkpoint_every: int = 25


def _learning_rate(settings: PretrainSettings, step: int, progress: float) -> float:
    warm = min(1.0, (step + 1) / settings.warmup_steps)
    return settings.lr * warm * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def pretrain(
    model: nn.Module, loader: DataLoader, settings: PretrainSettings, output_dir: Path
) -> dict[str, float]:
    """Inpainting loop until ``settings.minutes`` of training or ``max_steps``; resumes from
    ``output_dir/last.pt``; writes ``output_dir/encoder.pt`` (torchvision names)."""
    if len(loader) == 0:
        raise ValueError("no training batches: fewer photos than the batch size?")
    output_dir.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    checkpoint_path = output_dir / "last.pt"
    step, spent, losses = 0, 0.0, []
    if checkpoint_path.is_file():
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        step, spent = int(saved["step"]), float(saved["minutes"])
        log.info("resumed at step %d (%.1f min)", step, spent)
    generator = torch.Generator().manual_seed(settings.seed + step)
    model.train()
    started = time.monotonic() - spent * 60
    done = False
    while not done:
        # A new pass draws new crops: the dataset's random stream is keyed by its epoch.
        if hasattr(loader.dataset, "set_epoch"):
            loader.dataset.set_epoch(step // max(1, len(loader)))
        for batch in loader:
            image = batch["image"]
            mask = block_mask(
                len(image), *image.shape[2:], settings.block, settings.ratio, generator
            )
            minutes = (time.monotonic() - started) / 60
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(settings, step, minutes / settings.minutes)
            prediction = model(image.masked_fill(mask, 0.0))  # 0 = the mean after normalising
            loss = masked_l1(prediction, image, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            losses.append(loss.item())
            done = minutes >= settings.minutes or step >= settings.max_steps
            if done or step % settings.checkpoint_every == 0:
                recent = sum(losses[-25:]) / len(losses[-25:])
                log.info("step %d, %.1f min, masked L1 %.4f", step, minutes, recent)
                write_tensors_atomic(
                    checkpoint_path,
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "step": step,
                        "minutes": minutes,
                    },
                )
            if done:
                break
    write_tensors_atomic(output_dir / "encoder.pt", encoder_state_dict(model))
    return {"steps": step, "minutes": minutes, "masked_l1_last25": recent}


def reconstruction_error(
    model: nn.Module, images: torch.Tensor, block: int, ratio: float
) -> float:
    """Masked L1 of ``model`` on ``images``, fixed mask (seed 0): lower inpaints better."""
    generator = torch.Generator().manual_seed(0)
    mask = block_mask(len(images), *images.shape[2:], block, ratio, generator)
    model.eval()
    with torch.no_grad():
        return float(masked_l1(model(images.masked_fill(mask, 0.0)), images, mask))


def mean_filled_error(images: torch.Tensor, block: int, ratio: float) -> float:
    """The same error when every blanked pixel is guessed as 0 (the mean): the bar a trained
    inpainter must clear."""
    generator = torch.Generator().manual_seed(0)
    mask = block_mask(len(images), *images.shape[2:], block, ratio, generator)
    return float(masked_l1(torch.zeros_like(images), images, mask))


__all__ = [
    "PretrainSettings",
    "block_mask",
    "encoder_state_dict",
    "masked_l1",
    "mean_filled_error",
    "pretrain",
    "reconstruction_error",
]
