"""Turn an RGB photo into per-pixel skin and lesion probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vitiseg.data.colour_constancy import channel_gains
from vitiseg.data.network_input import normalised_chw
from vitiseg.data.resize import resize_long_side
from vitiseg.inference.depigmentation import MIN_LIFT, depigmented_by_colour
from vitiseg.inference.postprocess import LesionPostprocess, keep_seeded_components, lesion_mask
from vitiseg.inference.tiling import predict_tiled
from vitiseg.models.metadata import ModelMetadata

# Flips used for test-time augmentation: (flip height axis, flip width axis).
TTA_FLIPS = ((False, False), (False, True), (True, False), (True, True))


# Where the depigmented pixels inside a lesion come from (docs/model_history.md, session 18).
DEPIGMENTED_SOURCES = ("model", "colour")


@dataclass(frozen=True)
class Prediction:
    """Probabilities at the photo's own size: ``skin``, ``lesion`` (H, W) float32 in [0, 1];
    ``uncertainty`` (H, W) float32, the spread of lesion probability over TTA (None without);
    ``depigmented`` (H, W) float32 from a three-output model, whose ``lesion`` is then the
    outlined patch (None from a two-output model, whose ``lesion`` is the depigmented skin)."""

    skin: np.ndarray
    lesion: np.ndarray
    uncertainty: np.ndarray | None = None
    depigmented: np.ndarray | None = None


class TorchBackend:
    """Runs a PyTorch model on batches of tiles, in inference mode, channels-last."""

    def __init__(self, model, device: str = "cpu", *, bf16: bool = False) -> None:
        import torch  # imported here so the ONNX path never loads torch

        self.torch = torch
        # The networks pad to their own stride, so any multiple of it works. Taken from the
        # model as export_onnx does, so both backends pad a small photo alike.
        self.any_size_stride = int(getattr(model, "stride", 32))
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().to(memory_format=torch.channels_last)
        # bf16 autocast: weights stay fp32, convolutions run in bf16 (native on CPUs with
        # AVX512-BF16/AMX; elsewhere emulated and slower than fp32).
        self.bf16 = bf16
        # Recorded with the scores: bf16 gives slightly different masks than fp32.
        self.name = "torch-bf16" if bf16 else "torch"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16),
        ):
            tensor = torch.from_numpy(batch).to(self.device)
            tensor = tensor.contiguous(memory_format=torch.channels_last)
            return torch.sigmoid(self.model(tensor).float()).cpu().numpy()


def backend_name(backend) -> str:
    """The backend's ``name`` (``torch``, ``torch-bf16``, ``onnx``, ``onnx-int8``); wrappers
    and test doubles without one are named by their class."""
    return getattr(backend, "name", None) or type(backend).__name__


def _rescaled(rgb: np.ndarray, scale: float) -> np.ndarray:
    """``rgb`` resized by ``scale`` (area average to shrink, bilinear to enlarge)."""
    height, width = rgb.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, size, interpolation=interpolation)


def _resized_channels(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(C, h, w) float32 maps resized bilinearly to (C, *shape)."""
    resized = np.empty((len(maps), *shape), np.float32)
    for channel in range(len(maps)):
        cv2.resize(
            np.ascontiguousarray(maps[channel]),
            (shape[1], shape[0]),
            dst=resized[channel],
            interpolation=cv2.INTER_LINEAR,
        )
    return resized


class Predictor:
    """Photo in, probabilities out, with the model's own preprocessing.

    Args:
        backend: callable (B, 3, T, T) float32 -> (B, C, T, T) probabilities, one per output.
        metadata: the model folder's metadata (normalisation, working size, tiles).
        long_side: override of the working resolution; 0 means the photo's own size.
        tta: average over flips and report their spread as uncertainty.
        scales: factors of the working size to run the photo at (enlarging allowed); the
            probabilities are averaged over all of them (and over the flips with ``tta``);
            the uncertainty stays the spread over flips, pooled over the sizes.
    """

    def __init__(
        self,
        backend,
        metadata: ModelMetadata,
        *,
        long_side: int | None = None,
        tile: int | None = None,
        batch_size: int = 4,
        tta: bool = False,
        scales: tuple[float, ...] = (1.0,),
        depigmented_source: str = "model",
        colour_min_lift: float = MIN_LIFT,
    ) -> None:
        if depigmented_source not in DEPIGMENTED_SOURCES:
            raise ValueError(
                f"depigmented_source must be one of {DEPIGMENTED_SOURCES}, "
                f"not {depigmented_source!r}"
            )
        self.depigmented_source = depigmented_source
        self.colour_min_lift = colour_min_lift
        self.backend = backend
        self.metadata = metadata
        pre = metadata.preprocessing
        self.long_side = pre.long_side if long_side is None else long_side
        self.tile = tile or pre.tile
        self.overlap = pre.overlap
        self.batch_size = batch_size
        self.tta = tta
        if not scales or any(not 0.25 <= float(scale) <= 4 for scale in scales):
            raise ValueError(f"scales must be factors between 0.25 and 4, not {scales!r}")
        self.scales = tuple(float(scale) for scale in scales)

    @classmethod
    def from_folder(cls, folder: str | Path, device: str = "cpu", **kwargs) -> Predictor:
        from vitiseg.models.model_folder import load_model_folder

        model, metadata = load_model_folder(folder, device)
        return cls(TorchBackend(model, device), metadata, **kwargs)

    def _probabilities(self, image: np.ndarray, scale: float = 1.0) -> np.ndarray:
        stride = getattr(self.backend, "any_size_stride", None)
        tile = self.tile
        if stride and scale > 1:
            # An enlarged pass keeps the same tiles as the working size (one tile stays one).
            tile = -(-round(self.tile * scale) // stride) * stride
        return predict_tiled(
            image,
            self.backend,
            tile=tile,
            overlap=self.overlap,
            batch_size=self.batch_size,
            out_channels=len(self.metadata.output_names),
            any_size_stride=stride,
        )

    def predict(self, rgb: np.ndarray) -> Prediction:
        """Args: rgb (H, W, 3) uint8. Returns probabilities at (H, W)."""
        height, width = rgb.shape[:2]
        work = resize_long_side(rgb, self.long_side) if self.long_side else rgb
        pre = self.metadata.preprocessing
        work_shape = work.shape[:2]
        flips = TTA_FLIPS if self.tta else ((False, False),)
        outputs = len(self.metadata.output_names)
        probabilities = np.zeros((outputs, *work_shape), np.float32)
        # Running means and the lesion's variance over the flips within each size (Welford):
        # the uncertainty stays the flips' spread, whatever sizes are averaged.
        flip_m2 = np.zeros(work_shape, np.float32)
        count = 0
        # From the whole photo at working size, as in training; the same for every size.
        gains = channel_gains(work, pre.colour_constancy)
        for scale in self.scales:
            scaled = work if scale == 1 else _rescaled(work, scale)
            image = normalised_chw(scaled, pre.mean, pre.std, gains)
            lesion_mean = np.zeros(work_shape, np.float32)
            for flip_count, (flip_h, flip_w) in enumerate(flips, start=1):
                axes = tuple(a for a, f in ((1, flip_h), (2, flip_w)) if f)
                flipped = np.ascontiguousarray(np.flip(image, axes)) if axes else image
                out = self._probabilities(flipped, scale)
                out = np.flip(out, axes) if axes else out
                if scale != 1:
                    out = _resized_channels(out, work_shape)
                count += 1
                probabilities += (out - probabilities) / count
                delta = out[1] - lesion_mean
                lesion_mean += delta / flip_count
                flip_m2 += delta * (out[1] - lesion_mean)
        uncertainty = np.sqrt(flip_m2 / count) if self.tta else None
        del image
        if probabilities.shape[1:] != (height, width):
            probabilities = _resized_channels(probabilities, (height, width))
            if uncertainty is not None:
                uncertainty = cv2.resize(
                    uncertainty, (width, height), interpolation=cv2.INTER_LINEAR
                )
        return Prediction(
            skin=probabilities[0],
            lesion=probabilities[1],
            uncertainty=uncertainty,
            depigmented=probabilities[2] if len(probabilities) > 2 else None,
        )

    def masks(
        self, prediction: Prediction, rgb: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Thresholded (skin, lesion) bool masks, the lesion cleaned up as the model's
        metadata says (a colour refinement needs the photo, ``rgb``); lesion is kept inside
        skin ∪ lesion."""
        thresholds = self.metadata.thresholds
        skin_threshold = thresholds.get("skin", 0.5)
        lesion = lesion_mask(
            prediction.lesion,
            prediction.skin,
            thresholds.get("lesion", 0.5),
            LesionPostprocess.from_dict(self.metadata.lesion_postprocess),
            rgb=rgb,
            skin_threshold=skin_threshold,
        )
        skin = (prediction.skin >= skin_threshold) | lesion
        return skin, lesion

    def segment(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Photo -> (skin, lesion, depigmented or None) bool masks (see :meth:`masks`)."""
        return self.segmentation(self.predict(rgb), rgb)

    def segmentation(
        self, prediction: Prediction, rgb: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(skin, lesion, depigmented or None) bool masks of ``rgb`` from its probabilities."""
        skin, lesion = self.masks(prediction, rgb)
        return skin, lesion, self.depigmented_mask(prediction, lesion, rgb, skin)

    def depigmented_mask(
        self, prediction: Prediction, lesion: np.ndarray, rgb: np.ndarray, skin: np.ndarray
    ) -> np.ndarray | None:
        """The depigmented pixels inside the lesion mask (masks from :meth:`masks`).

        ``depigmented_source="colour"``: pixels lighter than the normal skin around them
        (:func:`~vitiseg.inference.depigmentation.depigmented_by_colour`); where no normal
        skin is visible, the model's output stands in. ``"model"``: the model's
        depigmented output at ``thresholds["depigmented"]``; with
        ``thresholds["depigmented_seed"]`` only patches holding a pixel at or above it
        (hysteresis, :func:`~vitiseg.inference.postprocess.keep_seeded_components`).
        None for a two-output model without a colour rule, whose
        lesion mask is itself the depigmented skin.
        """
        if self.depigmented_source == "colour":
            by_colour = depigmented_by_colour(rgb, skin, lesion, min_lift=self.colour_min_lift)
            if by_colour is not None:
                return by_colour
        if prediction.depigmented is None:
            return None
        thresholds = self.metadata.thresholds
        mask = (prediction.depigmented >= thresholds.get("depigmented", 0.5)) & lesion
        seed = thresholds.get("depigmented_seed")
        if seed is not None:
            mask = keep_seeded_components(mask, prediction.depigmented >= seed)
        return mask
