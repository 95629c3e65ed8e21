"""Reading photos and masks safely: EXIF rotation, any bit depth, bombs refused.

Every failure raises :class:`ImageReadError` whose message names the file and the
problem, so a batch can report it and go on.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps

# A header that claims more than this is refused before any pixel is decoded
# (a 100 MP camera photo still fits; a 20-byte file that claims 60000x60000 does not).
DEFAULT_MAX_PIXELS = 120_000_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")

ImageFile.LOAD_TRUNCATED_IMAGES = False
# We apply our own limit first; Pillow's own warning/limit would only duplicate it.
Image.MAX_IMAGE_PIXELS = None


class ImageReadError(ValueError):
    """A photo or mask could not be read; the message names the file and why."""


def _header_size(path: Path, max_pixels: int) -> tuple[int, int]:
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: file is empty (0 bytes)")
    try:
        with Image.open(path) as header:
            width, height = header.size
    except Exception as exc:  # Pillow raises many types for non-images
        raise ImageReadError(
            f"{path}: not a readable image ({exc.__class__.__name__}: {exc})"
        ) from exc
    if width <= 0 or height <= 0:
        raise ImageReadError(f"{path}: image header gives an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageReadError(
            f"{path}: header claims {width}x{height} = {width * height:,} pixels, over the "
            f"limit of {max_pixels:,}; refused as a possible decompression bomb"
        )
    return width, height


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    # Any byte order: a big-endian TIFF (Pillow's I;16B) gives '>u2', which is not np.uint16.
    if array.dtype.kind == "u" and array.dtype.itemsize == 2:
        return (array >> 8).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        top = max(int(array.max()), 1)
        shift = max(int(np.ceil(np.log2(top + 1))) - 8, 0)
        return np.clip(array >> shift, 0, 255).astype(np.uint8)
    scale = 255.0 if float(np.nanmax(array)) <= 1.0 else 1.0
    return np.clip(np.nan_to_num(array) * scale, 0, 255).astype(np.uint8)


def _decode_with_opencv(path: Path) -> np.ndarray:
    # OpenCV applies EXIF orientation unless IMREAD_UNCHANGED is given.
    data = np.fromfile(path, dtype=np.uint8)
    decoded = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    if decoded is None:
        raise ImageReadError(f"{path}: could not decode the image data")
    return cv2.cvtColor(_to_uint8(decoded), cv2.COLOR_BGR2RGB)


def read_rgb(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a photo as upright 8-bit RGB.

    Args:
        path: JPEG, PNG or TIFF; 8- or 16-bit; grayscale, RGB, RGBA or palette.
        max_pixels: refuse headers that claim more pixels than this.

    Returns:
        (H, W, 3) uint8 RGB array, EXIF rotation applied.

    Raises:
        ImageReadError: missing, empty, truncated, not an image, or too large.
    """
    path = Path(path)
    _header_size(path, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                image.load()
                image = ImageOps.exif_transpose(image)
                mode = image.mode
                if mode in ("RGB", "L", "P", "RGBA", "LA", "CMYK", "YCbCr", "1", "PA"):
                    rgb = np.asarray(image.convert("RGB"))
                else:  # 16-bit or float single channel: scale, then grey to RGB
                    grey = _to_uint8(np.asarray(image))
                    rgb = np.repeat(grey[..., None], 3, axis=2) if grey.ndim == 2 else grey
    except ImageReadError:
        raise
    except OSError as exc:
        message = str(exc)
        if "truncated" in message or "broken data stream" in message:
            raise ImageReadError(f"{path}: image file is truncated ({message})") from exc
        # Pillow lacks some 16-bit colour TIFF layouts; OpenCV reads them.
        rgb = _decode_with_opencv(path)
    except Exception as exc:
        raise ImageReadError(
            f"{path}: could not decode ({exc.__class__.__name__}: {exc})"
        ) from exc
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageReadError(f"{path}: unexpected decoded shape {rgb.shape}")
    return np.ascontiguousarray(rgb)


def read_mask(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a binary mask stored as 0/1 or 0/255 (any non-zero value is foreground).

    Returns:
        (H, W) bool array. Masks are never EXIF-rotated: they are written by tools.
    """
    path = Path(path)
    _header_size(path, max_pixels)
    try:
        with Image.open(path) as image:
            image.load()
            array = np.asarray(image)
    except Exception as exc:
        raise ImageReadError(
            f"{path}: could not read mask ({exc.__class__.__name__}: {exc})"
        ) from exc
    if array.ndim == 3:
        array = array[..., 0]
    return array > 0


def read_mask_raw(path: str | Path) -> np.ndarray:
    """Read a mask without interpretation, for data verification."""
    path = Path(path)
    _header_size(path, DEFAULT_MAX_PIXELS)
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image)
    except Exception as exc:
        raise ImageReadError(
            f"{path}: could not read mask ({exc.__class__.__name__}: {exc})"
        ) from exc
