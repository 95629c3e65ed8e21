"""Build a predictor from a model folder (or the shipped default) and inference settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vitiseg.inference.depigmentation import MIN_LIFT
from vitiseg.inference.onnx_backend import make_backend
from vitiseg.inference.predictor import Predictor
from vitiseg.models.metadata import load_metadata
from vitiseg.paths import default_model_dir


def resolve_model_dir(checkpoint: str | Path | None) -> Path:
    """The named model folder, or the shipped default; a clear error when neither exists."""
    folder = Path(checkpoint).expanduser().resolve() if checkpoint else default_model_dir()
    if not (folder / "metadata.json").is_file():
        if checkpoint:
            raise FileNotFoundError(f"{folder}: not a vitiseg model folder (no metadata.json)")
        raise FileNotFoundError(
            f"no default model found at {folder}; pass checkpoint=MODEL_FOLDER "
            "(a training run's OUTPUT/model) or train one with vitiseg-train"
        )
    return folder


def predictor_from_config(checkpoint: str | Path | None, infer: Any) -> tuple[Predictor, Path]:
    """``infer``: mapping with device, tta, scales, long_side, tile, batch_size, threads,
    backend (``torch``, ``onnx`` or ``onnx-int8``; default ``torch``) and
    onnx_memory_arena (default off)."""
    threads = int(infer.get("threads") or 0)
    if threads and (infer.get("backend") or "torch") == "torch":
        import torch  # only the PyTorch backend needs it

        torch.set_num_threads(threads)
    folder = resolve_model_dir(checkpoint)
    device = infer.get("device", "cpu")
    backend = make_backend(
        folder,
        infer.get("backend") or "torch",
        device,
        threads,
        tile=infer.get("tile"),
        memory_arena=bool(infer.get("onnx_memory_arena", False)),
    )
    predictor = Predictor(
        backend,
        load_metadata(folder),
        long_side=infer.get("long_side"),
        tile=infer.get("tile"),
        batch_size=int(infer.get("batch_size", 4)),
        tta=bool(infer.get("tta", False)),
        scales=tuple(infer.get("scales") or (1.0,)),
        depigmented_source=infer.get("depigmented_source") or "model",
        colour_min_lift=float(infer.get("colour_min_lift", MIN_LIFT)),
    )
    return predictor, folder
