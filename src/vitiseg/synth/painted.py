"""Vitiligo painted onto real skin photos that come with skin masks.

The photo keeps its own skin, lighting and texture; inside each designed patch
(:mod:`vitiseg.synth.patches`, restricted to the photo's skin mask) melanin is taken out:
the skin's local mean colour is mapped to its depigmented colour in CIELAB
(:class:`vitiseg.synth.color.Depigmentation`) and every linear RGB channel is multiplied
by the ratio, a constant optical-density step as when melanin leaves the epidermis.
Because shading and texture are multiplicative, they survive; the melanin-borne part of
the fine texture is softened a little. Pixels away from patches are left exactly as they
were, up to the final JPEG.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vitiseg.io.images import read_mask, read_rgb
from vitiseg.synth.camera import encode_jpeg
from vitiseg.synth.color import (
    Depigmentation,
    fitzpatrick_from_ita,
    lab_to_linear,
    linear_to_lab,
    linear_to_srgb,
    measure_ita,
    srgb_to_linear,
)
from vitiseg.synth.fields import disk, local_mean
from vitiseg.synth.patches import LEVELS, choose_levels, design_patches, equivalent_diameter
from vitiseg.synth.records import CaseTruth, SynthCase

log = logging.getLogger(__name__)

# Region and nominal field of view (cm across the longest side) of each source subset.
SUBSET_REGION: dict[str, tuple[str, float]] = {
    "abdomen_train": ("trunk", 25.0),
    "abdomen_val": ("trunk", 25.0),
    "pratheepan_face": ("face", 35.0),
    "pratheepan_family": ("head_neck", 120.0),
    "ecu": ("face", 40.0),
}
_DEFAULT_REGION = ("trunk", 40.0)
# Sources need this much skin at the output size: the 2 % grouping radius of
# vitiseg.vasi is then >= 3 px, wide enough for specks of a few pixels to be grouped.
MIN_SKIN_PX = 20_000
_LUMINANCE = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


@dataclass(frozen=True)
class SkinPhotoSource:
    """One real photo with a skin mask.

    Attributes:
        name: Image file name (recorded in truth.json).
        image_path: The photo.
        mask_path: 0/255 skin mask of the same size.
        subset: Source subset from the manifest ("" if none).
        patient_id: Grouping key: the stem of the first photo with the same bytes (md5).
    """

    name: str
    image_path: Path
    mask_path: Path
    subset: str
    patient_id: str


def load_skin_photos(
    root: str | Path,
    size: int,
    subsets: Sequence[str] | None = None,
    photo_ids: Collection[str] | None = None,
) -> list[SkinPhotoSource]:
    """Read ``manifest.csv`` of a skin-photo folder.

    Columns: image, mask; optional subset, width, height, fg_fraction (skin share), md5.
    Photos with fewer than :data:`MIN_SKIN_PX` skin pixels once shrunk to ``size`` (when
    the manifest gives their size and skin share), or whose files are missing, are
    skipped. Exact duplicates (equal md5) share a patient id.

    Args:
        root: Folder with images/, masks/ and manifest.csv.
        size: Longest side of the generated photos.
        subsets: Keep only rows whose ``subset`` is one of these (None: all rows).
        photo_ids: Keep only photos whose file stem is one of these (None: all), e.g. the
            validation ids of a training run's split.json, so painted evaluation photos
            sit on skin the model never trained on.

    Returns:
        Sources sorted by image name.

    Raises:
        FileNotFoundError: No manifest, or no usable photo.
    """
    root = Path(root)
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: skin photo manifest not found")
    with open(manifest, newline="", encoding="utf-8") as stream:
        rows = sorted(csv.DictReader(stream), key=lambda row: row["image"])
    first_of_md5: dict[str, str] = {}
    sources = []
    for row in rows:
        image_path = root / "images" / row["image"]
        mask_path = root / "masks" / row["mask"]
        if not (image_path.is_file() and mask_path.is_file()):
            log.warning("%s: image or mask missing, skipped", row["image"])
            continue
        if subsets is not None and row.get("subset", "") not in subsets:
            continue
        if photo_ids is not None and Path(row["image"]).stem not in photo_ids:
            continue
        if _expected_skin_px(row, size) < MIN_SKIN_PX:
            continue
        stem = Path(row["image"]).stem
        patient = first_of_md5.setdefault(row.get("md5") or stem, stem)
        sources.append(
            SkinPhotoSource(
                name=row["image"],
                image_path=image_path,
                mask_path=mask_path,
                subset=row.get("subset", ""),
                patient_id=f"src-{patient}",
            )
        )
    if not sources:
        raise FileNotFoundError(f"{root}: no usable skin photos listed in {manifest.name}")
    return sources


def _expected_skin_px(row: dict[str, str], size: int) -> float:
    """Skin pixels of a manifest row after shrinking to ``size`` (inf when unknown)."""
    try:
        width, height = float(row["width"]), float(row["height"])
        fraction = float(row["fg_fraction"])
    except (KeyError, TypeError, ValueError):
        return float("inf")
    scale = min(1.0, size / max(width, height, 1.0))
    return fraction * width * height * scale**2


def load_source(source: SkinPhotoSource, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The source photo and skin mask, shrunk so the longest side is at most ``size``.

    Returns:
        (rgb, skin): (H, W, 3) uint8 and (H, W) bool.
    """
    rgb = read_rgb(source.image_path)
    skin = read_mask(source.mask_path)
    if skin.shape != rgb.shape[:2]:
        raise ValueError(f"{source.name}: mask {skin.shape} does not match image {rgb.shape}")
    height, width = skin.shape
    if max(height, width) > size:
        scale = size / max(height, width)
        new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA)
        skin = cv2.resize(skin.astype(np.uint8), new_size, interpolation=cv2.INTER_NEAREST) > 0
    return rgb, skin


def soft_clip(linear: np.ndarray, knee: float = 0.75) -> np.ndarray:
    """Compress linear values above ``knee`` smoothly towards 1 instead of clipping.

    A brightly lit patch on dark skin can be lifted past white; the knee keeps its
    shading and texture visible rather than a flat white blot.
    """
    headroom = 1.0 - knee
    over = np.maximum(linear - knee, 0.0)
    return np.where(linear > knee, knee + headroom * np.tanh(over / headroom), linear)


def depigment_photo(
    rgb: np.ndarray,
    skin: np.ndarray,
    strength: np.ndarray,
    depigmentation: Depigmentation,
    reference_lab: np.ndarray,
    detail_softening: float = 0.35,
    max_lightness: float = 88.0,
) -> np.ndarray:
    """Take melanin out of a photo where ``strength`` > 0, leaving other pixels untouched.

    The skin's local mean colour (a broad average over skin pixels, so it carries the
    photo's lighting and colour cast) is turned into its depigmented colour in CIELAB;
    the ratio of the two in linear RGB is the per-pixel gain, a constant optical-density
    step that keeps the photo's shading and texture (they multiply on top).

    Args:
        rgb: (H, W, 3) uint8 sRGB photo.
        skin: (H, W) bool skin mask (where the local skin colour and detail are estimated).
        strength: (H, W) float32 in [0, 1], depigmentation strength.
        depigmentation: Colour rule of depigmented skin.
        reference_lab: (3,) median CIELAB of the photo's normal skin.
        detail_softening: Share of the local luminance detail (melanin texture) removed at
            full strength.
        max_lightness: Highest L* of the local mean of fully depigmented skin, so brightly
            lit patches keep their texture instead of burning out to flat white.

    Returns:
        (H, W, 3) uint8; equal to ``rgb`` wherever ``strength`` is 0.
    """
    touched = strength > 0
    if not touched.any():
        return rgb.copy()
    linear = srgb_to_linear(rgb.astype(np.float32) / 255.0)
    luminance = linear @ _LUMINANCE
    weight = skin.astype(np.float32)
    diameter = equivalent_diameter(float(skin.sum()))
    fine = local_mean(luminance, weight, max(2.0, 0.01 * diameter))
    detail = np.clip(luminance / np.maximum(fine, 1e-4), 0.2, 5.0)
    broad_sigma = max(4.0, 0.04 * diameter)
    local = np.stack([local_mean(linear[..., k], weight, broad_sigma) for k in range(3)], axis=-1)
    local = np.maximum(local, 1e-4)
    target = depigmentation.target(linear_to_lab(local), reference_lab, max_lightness)
    gain = np.maximum(lab_to_linear(target), 1e-4) / local
    s = strength[..., None]
    painted = linear * np.power(gain, s) * np.power(detail[..., None], -detail_softening * s)
    painted_rgb = np.round(linear_to_srgb(soft_clip(painted)) * 255.0).astype(np.uint8)
    return np.where(touched[..., None], painted_rgb, rgb)


def render_painted_case(
    rng: np.random.Generator, case_id: str, source: SkinPhotoSource, size: int, index: int
) -> SynthCase:
    """Paint patches on one source photo.

    Args:
        rng: The case's own random source.
        case_id: Stem for the files.
        source: The real photo with its skin mask.
        size: Longest side limit in pixels (photos are never enlarged).
        index: Case number; the first patch's level cycles through :data:`LEVELS`.

    Returns:
        The case; its skin mask is the source's, resized with the photo.
    """
    rgb, skin = load_source(source, size)
    core = cv2.erode(skin.astype(np.uint8), disk(2)).astype(bool)
    reference = core if core.sum() > 100 else skin
    lab = linear_to_lab(srgb_to_linear(rgb[reference].astype(np.float32) / 255.0))
    normal_lab = np.median(lab, axis=0).astype(np.float32)

    count = int(rng.integers(1, 6))
    layout = design_patches(rng, skin, choose_levels(rng, count, LEVELS[index % len(LEVELS)]))
    painted = depigment_photo(rgb, skin, layout.strength, Depigmentation.draw(rng), normal_lab)

    quality = int(rng.integers(88, 96))
    encoded, decoded = encode_jpeg(painted, quality)
    near_patch = cv2.dilate((layout.extent_labels > 0).astype(np.uint8), disk(4)).astype(bool)
    normal = reference & ~near_patch
    ita, _, _ = measure_ita(decoded, normal if normal.sum() > 50 else reference)
    region, field_cm = SUBSET_REGION.get(source.subset, _DEFAULT_REGION)
    truth = CaseTruth(
        case_id=case_id,
        patient_id=source.patient_id,
        region=region,
        pixels_per_cm=round(max(skin.shape) / field_cm, 2),
        fitzpatrick=fitzpatrick_from_ita(ita) or None,
        ita_deg=ita,
        skin_px=int(skin.sum()),
        lesion_px=int(layout.lesion.sum()),
        patches=layout.patches,
        gap_px=layout.gap_px,
        jpeg_quality=quality,
        source=source.name,
    )
    return SynthCase.from_layout(encoded, decoded, skin, layout, truth)
