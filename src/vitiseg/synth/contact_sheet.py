"""Contact sheet of a dataset: each photo beside a copy with its skin and lesion outlines."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vitiseg.data.dataset_format import load_dataset
from vitiseg.io.atomic import write_bytes_atomic
from vitiseg.io.images import read_mask, read_rgb

log = logging.getLogger(__name__)

_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI"}
_LESION_COLOUR = (255, 230, 0)
_SKIN_COLOUR = (0, 200, 255)


def _fit(image: np.ndarray, side: int, interpolation: int) -> np.ndarray:
    """Resize so the longer side is ``side`` and pad to a ``side`` x ``side`` square."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    canvas = np.zeros((side, side, *image.shape[2:]), dtype=image.dtype)
    top, left = (side - new_h) // 2, (side - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


def _outlined(thumb: np.ndarray, skin: np.ndarray | None, lesion: np.ndarray | None) -> np.ndarray:
    out = thumb.copy()
    for mask, colour in ((skin, _SKIN_COLOUR), (lesion, _LESION_COLOUR)):
        if mask is None:
            continue
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE
        )
        cv2.drawContours(out, contours, -1, colour, 1, cv2.LINE_8)
    return out


def _caption(width: int, text: str) -> np.ndarray:
    strip = np.full((14, width, 3), 255, dtype=np.uint8)
    cv2.putText(strip, text, (3, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def make_contact_sheet(
    dataset_dir: str | Path,
    out_path: str | Path,
    count: int = 24,
    columns: int = 4,
    thumb_px: int = 144,
) -> Path:
    """Write a PNG grid of photos, each beside its outlined copy, spread over skin types.

    Cases are ordered by the ITA in ``truth.json`` (lightest first) and ``count`` of them
    are taken at even steps, so every skin type shows. Skin outlines are cyan, lesion
    outlines yellow; the caption gives the case, Fitzpatrick type, ITA and patch levels.
    The sheet is saved as a 256-colour PNG (small enough for documentation).

    Args:
        dataset_dir: A dataset written by :func:`vitiseg.synth.generate_dataset`.
        out_path: PNG file to write.
        count: Number of cases shown.
        columns: Cases per row (each case takes two thumbnails).
        thumb_px: Side of each thumbnail in pixels.

    Returns:
        ``out_path`` as a Path.
    """
    dataset_dir, out_path = Path(dataset_dir), Path(out_path)
    cases = {case.case_id: case for case in load_dataset(dataset_dir)}
    truth_path = dataset_dir / "truth.json"
    truth = json.loads(truth_path.read_text())["cases"] if truth_path.is_file() else {}
    ordered = sorted(cases, key=lambda cid: (-truth.get(cid, {}).get("ita_deg", 0.0), cid))
    if len(ordered) > count:
        picks = np.linspace(0, len(ordered) - 1, count).round().astype(int)
        ordered = [ordered[i] for i in picks]
    tiles = []
    for case_id in ordered:
        case = cases[case_id]
        image = _fit(read_rgb(case.image_path), thumb_px, cv2.INTER_AREA)
        masks = []
        for path in (case.skin_mask_path, case.lesion_mask_path):
            if path is None:
                masks.append(None)
                continue
            mask = _fit(read_mask(path).astype(np.uint8), thumb_px, cv2.INTER_NEAREST)
            masks.append(mask > 0)
        entry = truth.get(case_id, {})
        levels = ",".join(f"{p['level']:g}" for p in entry.get("patches", []))
        skin_type = _ROMAN.get(int(entry.get("fitzpatrick") or 0), "?")
        text = (
            f"{case_id[-8:]} {skin_type} ITA {entry.get('ita_deg', float('nan')):.0f} [{levels}]"
        )
        pair = np.hstack(
            [image, np.full((thumb_px, 2, 3), 255, np.uint8), _outlined(image, *masks)]
        )
        tiles.append(np.vstack([pair, _caption(pair.shape[1], text)]))
    if not tiles:
        raise ValueError(f"{dataset_dir}: no cases to show")
    blank = np.full_like(tiles[0], 255)
    rows = []
    for start in range(0, len(tiles), columns):
        row = tiles[start : start + columns]
        row += [blank] * (columns - len(row))
        spaced = []
        for tile in row:
            spaced += [tile, np.full((tile.shape[0], 6, 3), 255, np.uint8)]
        rows += [
            np.hstack(spaced[:-1]),
            np.full((6, sum(t.shape[1] for t in spaced[:-1]), 3), 255, np.uint8),
        ]
    sheet = np.vstack(rows[:-1])
    # A 256-colour palette keeps documentation sheets small and is ample for a preview.
    buffer = io.BytesIO()
    image = Image.fromarray(sheet)
    palette = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    # Dithering against that palette avoids posterised bands in smooth skin.
    image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(
        buffer, format="PNG", optimize=True
    )
    write_bytes_atomic(out_path, buffer.getvalue())
    log.info("contact sheet of %d cases: %s", len(tiles), out_path)
    return out_path
