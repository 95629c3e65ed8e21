"""Albumentations pipelines. Masks are only ever moved with nearest-neighbour
(never interpolated), and padded borders are labelled "not skin, not lesion"."""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2


@dataclass(frozen=True)
class AugmentSettings:
    """Strength of training augmentation; ``crop`` is the training patch side in px."""

    crop: int = 288
    scale: tuple[float, float] = (0.7, 1.4)
    rotate_deg: float = 30.0
    colour: float = 1.0  # 0 disables colour/lighting changes, 1 = default strength
    noise_blur: float = 1.0


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
