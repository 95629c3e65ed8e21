"""Weight averaging ("model soup"): one model from several fine-tuned from the same start.

Runs fine-tuned from one start with different seeds stay in one basin of the loss, so the
mean of their weights works as a network, at the cost of one model at inference (Wortsman et
al., 2022, "Model soups", where it can match their ensemble; for vitiseg's stage 5 it scored
like the mean of its ingredients: docs/model_history.md, session 15). Averaging models that did not
share a start gives noise, so the folders must agree on everything but the weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from vitiseg.models.metadata import ModelMetadata
from vitiseg.models.model_folder import load_model_folder, save_model_folder

# What must be equal for two model folders to be averaged: the same network, fed the same
# way, cut at the same thresholds.
SAME_FIELDS = (
    "arch",
    "model_kwargs",
    "preprocessing",
    "output_names",
    "thresholds",
    "lesion_postprocess",
)


def average_state_dicts(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors (weights, BatchNorm statistics).

    Integer tensors (BatchNorm's batch counters) are not weights: the first state's are kept.
    """
    if not states:
        raise ValueError("nothing to average: no model weights given")
    names = list(states[0])
    for index, state in enumerate(states[1:], start=1):
        if list(state) != names:
            raise ValueError(f"model {index} has other layers than model 0")
    averaged = {}
    for name in names:
        tensors = [state[name] for state in states]
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise ValueError(f"{name}: shapes differ between models {sorted(shapes)}")
        if tensors[0].is_floating_point():
            averaged[name] = torch.stack([t.float() for t in tensors]).mean(0)
        else:
            averaged[name] = tensors[0].clone()
    return averaged


def _ingredient(folder: Path, metadata: ModelMetadata) -> dict:
    training = metadata.training
    config = training.get("config", {})
    return {
        "model_id": metadata.model_id,
        "folder": folder.name,
        "seed": config.get("trainer", {}).get("seed"),
        "epoch": training.get("epoch"),
        "minutes": training.get("minutes"),
    }


def average_model_folders(folders: Sequence[str | Path], out_folder: str | Path) -> ModelMetadata:
    """Write the weight average of ``folders`` as a new model folder.

    Its metadata is the first folder's with ``training.averaged`` listing every ingredient
    (id, seed, epoch, minutes), ``training.minutes`` their sum (each was trained), and no
    validation figures: the ingredients' figures do not describe the mean, so it has to be
    evaluated on its own (``vitiseg-eval``).
    """
    folders = [Path(folder) for folder in folders]
    if len(folders) < 2:
        raise ValueError("averaging needs at least two model folders")
    loaded = [load_model_folder(folder) for folder in folders]
    first_model, first_metadata = loaded[0]
    for folder, (_, metadata) in zip(folders[1:], loaded[1:], strict=True):
        for name in SAME_FIELDS:
            if getattr(metadata, name) != getattr(first_metadata, name):
                raise ValueError(
                    f"{folder}: {name} differs from {folders[0]}; only models fine-tuned "
                    "from one start with one config can be averaged"
                )
    first_model.load_state_dict(average_state_dicts([model.state_dict() for model, _ in loaded]))
    ingredients = [
        _ingredient(folder, metadata)
        for folder, (_, metadata) in zip(folders, loaded, strict=True)
    ]
    minutes = [item["minutes"] for item in ingredients]
    training = {
        **first_metadata.training,
        "averaged": ingredients,
        "minutes": sum(minutes) if None not in minutes else None,
        "exported": f"weight average of {len(folders)} models",
    }
    # Another network: what was measured or chosen for the first ingredient does not carry over.
    metadata = dataclasses.replace(
        first_metadata, training=training, validation={}, evaluation={}, quality={}, model_id=""
    )
    return save_model_folder(out_folder, first_model, metadata)
