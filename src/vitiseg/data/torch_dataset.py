"""PyTorch datasets over the vitiseg format, with per-pixel "annotated" maps.

A missing mask means "not annotated", so every sample carries, beside its targets,
a validity map per output that the loss uses to skip what nobody labelled:

- skin target: the skin mask where given; otherwise lesion pixels are known skin
  (lesions are skin), everything else unknown.
- lesion target: the lesion mask where given; otherwise pixels outside a given
  skin mask are known non-lesion, depigmented pixels known lesion, everything else unknown.
- depigmented target (third output, when the model has one): the depigmented mask where
  given; otherwise pixels outside a given lesion or skin mask are known not depigmented,
  everything else unknown. So real photos, whose polygons outline whole patches, teach
  the lesion output only, and painted photos with exact truth teach both.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from vitiseg.data.augment import swap_background
from vitiseg.data.box_edits import lighten_healthy_patch
from vitiseg.data.colour_constancy import channel_gains
from vitiseg.data.dataset_format import MASK_KINDS, Case
from vitiseg.data.network_input import normalised_chw
from vitiseg.data.resize import resize_long_side
from vitiseg.data.splits import deterministic_rng
from vitiseg.io.images import read_mask, read_rgb

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LoadedCase:
    """A case held in memory at working resolution.

    ``image``: (H, W, 3) uint8; ``targets`` and ``valid``: (3, H, W) uint8 (skin, lesion,
    depigmented); a two-output model uses the first two.
    """

    case: Case
    dataset: str
    image: np.ndarray
    targets: np.ndarray
    valid: np.ndarray
    # Channel factors from the whole photo (colour constancy), applied as it becomes input.
    gains: np.ndarray | None = None


def targets_from_masks(
    skin: np.ndarray | None,
    lesion: np.ndarray | None,
    shape: tuple[int, int],
    depigmented: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Targets and validity maps, both (3, H, W) uint8, from optional bool masks."""
    targets = np.zeros((3, *shape), np.uint8)
    valid = np.zeros((3, *shape), np.uint8)
    # Depigmented pixels lie in a lesion, and lesions in skin.
    inner = depigmented if lesion is None else lesion
    if depigmented is not None and lesion is not None:
        inner = lesion | depigmented
    if skin is not None:
        targets[0] = skin
        valid[0] = 1
        if inner is not None:
            targets[0] |= inner  # lesions count as skin even where a skin mask missed them
    elif inner is not None:
        targets[0] = inner
        valid[0] = inner
    if lesion is not None:
        targets[1] = inner
        valid[1] = 1
    else:
        if skin is not None:
            valid[1] = ~skin
        if depigmented is not None:
            targets[1] = depigmented
            valid[1] |= depigmented
    if depigmented is not None:
        targets[2] = depigmented
        valid[2] = 1
    else:
        for outer in (lesion, skin):
            if outer is not None:
                valid[2] |= ~outer
    return targets, valid


def outline_band(mask: np.ndarray, band_px: int) -> np.ndarray:
    """(H, W) bool: pixels within ``band_px`` of the edge of ``mask`` (either side)."""
    if band_px <= 0:
        return np.zeros(mask.shape, bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1, 2 * band_px + 1))
    binary = mask.astype(np.uint8)
    return cv2.dilate(binary, kernel).astype(bool) & ~cv2.erode(binary, kernel).astype(bool)


def load_case(
    case: Case,
    dataset: str,
    long_side: int,
    outline_band_px: int = 0,
    colour_constancy: str = "none",
) -> LoadedCase:
    """A case at working resolution. ``outline_band_px`` > 0 leaves the lesion target
    unlabelled within that many working-resolution pixels of the lesion mask's edge, for
    coarse hand-drawn polygons whose edges are guesses (training photos only).
    ``colour_constancy``: the whole photo's channel gains are kept with it, so a training
    crop is rescaled as the photo is at inference."""
    image = read_rgb(case.image_path)
    shape = image.shape[:2]
    masks = {}
    for kind in MASK_KINDS:
        path = case.mask_path(kind)
        if path is None:
            masks[kind] = None
            continue
        mask = read_mask(path)
        if mask.shape != shape:
            raise ValueError(f"{path}: mask size {mask.shape} differs from image {shape}")
        masks[kind] = mask
    targets, valid = targets_from_masks(
        masks["skin"], masks["lesion"], shape, masks["depigmented"]
    )
    image = resize_long_side(image, long_side)
    if image.shape[:2] != shape:  # the same size from the same shape, masks never blended
        targets = np.stack([resize_long_side(t, long_side, nearest=True) for t in targets])
        valid = np.stack([resize_long_side(v, long_side, nearest=True) for v in valid])
    if outline_band_px > 0 and masks["lesion"] is not None:
        valid[1] &= ~outline_band(targets[1], outline_band_px)
    return LoadedCase(case, dataset, image, targets, valid, channel_gains(image, colour_constancy))


def normalise(
    image: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    gains: np.ndarray | None = None,
) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 tensor, as inference makes it."""
    return torch.from_numpy(normalised_chw(image, mean, std, gains))


class SegmentationDataset(Dataset):
    """Augmented training samples: ``image`` (3, S, S), ``targets``/``valid`` (3, S, S).

    Random streams are derived from (seed, epoch, index): they differ across samples,
    epochs and workers, and a run is repeatable. A training epoch draws cases with
    replacement (:meth:`set_epoch`); samples are then indexed by draw, so a case drawn
    twice is augmented twice, differently.
    """

    def __init__(
        self,
        cases: Sequence[LoadedCase],
        transform: A.Compose | None,
        *,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        seed: int = 0,
        background_swap: float = 0.0,
        lighter_patch: float = 0.0,
        unlit_transform: A.Compose | None = None,
        unlit_depigmented_truth: bool = False,
        unlit_datasets: Collection[str] = (),
        relit_transform: A.Compose | None = None,
        relit_share: float = 0.0,
        relit_untaught: Sequence[int] = (),
    ) -> None:
        self.cases = list(cases)
        self.transform = transform
        # Used instead of ``transform`` (which re-lights) for the cases of ``unlit_datasets``
        # and, with ``unlit_depigmented_truth``, for cases whose depigmented mask is exact:
        # annotated everywhere (painted photos, and skin photos whose empty lesion mask makes
        # "no depigmentation" exact), not only known absent outside a lesion or skin mask.
        self.unlit_transform = unlit_transform
        self.unlit_depigmented_truth = unlit_depigmented_truth
        self.unlit_datasets = frozenset(unlit_datasets)
        # When given, ``transform`` must not re-light: a share ``relit_share`` of the photos not
        # spared takes this pipeline instead, and their masks of the outputs
        # ``relit_untaught`` (target indices) count as unannotated.
        self.relit_transform = relit_transform
        self.relit_share = relit_share
        self.relit_untaught = tuple(relit_untaught)
        self.background_swap = background_swap
        self.lighter_patch = lighter_patch
        self.mean, self.std = tuple(mean), tuple(std)
        self.seed = seed
        self.epoch = 0
        self.draws: list[int] | None = None

    def _spared_relighting(self, loaded: LoadedCase) -> bool:
        if loaded.dataset in self.unlit_datasets:
            return True
        return self.unlit_depigmented_truth and bool(loaded.valid[2].all())

    def set_epoch(self, epoch: int, draws: Sequence[int] | None = None) -> None:
        """Start an epoch. ``draws``: the case index of each of its samples (repeats
        allowed); None indexes the cases themselves."""
        self.epoch = epoch
        self.draws = None if draws is None else [int(i) for i in draws]

    def __len__(self) -> int:
        return len(self.cases) if self.draws is None else len(self.draws)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        loaded = self.cases[index if self.draws is None else self.draws[index]]
        image = loaded.image
        masks = [*loaded.targets, *loaded.valid]
        transform = self.transform
        spared = self.unlit_transform is not None and self._spared_relighting(loaded)
        if spared:
            transform = self.unlit_transform
        if transform is not None:
            rng = deterministic_rng(self.seed, self.epoch, index)
            # Only where skin is annotated everywhere is "not skin" known to be backdrop.
            # (No draw when off, so existing runs keep their random streams.)
            swap = self.background_swap and loaded.valid[0].all()
            if swap and rng.random() < self.background_swap:
                image = swap_background(image, loaded.targets[0], rng)
            if self.lighter_patch and rng.random() < self.lighter_patch:
                image = lighten_healthy_patch(image, loaded.targets, loaded.valid, rng)
            if self.relit_transform is not None and not spared and rng.random() < self.relit_share:
                transform = self.relit_transform
                for output in self.relit_untaught:
                    valid = len(loaded.targets) + output
                    masks[valid] = np.zeros_like(masks[valid])
            transform.set_random_state(rng, random.Random(int(rng.integers(2**63))))
            out = transform(image=image, masks=masks)
            image, masks = out["image"], out["masks"]
        stacked = np.stack(masks).astype(np.float32)
        outputs = len(loaded.targets)
        return {
            "image": normalise(image, self.mean, self.std, loaded.gains),
            "targets": torch.from_numpy(stacked[:outputs]),
            "valid": torch.from_numpy(stacked[outputs:]),
        }
