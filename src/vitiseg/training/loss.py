"""Loss for two outputs with partial annotation: masked BCE + masked soft Dice.

Pixels whose validity is 0 contribute nothing, so a lesion-only set trains the
lesion output and a skin-only set trains the skin output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

EMPTY_PHOTO_REFERENCES = ("smooth", "batch_area")


def masked_bce_dice(
    logits: torch.Tensor,
    targets: torch.Tensor,
    valid: torch.Tensor,
    *,
    dice_weight: float = 1.0,
    output_weights: tuple[float, ...] = (1.0, 1.0),
    smooth: float = 1.0,
    dice_per_image: bool | Sequence[bool] = False,
    empty_photo_reference: str = "smooth",
    lovasz: bool | Sequence[bool] = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over outputs of (BCE + dice_weight * soft Dice loss), each over valid pixels.

    Args:
        logits, targets, valid: (N, C, H, W) float; targets and valid in {0, 1}.
        dice_per_image: soft Dice per photo, averaged over the photos annotated for that
            output (the mean per-photo Dice that evaluation reports), instead of one Dice
            over the batch's pixels, where photos with large lesions outweigh small ones.
            One flag per output to choose it per output.
        empty_photo_reference: per photo, how a photo with no true pixel (annotated as
            empty) is scored. "smooth": the plain soft Dice, 1 - smooth / (S + smooth) for
            predicted mass S, which saturates once a few pixels are predicted, so false area
            there loses its Dice gradient. "batch_area": S / (S + A), with A the mean true
            area of the batch's photos that have some, so false area is weighed against a
            typical lesion and keeps its gradient (as it does in a pooled Dice).
        lovasz: one flag for all outputs, or one per output; where set, the soft Dice term
            is replaced by the Lovasz hinge per photo (Berman et al. 2018, a convex
            surrogate of each photo's IoU, the quantity evaluation averages), over valid
            pixels, averaged over the photos annotated for that output.

    Returns:
        The scalar loss and its parts per output (for logging). An output with no valid
        pixel in the batch adds exactly zero (and no gradient). A batch with no valid
        pixel at all (photos without masks) gives a zero loss that still back-propagates,
        so the step and, under DDP, the gradient exchange go ahead.
    """
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * valid
    probabilities = torch.sigmoid(logits) * valid
    total = logits.sum() * 0.0  # in the graph: zero gradients rather than none
    parts: dict[str, float] = {}
    per_image = _one_flag_per_output(dice_per_image, len(output_weights), "dice_per_image")
    lovasz_flags = _one_flag_per_output(lovasz, len(output_weights), "lovasz")
    check_empty_photo_reference(empty_photo_reference)
    for channel, weight in enumerate(output_weights):
        count = valid[:, channel].sum()
        if count.item() == 0:
            parts[f"bce{channel}"] = 0.0
            parts[f"dice{channel}"] = 0.0
            continue
        bce_term = bce[:, channel].sum() / count
        if lovasz_flags[channel]:
            region_term = lovasz_hinge_per_photo(
                logits[:, channel], targets[:, channel], valid[:, channel]
            )
        else:
            region_term = _soft_dice_loss(
                probabilities[:, channel],
                targets[:, channel] * valid[:, channel],
                valid[:, channel],
                per_image=per_image[channel],
                smooth=smooth,
                empty_photo_reference=empty_photo_reference,
            )
        total = total + weight * (bce_term + dice_weight * region_term)
        parts[f"bce{channel}"] = float(bce_term.detach())
        parts[f"dice{channel}"] = float(region_term.detach())
    return total, parts


def _one_flag_per_output(flags: bool | Sequence[bool], outputs: int, option: str) -> list[bool]:
    """One flag for every output, or one per output (their count checked)."""
    per_output = [flags] * outputs if isinstance(flags, bool) else list(flags)
    if len(per_output) != outputs:
        raise ValueError(f"{option}: {len(per_output)} flags for {outputs} outputs")
    return per_output


def _soft_dice_loss(
    probabilities: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    *,
    per_image: bool,
    smooth: float,
    empty_photo_reference: str,
) -> torch.Tensor:
    """1 - soft Dice of one output over the batch's pixels, or per photo averaged over the
    photos annotated for it; (N, H, W) tensors, probabilities and target already masked."""
    dims = (1, 2) if per_image else (0, 1, 2)
    intersection = (probabilities * target).sum(dims)
    denominator = probabilities.sum(dims) + target.sum(dims)
    dice = 1 - (2 * intersection + smooth) / (denominator + smooth)
    if not per_image:
        return dice
    if empty_photo_reference == "batch_area":
        dice = _empty_photos_against_batch_area(dice, probabilities, target)
    return dice[valid.sum((1, 2)) > 0].mean()


def lovasz_hinge_per_photo(
    logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Mean over photos with any valid pixel of the Lovasz hinge on those pixels.

    Args: (N, H, W) logits, targets in {0, 1} and validity in {0, 1}.
    """
    losses = []
    for photo_logits, photo_targets, photo_valid in zip(logits, targets, valid, strict=True):
        keep = photo_valid > 0
        if keep.any():
            losses.append(_lovasz_hinge_flat(photo_logits[keep], photo_targets[keep]))
    return torch.stack(losses).mean() if losses else logits.sum() * 0.0


def _lovasz_hinge_flat(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Hinge errors sorted high to low, weighted by the Jaccard loss's gradient (its
    Lovasz extension), so the loss is a tight convex surrogate of 1 - IoU."""
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, order = torch.sort(errors, descending=True)
    labels_sorted = labels[order]
    true_total = labels_sorted.sum()
    intersection = true_total - labels_sorted.cumsum(0)
    union = true_total + (1.0 - labels_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    weights = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return torch.dot(F.relu(errors_sorted), weights)


def check_empty_photo_reference(value: str) -> None:
    """Refuse a ``loss.empty_photo_reference`` the loss does not know."""
    if value not in EMPTY_PHOTO_REFERENCES:
        raise ValueError(
            f"loss.empty_photo_reference must be one of {EMPTY_PHOTO_REFERENCES}, not {value!r}"
        )


def _empty_photos_against_batch_area(
    dice: torch.Tensor, probabilities: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Per-photo Dice losses with each empty photo's replaced by S / (S + A): its predicted
    mass S against A, the mean true area of the photos that have some (unchanged if none)."""
    true_area = target.sum((1, 2))
    has_truth = true_area > 0
    if not has_truth.any():
        return dice
    reference = true_area[has_truth].mean().detach()
    predicted = probabilities.sum((1, 2))
    return torch.where(has_truth, dice, predicted / (predicted + reference))


def output_flags(
    setting: bool | Sequence[str], output_names: Sequence[str], option: str
) -> bool | tuple[bool, ...]:
    """A per-output ``loss.<option>`` (``dice_per_image``, ``lovasz``) as the loss takes it:
    one flag for all outputs, or one per output from the names given; a name the model has
    no output for is refused."""
    if isinstance(setting, bool):
        return setting
    unknown = sorted(set(setting) - set(output_names))
    if unknown:
        raise ValueError(
            f"loss.{option} names {unknown}, not outputs of this model {list(output_names)}"
        )
    return tuple(name in setting for name in output_names)
