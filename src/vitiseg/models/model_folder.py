"""Self-contained model folders: ``weights.safetensors`` + ``metadata.json``.

Preprocessing, output names and thresholds travel with the weights, so training,
evaluation and clinic scoring cannot drift apart. Loading never touches the network
and never unpickles anything (safetensors).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

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
    "save_model_folder",
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
