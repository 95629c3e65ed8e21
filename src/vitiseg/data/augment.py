"""Albumentations pipelines. Masks are only ever moved with nearest-neighbour
(never interpolated), and padded borders are labelled "not skin, not lesion"."""

from __future__ import annotations

from dataclasses import dataclass, replace

import albumentations as A
import cv2
import numpy as np
from scipy import ndimage

from vitiseg.models.metadata import OUTPUT_NAMES_WITH_DEPIGMENTED

# The per-pixel outputs in target order (vitiseg.data.torch_dataset).
OUTPUTS: tuple[str, ...] = OUTPUT_NAMES_WITH_DEPIGMENTED


@dataclass(frozen=True)
class AugmentSettings:
    """Strength of training augmentation; ``crop`` is the training patch side in px."""

    crop: int = 288
    scale: tuple[float, float] = (0.7, 1.4)
    rotate_deg: float = 30.0
    colour: float = 1.0  # 0 disables colour/lighting changes, 1 = default strength
    noise_blur: float = 1.0
    # Probability of painting a plain light backdrop behind photos whose skin is fully
    # annotated: clinic walls, sheets and shirts are white, and web photos rarely are.
    background_swap: float = 0.0
    # Probability of re-toning a photo as paler skin (``pale_tone``): light skin is scarce in
    # the labelled photos. Off: at 0.3 it made light skin worse in cross-validation
    # (docs/model_history.md, session 11), so it is kept only to reproduce that result.
    pale_skin: float = 0.0
    # Probability of lightening a box of skin free of lesion (``lighten_healthy_patch``): a
    # hard negative for a model that calls anything lighter than its surroundings lesion.
    lighter_patch: float = 0.0
    # Probability of re-lighting a photo as under another illuminant (``PlanckianJitter``, a
    # black body drawn from ``white_balance_kelvin``): the shipped model loses half its
    # real lesion Dice when photos were made 10 % cooler (docs/model_history.md, session 48).
    white_balance: float = 0.0
    # From warm indoor light (red x1.19, blue x0.81 at 5000 K) to shade (x0.91, x1.26 at
    # 9000 K); the channel gains are relative to green.
    white_balance_kelvin: tuple[int, int] = (5000, 9000)
    # A re-lit photo's exposure gain, drawn from this range (all channels alike): a re-lit
    # photo also stands for one taken darker or brighter. (1, 1) leaves exposure alone.
    white_balance_exposure: tuple[float, float] = (1.0, 1.0)
    # Leave photos with an exact depigmented mask (painted) in their own colours: they teach
    # the depigmented output exact colours, and re-lighting all photos cost that output
    # 0.03-0.05 Dice (docs/model_history.md, session 48). Sparing them keeps that Dice but not the
    # palest skin's: any re-lighting cost type I 0.07-0.11 (session 49). Skin photos without
    # vitiligo have an exact (empty) depigmented mask too, so they are spared as well.
    white_balance_spares_depigmented_truth: bool = False
    # Dataset folders (their labels) whose photos are never re-lit: the choice by set that
    # the flag above makes by mask, e.g. the painted sets alone.
    white_balance_skip_datasets: tuple[str, ...] = ()
    # The outputs a re-lit photo teaches; its masks of the others count as unannotated. Without
    # "depigmented" that output keeps learning the photos' own colours while the others learn
    # to ignore the cast (docs/model_history.md, session 50).
    white_balance_teaches: tuple[str, ...] = OUTPUTS

    def __post_init__(self) -> None:
        unknown = sorted(set(self.white_balance_teaches) - set(OUTPUTS))
        if unknown:
            raise ValueError(f"white_balance_teaches: unknown outputs {unknown}; known {OUTPUTS}")
        for name in ("background_swap", "pale_skin", "lighter_patch", "white_balance"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        low, high = self.white_balance_kelvin
        if not 3000 <= low <= 6000 <= high <= 15000:
            # PlanckianJitter's table spans 3000-15000 K and must include its white, 6000 K.
            raise ValueError(
                "white_balance_kelvin must satisfy 3000 <= low <= 6000 <= high <= 15000, "
                f"got {self.white_balance_kelvin}"
            )
        low, high = self.white_balance_exposure
        if not 0.5 <= low <= high <= 2.0:
            raise ValueError(
                "white_balance_exposure must satisfy 0.5 <= low <= high <= 2, "
                f"got {self.white_balance_exposure}"
            )


def pale_tone(rgb: np.ndarray, lightness_gamma: float, chroma_scale: float) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 re-toned in CIELAB: L* -> 100 (L*/100)^gamma, a*, b* scaled.

    With gamma < 1 the curve is concave, so brown skin lightens much more than white
    patches already near the top; the gap between them shrinks as it does on light skin,
    without the label being used (a label-driven edit would paint the coarse polygons in).
    """
    lab = cv2.cvtColor(rgb.astype(np.float32) * (1 / 255.0), cv2.COLOR_RGB2LAB)
    lab[..., 0] = 100.0 * np.power(np.clip(lab[..., 0], 0, 100) / 100.0, lightness_gamma)
    lab[..., 1:] *= chroma_scale
    out = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


class PaleSkinTone(A.ImageOnlyTransform):
    """Albumentations wrapper of :func:`pale_tone` with random gamma and chroma scale."""

    def __init__(
        self,
        gamma_range: tuple[float, float] = (0.5, 0.8),
        chroma_range: tuple[float, float] = (0.5, 0.85),
        p: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        self.gamma_range = gamma_range
        self.chroma_range = chroma_range

    def get_params(self) -> dict[str, float]:
        return {
            "lightness_gamma": self.py_random.uniform(*self.gamma_range),
            "chroma_scale": self.py_random.uniform(*self.chroma_range),
        }

    def apply(self, img: np.ndarray, lightness_gamma: float, chroma_scale: float, **params):
        return pale_tone(img, lightness_gamma, chroma_scale)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("gamma_range", "chroma_range")


def white_balance_transforms(settings: AugmentSettings) -> list[A.BasicTransform]:
    # Left out entirely when off, so recipes trained without it draw the same random stream.
    if settings.white_balance <= 0:
        return []
    kelvin = tuple(settings.white_balance_kelvin)
    if tuple(settings.white_balance_exposure) == (1.0, 1.0):
        return [
            A.PlanckianJitter(mode="blackbody", temperature_limit=kelvin, p=settings.white_balance)
        ]
    relight_and_expose = [
        A.PlanckianJitter(mode="blackbody", temperature_limit=kelvin, p=1.0),
        A.MultiplicativeNoise(
            multiplier=tuple(settings.white_balance_exposure),
            per_channel=False,
            elementwise=False,
            p=1.0,
        ),
    ]
    return [A.Sequential(relight_and_expose, p=settings.white_balance)]


def training_transform(settings: AugmentSettings) -> A.Compose:
    """Geometry, lighting, colour, skin-tone and camera robustness."""
    c = settings.colour
    return A.Compose(
        [
            A.Affine(
                scale=settings.scale,
                rotate=(-settings.rotate_deg, settings.rotate_deg),
                shear=(-8, 8),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=0.8,
            ),
            A.PadIfNeeded(
                settings.crop, settings.crop, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0
            ),
            A.RandomCrop(settings.crop, settings.crop),
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.2),
            A.RandomRotate90(p=0.3),
            PaleSkinTone(p=settings.pale_skin),
            # Lighting and white balance vary between clinics and phones.
            A.RandomBrightnessContrast(0.25 * c, 0.25 * c, p=0.7 * min(c, 1)),
            A.RandomGamma((80, 125), p=0.3 * min(c, 1)),
            # Hue/saturation shifts stand in for skin tone and camera colour differences.
            A.HueSaturationValue(int(8 * c), int(25 * c), int(15 * c), p=0.6 * min(c, 1)),
            A.RGBShift(int(12 * c), int(12 * c), int(12 * c), p=0.3 * min(c, 1)),
            *white_balance_transforms(settings),
            A.ToGray(p=0.03 * min(c, 1)),
            A.OneOf(
                [
                    A.GaussianBlur(blur_limit=(3, 5)),
                    A.MotionBlur(blur_limit=5),
                    A.GaussNoise(std_range=(0.02, 0.06)),
                ],
                p=0.3 * settings.noise_blur,
            ),
            A.ImageCompression(quality_range=(55, 95), p=0.3 * settings.noise_blur),
        ]
    )


def unlit_transform(settings: AugmentSettings) -> A.Compose | None:
    """The pipeline for photos spared re-lighting (``white_balance_spares_depigmented_truth``,
    ``white_balance_skip_datasets``): :func:`training_transform` without it; None when no
    photo is spared."""
    spares = (
        settings.white_balance_spares_depigmented_truth or settings.white_balance_skip_datasets
    )
    if not (settings.white_balance > 0 and spares):
        return None
    return training_transform(replace(settings, white_balance=0.0))


def relit_transform(settings: AugmentSettings) -> A.Compose | None:
    """When re-lit photos teach only some outputs (``white_balance_teaches``), the pipeline
    that always re-lights: the dataset then picks it for a share ``white_balance`` of the
    photos itself (and hides their other masks), using a pipeline without re-lighting for
    the rest."""
    if settings.white_balance <= 0 or set(settings.white_balance_teaches) == set(OUTPUTS):
        return None
    return training_transform(replace(settings, white_balance=1.0))


def untaught_by_relit(settings: AugmentSettings) -> tuple[int, ...]:
    """Indices (skin 0, lesion 1, depigmented 2) of the outputs re-lit photos do not teach."""
    return tuple(i for i, name in enumerate(OUTPUTS) if name not in settings.white_balance_teaches)


def swap_background(image: np.ndarray, skin: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``image`` with everything outside ``skin`` replaced by a plain backdrop.

    The backdrop is a light, near-neutral colour (white to grey, slightly tinted) with a
    soft lighting gradient and sensor noise; its edge is feathered over a few pixels so the
    model cannot find skin by a hard cut. Skin pixels more than 2 px inside the skin edge
    are unchanged (the feathering blends the edge rows), and so are non-skin holes enclosed
    by skin (a navel, a piercing): a white blob inside skin labelled "not
    lesion" would teach the opposite of what the lesion output must learn.
    """
    height, width = skin.shape
    base = rng.uniform(150, 250) + rng.uniform(-12, 12, size=3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    slope = rng.uniform(-40, 40, size=2) / max(height, width)
    shade = (ys - height / 2) * slope[0] + (xs - width / 2) * slope[1]
    backdrop = base[None, None, :] + shade[..., None] + rng.normal(0, 3, (height, width, 3))
    backdrop = np.clip(backdrop, 0, 255)
    person = ndimage.binary_fill_holes(skin > 0)
    keep = cv2.GaussianBlur(person.astype(np.float32), (5, 5), 0)[..., None]
    blended = image.astype(np.float32) * keep + backdrop * (1 - keep)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
