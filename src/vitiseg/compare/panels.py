"""Pictures of a comparison: colour-coded change map, side-by-side panel, blink GIF,
checkerboard of the alignment. All take and return (H, W, 3) uint8 RGB arrays (or bytes).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image

from vitiseg.compare.change import ChangeAreas, ChangeClass

# Okabe-Ito colours, told apart with the common colour-vision deficiencies.
CHANGE_COLOURS: dict[ChangeClass, tuple[int, int, int]] = {
    ChangeClass.STABLE: (240, 228, 66),  # yellow
    ChangeClass.REPIGMENTED: (0, 158, 115),  # bluish green
    ChangeClass.NEW: (213, 94, 0),  # vermillion
}
CHANGE_NAMES: dict[ChangeClass, str] = {
    ChangeClass.REPIGMENTED: "repigmented",
    ChangeClass.NEW: "newly depigmented",
    ChangeClass.STABLE: "stable depigmentation",
    ChangeClass.NOT_COMPARED: "not compared",
}
_NOT_COMPARED_GREY = (70, 70, 70)
_TEXT = (255, 255, 255)
_BAR = (30, 30, 30)


def change_map_image(
    labels: np.ndarray,
    background: np.ndarray | None = None,
    *,
    areas: ChangeAreas | None = None,
    opacity: float = 0.65,
) -> np.ndarray:
    """Colour the change map over the baseline photo and add a legend below it.

    Args:
        labels: (H, W) uint8 :class:`ChangeClass` map.
        background: (H, W, 3) uint8 RGB baseline photo; None = mid grey.
        areas: Areas to print in the legend (cm² when calibrated, else pixels).
        opacity: Colour opacity over the photo, in [0, 1].

    Returns:
        (H + legend height, W, 3) uint8 RGB.
    """
    height, width = labels.shape
    if background is None:
        background = np.full((height, width, 3), 128, np.uint8)
    if background.shape[:2] != labels.shape:
        raise ValueError(f"background {background.shape[:2]} differs from labels {labels.shape}")
    picture = background.astype(np.float32)
    for change, colour in CHANGE_COLOURS.items():
        where = labels == change
        picture[where] = (1 - opacity) * picture[where] + opacity * np.float32(colour)
    outside = labels == ChangeClass.NOT_COMPARED
    picture[outside] = 0.35 * picture[outside] + 0.65 * np.float32(_NOT_COMPARED_GREY)
    picture = picture.round().astype(np.uint8)
    entries = []
    for change in (ChangeClass.REPIGMENTED, ChangeClass.NEW, ChangeClass.STABLE):
        text = CHANGE_NAMES[change]
        if areas is not None:
            text += f" {_area_text(areas, change)}"
        entries.append((CHANGE_COLOURS[change], text))
    entries.append((_NOT_COMPARED_GREY, CHANGE_NAMES[ChangeClass.NOT_COMPARED]))
    return np.vstack([picture, _legend(width, entries)])


def side_by_side(
    images: Sequence[np.ndarray], titles: Sequence[str], banner: str | None = None
) -> np.ndarray:
    """Photos in a row at a common height, each with a title bar; an optional warning banner.

    Args:
        images: (H_i, W_i, 3) uint8 RGB arrays.
        titles: One title per image.
        banner: Text in a red bar across the top (e.g. an alignment warning).
    """
    if len(images) != len(titles) or not images:
        raise ValueError("side_by_side needs one title per image and at least one image")
    height = min(image.shape[0] for image in images)
    resized = [
        image
        if image.shape[0] == height
        else cv2.resize(
            image,
            (round(image.shape[1] * height / image.shape[0]), height),
            interpolation=cv2.INTER_AREA,
        )
        for image in images
    ]
    gap = np.full((height, max(4, height // 100), 3), 255, np.uint8)
    columns = []
    for index, (image, title) in enumerate(zip(resized, titles, strict=True)):
        if index:
            columns.append(
                np.vstack([np.full((_bar_height(height), gap.shape[1], 3), 255, np.uint8), gap])
            )
        columns.append(np.vstack([_text_bar(image.shape[1], title, _bar_height(height)), image]))
    panel = np.hstack(columns)
    if banner:
        panel = np.vstack(
            [_text_bar(panel.shape[1], banner, _bar_height(height), colour=(170, 20, 20)), panel]
        )
    return panel


def checkerboard(first: np.ndarray, second: np.ndarray, squares: int = 8) -> np.ndarray:
    """Alternate square tiles of two same-size images: edges that break at tile borders
    show misalignment. Returns (H, W, 3) uint8."""
    if first.shape != second.shape:
        raise ValueError(f"checkerboard needs equal shapes, got {first.shape}, {second.shape}")
    height, width = first.shape[:2]
    tile = max(1, max(height, width) // squares)
    rows = (np.arange(height) // tile)[:, None]
    cols = (np.arange(width) // tile)[None, :]
    pick_first = ((rows + cols) % 2 == 0)[..., None]
    return np.where(pick_first, first, second)


def blink_gif(
    frames: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    frame_ms: int = 900,
    max_side: int = 800,
) -> bytes:
    """A looping GIF that flips between same-size frames (a blink comparison).

    Args:
        frames: (H, W, 3) uint8 RGB images of equal size (e.g. baseline, aligned follow-up).
        titles: A caption burnt into each frame.
        frame_ms: Display time per frame in milliseconds.
        max_side: Frames are shrunk to this long side to keep the file small.

    Returns:
        The GIF file's bytes.
    """
    if len(frames) < 2 or len(frames) != len(titles):
        raise ValueError("blink_gif needs at least two frames and one title per frame")
    if len({frame.shape for frame in frames}) != 1:
        raise ValueError("blink_gif frames must have the same shape")
    height, width = frames[0].shape[:2]
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    pictures = []
    for frame, title in zip(frames, titles, strict=True):
        small = frame if scale == 1.0 else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        captioned = np.vstack([_text_bar(size[0], title, _bar_height(size[1])), small])
        pictures.append(Image.fromarray(captioned).quantize(colors=255, dither=Image.Dither.NONE))
    buffer = io.BytesIO()
    pictures[0].save(
        buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0
    )
    return buffer.getvalue()


def _area_text(areas: ChangeAreas, change: ChangeClass) -> str:
    name = {
        ChangeClass.REPIGMENTED: "repigmented",
        ChangeClass.NEW: "new",
        ChangeClass.STABLE: "stable",
    }[change]
    centimetres = getattr(areas, f"{name}_cm2")
    if centimetres is not None:
        return f"{centimetres:.2f} cm2"
    return f"{getattr(areas, f'{name}_px'):,} px"


def _bar_height(image_height: int) -> int:
    return int(np.clip(image_height // 14, 22, 64))


def _font_scale(bar_height: int) -> float:
    return bar_height / 40.0


def _text_bar(
    width: int, text: str, height: int, colour: tuple[int, int, int] = _BAR
) -> np.ndarray:
    bar = np.empty((height, width, 3), np.uint8)
    bar[:] = colour
    scale = _font_scale(height)
    thickness = max(1, round(scale * 1.5))
    (text_width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    if text_width > width - 8:  # shrink long text to fit
        scale *= (width - 8) / text_width
    cv2.putText(
        bar,
        text,
        (4, int(height * 0.7)),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        _TEXT,
        thickness,
        cv2.LINE_AA,
    )
    return bar


def _legend(width: int, entries: Sequence[tuple[tuple[int, int, int], str]]) -> np.ndarray:
    row = int(np.clip(width // 30, 22, 48))
    legend = np.full((row * len(entries) + row // 2, width, 3), 255, np.uint8)
    scale = _font_scale(row) * 0.9
    for index, (colour, text) in enumerate(entries):
        top = row // 4 + index * row
        cv2.rectangle(legend, (6, top + 3), (6 + row - 6, top + row - 3), colour, -1)
        cv2.putText(
            legend,
            text,
            (row + 8, top + int(row * 0.72)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            max(1, round(scale * 1.4)),
            cv2.LINE_AA,
        )
    return legend
