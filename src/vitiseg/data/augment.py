"""Albumentations pipelines. Masks are only ever moved with nearest-neighbour
(never interpolated), and padded borders are labelled "not skin, not lesion"."""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
from scipy import ndimage


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

    def __post_init__(self) -> None:
        if not 0 <= self.background_swap <= 1:
            raise ValueError(f"background_swap must lie in [0, 1], got {self.background_swap}")


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
            # Lighting and white balance vary between clinics and phones.
            A.RandomBrightnessContrast(0.25 * c, 0.25 * c, p=0.7 * min(c, 1)),
            A.RandomGamma((80, 125), p=0.3 * min(c, 1)),
            # Hue/saturation shifts stand in for skin tone and camera colour differences.
            A.HueSaturationValue(int(8 * c), int(25 * c), int(15 * c), p=0.6 * min(c, 1)),
            A.RGBShift(int(12 * c), int(12 * c), int(12 * c), p=0.3 * min(c, 1)),
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
