"""Self-contained model folders: ``weights.safetensors`` + ``metadata.json``.

Preprocessing, output names and thresholds travel with the weights, so training,
evaluation and clinic scoring cannot drift apart. Loading never touches the network
and never unpickles anything (safetensors).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from vitiseg.io.atomic import write_bytes_atomic, write_json_atomic
from vitiseg.models.metadata import (
    FORMAT,
    METADATA_NAME,
    WEIGHTS_NAME,
    ModelMetadata,
    Preprocessing,
    load_metadata,
)
from vitiseg.models.unet import build_model

__all__ = [
    "FORMAT",
    "METADATA_NAME",
    "WEIGHTS_NAME",
    "ModelMetadata",
    "Preprocessing",
    "load_metadata",
    "load_model_folder",
    "load_start_weights",
    "split_off_branch",
    "split_off_skin",
    "save_model_folder",
    "widen_head",
    "widen_stem",
]


def save_model_folder(
    folder: str | Path, model: nn.Module, metadata: ModelMetadata, *, half: bool = True
) -> ModelMetadata:
    """Write weights (fp16 by default, to keep shipped models small) and metadata.

    Returns the metadata with ``model_id`` set to a hash of the weights.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        name: (
            t.detach().cpu().half() if half and t.is_floating_point() else t.detach().cpu()
        ).contiguous()
        for name, t in model.state_dict().items()
    }
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        scratch_file = Path(scratch) / WEIGHTS_NAME
        save_file(state, str(scratch_file))
        data = scratch_file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:12]
    metadata = ModelMetadata(**{**metadata.__dict__, "model_id": f"{metadata.arch}-{digest}"})
    write_bytes_atomic(folder / WEIGHTS_NAME, data)
    write_json_atomic(folder / METADATA_NAME, metadata.to_dict())
    return metadata


def load_model_folder(folder: str | Path, device: str = "cpu") -> tuple[nn.Module, ModelMetadata]:
    """Build the network from metadata and load its weights (no pickle, no network)."""
    folder = Path(folder)
    metadata = load_metadata(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weights file missing")
    model = build_model(metadata.arch, **metadata.model_kwargs)
    try:
        state = load_file(str(weights), device="cpu")
        state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
        model.load_state_dict(state)
    except (OSError, RuntimeError, ValueError, SafetensorError) as error:
        raise ValueError(f"{weights}: weights do not fit {metadata.model_id} ({error})") from error
    return model.to(device).eval(), metadata


def widen_stem(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict:
    """A start model's weights for a network with more input channels (``relative_colour_px``):
    the first convolution's new inputs start at zero, so the network first gives exactly
    the start's outputs and training decides how much to use them."""
    name = "stem.0.weight"
    if name not in state or name not in target or state[name].shape == target[name].shape:
        return state
    have, wanted = state[name], target[name]
    same_filters = wanted.shape[0] == have.shape[0] and wanted.shape[2:] == have.shape[2:]
    if wanted.shape[1] < have.shape[1] or not same_filters:
        raise ValueError(
            f"start weights do not fit: {name} {tuple(have.shape)} -> {tuple(wanted.shape)}"
        )
    extra = have.new_zeros(have.shape[0], wanted.shape[1] - have.shape[1], *have.shape[2:])
    return {**state, name: torch.cat([have, extra], dim=1)}


def widen_head(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict:
    """A start model's weights for a network with more outputs: each extra output of the
    last layer starts as a copy of the lesion output (channel 1), so a two-output model
    can be fine-tuned into one that also gives the depigmented share.

    Args:
        state: the start model's state dict.
        target: the new network's state dict (shapes only are read).
    """
    widened = dict(state)
    for name, tensor in state.items():
        wanted = target.get(name)
        if wanted is None or wanted.shape == tensor.shape:
            continue
        if not (name.startswith("head.") and wanted.shape[1:] == tensor.shape[1:]):
            raise ValueError(
                f"start weights do not fit: {name} {tuple(tensor.shape)} -> {tuple(wanted.shape)}"
            )
        if wanted.shape[0] < tensor.shape[0] or tensor.shape[0] < 2:
            raise ValueError(
                f"cannot widen {name} from {tensor.shape[0]} to {wanted.shape[0]} outputs"
            )
        extra = tensor[1:2].expand(wanted.shape[0] - tensor.shape[0], *tensor.shape[1:])
        widened[name] = torch.cat([tensor, extra.clone()])
    return widened


def split_off_branch(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict:
    """A start model's weights for a network whose last outputs have a decoder of their own
    (``ResNetUNet(branch_outputs=k)``): the branch decoder starts as a copy of the shared
    decoder and the branch head as the start's last k head rows, so the new network first
    gives exactly the start's outputs. The start must already have all the outputs (see
    :func:`widen_head`); weights that already have a branch pass through unchanged.
    """
    if "branch_head.weight" not in target or "branch_head.weight" in state:
        return state
    branch = target["branch_head.weight"].shape[0]
    return _decoder_of_its_own(state, "branch", own=slice(-branch, None), shared=slice(-branch))


def split_off_skin(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict:
    """A start model's weights for a network whose skin output (the first) has a decoder of
    its own (``ResNetUNet(skin_branch=True)``): the skin decoder starts as a copy of the
    shared decoder and the skin head as the start's first head row, so the new network
    first gives exactly the start's outputs; weights that already have one pass unchanged.
    """
    if "skin_head.weight" not in target or "skin_head.weight" in state:
        return state
    return _decoder_of_its_own(state, "skin", own=slice(1), shared=slice(1, None))


def _decoder_of_its_own(state: dict, prefix: str, own: slice, shared: slice) -> dict:
    """``state`` with ``{prefix}_decoders`` copied from the shared decoder and the head
    rows ``own`` moved to ``{prefix}_head`` (the shared head keeps rows ``shared``)."""
    split = dict(state)
    for name, tensor in state.items():
        if name.startswith("decoders."):
            split[f"{prefix}_{name}"] = tensor.clone()
    for part in ("weight", "bias"):
        head = state[f"head.{part}"]
        split[f"head.{part}"] = head[shared].clone()
        split[f"{prefix}_head.{part}"] = head[own].clone()
    return split


def load_start_weights(model: nn.Module, folder: str | Path) -> None:
    """Initialise ``model`` from a model folder for fine-tuning: more outputs than the start
    are widened (:func:`widen_head`), decoders of their own are split off
    (:func:`split_off_branch`, :func:`split_off_skin`), a detail path the start lacks
    keeps its initialisation (its zero fuse leaves the start's outputs unchanged), and
    input channels the start lacks get zero weights (:func:`widen_stem`)."""
    start, _ = load_model_folder(folder)
    state, target = widen_stem(start.state_dict(), model.state_dict()), model.state_dict()
    if not any(name.startswith("detail.") for name in state):
        state.update({k: v for k, v in target.items() if k.startswith("detail.")})
    new_heads = [
        f"{prefix}_head"
        for prefix in ("skin", "branch")
        if f"{prefix}_head.weight" in target and f"{prefix}_head.weight" not in state
    ]
    if new_heads:
        # Widen to the total number of outputs first, as if they were all still shared.
        all_outputs = {
            f"head.{part}": torch.cat(
                [target[f"head.{part}"]] + [target[f"{head}.{part}"] for head in new_heads]
            )
            for part in ("weight", "bias")
        }
        state = widen_head(state, {**target, **all_outputs})
        state = split_off_skin(split_off_branch(state, target), target)
    model.load_state_dict(widen_head(state, target))
