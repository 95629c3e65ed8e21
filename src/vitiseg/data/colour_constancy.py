"""Per-photo colour constancy: each colour channel rescaled so its mean over the photo
matches the training photos' mean colour (grey world).

A white balance or an exposure change multiplies whole colour channels, so the rescaled
photo is the same whatever the camera's setting (up to clipped pixels). ``white_balance``
evens out the channels' ratios only and keeps the photo's level (which carries the skin
type); ``gain`` sets the level too. The gains are taken from the whole photo at working
size, in training as at inference, and applied as the photo becomes network input.
"""

from __future__ import annotations

import numpy as np

COLOUR_CONSTANCY = ("none", "white_balance", "gain")

# Mean colour (RGB, 0..1) of the vitiligo-web and skin-photos photos: an average photo passes
# unchanged, so a model fine-tuned from one without rescaling starts near its old output.
REFERENCE_RGB = (0.58, 0.48, 0.43)


def check_colour_constancy(mode: str) -> str:
    if mode not in COLOUR_CONSTANCY:
        raise ValueError(f"colour_constancy={mode!r}: choose one of {COLOUR_CONSTANCY}")
    return mode


def channel_gains(rgb: np.ndarray, mode: str) -> np.ndarray | None:
    """(3,) float32 factors for the channels of an (H, W, 3) RGB photo; None for ``none``
    (the photo is used as it is)."""
    check_colour_constancy(mode)
    if mode == "none":
        return None
    means = rgb.reshape(-1, 3).mean(axis=0, dtype=np.float64)
    scale = 255.0 if rgb.dtype == np.uint8 else 1.0
    means = np.maximum(means / scale, 1 / 255)
    target = np.asarray(REFERENCE_RGB, np.float64)
    if mode == "white_balance":
        target = target * (means.mean() / target.mean())  # the reference's tint, the photo's level
    return (target / means).astype(np.float32)
