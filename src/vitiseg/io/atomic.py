"""Atomic file writes: a reader never sees a half-written output, even after kill -9."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# mkstemp creates files readable by the owner only; outputs get the usual permissions.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        write(temporary_path)
        os.chmod(temporary_path, _FILE_MODE)
        with open(temporary_path, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary_path, path)
    except BaseException:
        temporary_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    _write_atomically(Path(path), lambda target: target.write_bytes(data))


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, payload: Any) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def write_tensors_atomic(path: str | Path, payload: dict[str, Any]) -> None:
    """``torch.save`` of tensors, numbers and strings only, so it loads back with
    ``weights_only=True``."""
    # Imported here: the image and JSON writers above must not pay torch's import time.
    import torch

    _write_atomically(Path(path), lambda target: torch.save(payload, target))


def write_png_atomic(path: str | Path, image: np.ndarray) -> None:
    """Write a lossless PNG. ``image``: (H, W) or (H, W, 3) uint8, RGB order, or an
    (H, W) bool mask, written as 0/255 like every mask in the dataset format."""
    if image.dtype == bool:
        # OpenCV would silently write a bool mask as 0/1.
        image = np.where(image, np.uint8(255), np.uint8(0))
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    write_bytes_atomic(path, encoded.tobytes())


def write_jpeg_atomic(path: str | Path, rgb: np.ndarray, quality: int = 90) -> None:
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    write_bytes_atomic(path, encoded.tobytes())
