"""Model metadata: what travels beside the weights (no torch needed to read it)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitiseg import __version__
from vitiseg.data.colour_constancy import check_colour_constancy
from vitiseg.quality.flags import check_model_quality

OUTPUT_NAMES = ("skin", "lesion")
# A third output separates what a clinician outlines from what is depigmented inside it:
# ``lesion`` is then the patch as annotators draw it (pigment islands included) and
# ``depigmented`` the pixels without pigment, the share VASI's level is read from.
OUTPUT_NAMES_WITH_DEPIGMENTED = ("skin", "lesion", "depigmented")


def output_names_for(out_channels: int) -> tuple[str, ...]:
    """The names of a network's outputs, by how many it has (2 or 3)."""
    if out_channels == 2:
        return OUTPUT_NAMES
    if out_channels == 3:
        return OUTPUT_NAMES_WITH_DEPIGMENTED
    raise ValueError(f"a vitiseg model has 2 or 3 outputs, not {out_channels}")


FORMAT = "vitiseg-model/1"
WEIGHTS_NAME = "weights.safetensors"
METADATA_NAME = "metadata.json"


@dataclass(frozen=True)
class Preprocessing:
    """How a photo is turned into network input.

    ``long_side``: photos larger than this are shrunk to it for the network (the model
    was trained on whole-scene photos at about this scale); probabilities are resized
    back, so masks keep the photo's height and width. ``tile`` and ``overlap``: tiled
    inference at working resolution with Gaussian blending. ``colour_constancy``: how
    each photo's colour channels are rescaled first (``none``, ``white_balance``, ``gain``).
    """

    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    long_side: int = 512
    tile: int = 512
    overlap: float = 0.25
    # Per-photo channel rescaling before the network (vitiseg.data.colour_constancy).
    colour_constancy: str = "none"

    def __post_init__(self) -> None:
        check_colour_constancy(self.colour_constancy)  # a typo fails on loading, not scoring


@dataclass(frozen=True)
class ModelMetadata:
    arch: str
    model_kwargs: dict[str, Any]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    output_names: tuple[str, ...] = OUTPUT_NAMES
    # Per output name; an output without an entry is cut at 0.5.
    thresholds: dict[str, float] = field(default_factory=lambda: {"skin": 0.5, "lesion": 0.5})
    # Lesion mask clean-up (vitiseg.inference.postprocess.LesionPostprocess); {} = none.
    lesion_postprocess: dict[str, Any] = field(default_factory=dict)
    # Quality flag thresholds chosen for this model (keys of vitiseg.quality.QualityConfig,
    # e.g. by scripts/uncertain_skin_study.py --record); a command's quality config takes
    # them for every key it leaves null.
    quality: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    # vitiseg-eval summaries; "retake_noise": how comparisons of unchanged photos moved
    # (vitiseg.compare.retake)
    evaluation: dict[str, Any] = field(default_factory=dict)
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
            "lesion_postprocess": self.lesion_postprocess,
            "quality": self.quality,
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
            lesion_postprocess=dict(data.get("lesion_postprocess", {})),
            quality=check_model_quality(data.get("quality")),  # a typo fails on loading
            training=dict(data.get("training", {})),
            validation=dict(data.get("validation", {})),
            evaluation=dict(data.get("evaluation", {})),
            provenance=str(data.get("provenance", "")),
            package_version=str(data.get("package_version", "")),
            model_id=str(data.get("model_id", "")),
        )


def load_metadata(folder: str | Path) -> ModelMetadata:
    path = Path(folder) / METADATA_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metadata.json; is {folder} a vitiseg model folder?")
    try:
        return ModelMetadata.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, KeyError) as error:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path}: not a usable vitiseg metadata.json ({error})") from error
