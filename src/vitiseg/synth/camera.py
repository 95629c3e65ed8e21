"""The last step of every generated photo: JPEG encoding, and what a reader will decode."""

from __future__ import annotations

import cv2
import numpy as np


def encode_jpeg(rgb: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
    """Encode (H, W, 3) uint8 RGB as JPEG; return the bytes and the decoded RGB image."""
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return encoded.tobytes(), decoded
