"""Overlays a clinician can read: lesion outlines, skin boundary and a legend."""

from __future__ import annotations

import cv2
import numpy as np

from vitiseg.data.resize import resize_long_side

# RGB. Magenta stays visible on white (depigmented) and on every skin tone; cyan differs
# from it for the common colour-vision deficiencies.
LESION_COLOUR = (255, 0, 255)
SKIN_COLOUR = (0, 220, 255)
LESION_FILL_ALPHA = 0.25
LEGEND = (("depigmented (lesion) outline", LESION_COLOUR), ("skin boundary", SKIN_COLOUR))
# A model with a depigmented output: outlines are whole patches, the tint what lost pigment.
LEGEND_WITH_DEPIGMENTED = (
    ("patch outline (tinted: depigmented)", LESION_COLOUR),
    ("skin boundary", SKIN_COLOUR),
)


def shrink_long_side(image: np.ndarray, long_side: int, *, nearest: bool = False) -> np.ndarray:
    """Shrink so that max(H, W) <= ``long_side`` (never enlarge; 0 = keep the size).

    Args:
        image: (H, W) or (H, W, C) array.
        long_side: Target long side in px.
        nearest: Use nearest-neighbour (for masks) instead of area averaging.
    """
    if long_side <= 0:
        return image
    return resize_long_side(image, long_side, nearest=nearest)


def _contours(mask: np.ndarray) -> list[np.ndarray]:
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    return list(contours)


def draw_overlay(
    rgb: np.ndarray,
    skin: np.ndarray,
    lesion: np.ndarray,
    *,
    long_side: int = 2000,
    legend: bool = True,
    depigmented: np.ndarray | None = None,
) -> np.ndarray:
    """Photo with a light lesion fill, lesion outlines and the skin boundary.

    Args:
        rgb: (H, W, 3) uint8 RGB photo.
        skin: (H, W) bool skin mask (lesions included).
        lesion: (H, W) bool depigmented mask.
        long_side: The overlay is shrunk to this long side in px (0 = full size), so a
            12 MP photo gives a viewable file.
        legend: Add a white band below the photo explaining the colours.
        depigmented: (H, W) bool depigmented pixels from a model with that output, whose
            ``lesion`` outlines whole patches: only these are tinted. None: tint ``lesion``.

    Returns:
        (h, w, 3) uint8 RGB, h including the legend band.
    """
    canvas = shrink_long_side(rgb, long_side).copy()
    height, width = canvas.shape[:2]
    # The same size as the canvas, centre-sampled so the outlines sit on the photo.
    skin_small = shrink_long_side(skin.astype(np.uint8), long_side, nearest=True)
    lesion_small = shrink_long_side(lesion.astype(np.uint8), long_side, nearest=True)
    tinted = lesion_small
    if depigmented is not None:
        tinted = shrink_long_side(depigmented.astype(np.uint8), long_side, nearest=True)
    if tinted.any():
        filled = tinted.astype(bool)
        tint = np.asarray(LESION_COLOUR, np.float32)
        canvas[filled] = (
            canvas[filled] * (1 - LESION_FILL_ALPHA) + tint * LESION_FILL_ALPHA
        ).astype(np.uint8)
    thickness = max(1, round(max(height, width) / 400))
    cv2.drawContours(canvas, _contours(skin_small), -1, SKIN_COLOUR, thickness, cv2.LINE_AA)
    cv2.drawContours(
        canvas, _contours(lesion_small), -1, LESION_COLOUR, thickness + 1, cv2.LINE_AA
    )
    if not legend:
        return canvas
    entries = LEGEND if depigmented is None else LEGEND_WITH_DEPIGMENTED
    return np.concatenate([canvas, legend_band(width, entries)], axis=0)


def legend_band(
    width: int, entries: tuple[tuple[str, tuple[int, int, int]], ...] = LEGEND
) -> np.ndarray:
    """(h, width, 3) uint8 white band naming the overlay colours, readable at any width."""
    scale = max(0.45, min(1.4, width / 1400))
    line_height = int(round(34 * scale)) + 6
    band = np.full((line_height * len(entries) + 8, width, 3), 255, np.uint8)
    sample = int(round(40 * scale))
    for row, (label, colour) in enumerate(entries):
        y = 4 + row * line_height + line_height // 2
        cv2.line(band, (8, y), (8 + sample, y), colour, max(3, int(round(5 * scale))))
        cv2.putText(
            band,
            label,
            (16 + sample, y + int(round(8 * scale))),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (20, 20, 20),
            max(1, int(round(1.5 * scale))),
            cv2.LINE_AA,
        )
    return band


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 RGB image."""
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise OSError("JPEG encoding failed")
    return encoded.tobytes()
