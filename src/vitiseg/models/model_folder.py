"""Self-contained model folders: ``weights.safetensors`` + ``metadata.json``.

Preprocessing, output names and thresholds travel with the weights, so training,
evaluation and clinic scoring cannot drift apart. Loading never touches the network
and never unpickles anything (safetensors).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from vitiseg import __version__
from vitiseg.io.atomic import write_bytes_atomic, write_json_atomic
from vitiseg.models.unet import OUTPUT_NAMES, build_model

FORMAT = "vitiseg-model/1"
WEIGHTS_NAME = "weights.safetensors"
METADATA_NAME = "metadata.json"


@dataclass(frozen=True)
class Preprocessing:
    """How a photo is turned into network input.

    ``long_side``: photos larger than this are shrunk to it for the network (the model
    was trained on whole-scene photos at about this scale); probabilities are resized
    back, so masks keep the photo's height and width. ``tile`` and ``overlap``: tiled
    inference at working resolution with Gaussian blending.
    """

    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    long_side: int = 512
    tile: int = 512
    overlap: float = 0.25


@dataclass(frozen=True)
class ModelMetadata:
    arch: str
    model_kwargs: dict[str, Any]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    output_names: tuple[str, ...] = OUTPUT_NAMES
    thresholds: dict[str, float] = field(default_factory=lambda: {"skin": 0.5, "lesion": 0.5})
    training: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)  # vitiseg-eval summaries
    provenance: str = ""
    package_version: str = __version__
    model_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model_id": self.model_id,
            "arch": self.arch,
            "model_kwargs": self.model_kwargs,
            "output_names": list(self.output_names),
            "preprocessing": {
                **self.preprocessing.__dict__,
                "mean": list(self.preprocessing.mean),
                "std": list(self.preprocessing.std),
            },
            "thresholds": self.thresholds,
            "training": self.training,
            "validation": self.validation,
            "evaluation": self.evaluation,
            "provenance": self.provenance,
            "package_version": self.package_version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        if data.get("format") != FORMAT:
            raise ValueError(f"unsupported model format {data.get('format')!r}, expected {FORMAT}")
        pre = dict(data.get("preprocessing", {}))
        pre["mean"] = tuple(pre.get("mean", Preprocessing.mean))
        pre["std"] = tuple(pre.get("std", Preprocessing.std))
        return cls(
            arch=data["arch"],
            model_kwargs=dict(data.get("model_kwargs", {})),
            preprocessing=Preprocessing(**pre),
            output_names=tuple(data.get("output_names", OUTPUT_NAMES)),
            thresholds=dict(data.get("thresholds", {"skin": 0.5, "lesion": 0.5})),
            training=dict(data.get("training", {})),
            validation=dict(data.get("validation", {})),
            evaluation=dict(data.get("evaluation", {})),
            provenance=str(data.get("provenance", "")),
            package_version=str(data.get("package_version", "")),
            model_id=str(data.get("model_id", "")),
        )


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


def load_metadata(folder: str | Path) -> ModelMetadata:
    path = Path(folder) / METADATA_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metadata.json; is {folder} a vitiseg model folder?")
    return ModelMetadata.from_dict(json.loads(path.read_text()))


def load_model_folder(folder: str | Path, device: str = "cpu") -> tuple[nn.Module, ModelMetadata]:
    """Build the network from metadata and load its weights (no pickle, no network)."""
    folder = Path(folder)
    metadata = load_metadata(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weights file missing")
    model = build_model(metadata.arch, **metadata.model_kwargs)
    state = load_file(str(weights), device="cpu")
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(state)
    return model.to(device).eval(), metadata
