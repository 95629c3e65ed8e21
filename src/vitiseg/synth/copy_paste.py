"""Real vitiligo patches cut from annotated photos and pasted onto other people's skin.

Simple Copy-Paste (Ghiasi et al., CVPR 2021) for vitiligo: each patch is one connected
lesion of a donor photo with a ring of the skin around it, so it keeps the real texture,
border and speckling of a depigmented patch and the annotator's outline as its label. Two
choices keep the paste plausible. The donor is the one, among a few drawn, whose skin tone
(ITA of the ring) is closest to the target's, because a patch's contrast with its skin
depends on the tone. In linear RGB the patch is multiplied by the ratio of the target's skin
around the paste site to the donor's ring, so the ring blends in and the patch keeps its
contrast ratio, then feathered in over the ring and kept on the target's skin.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vitiseg.synth.color import linear_to_srgb, measure_ita, rgb8_to_lab, srgb_to_linear

# A patch smaller than this (pixels at the donor's working size) carries no texture.
MIN_PATCH_PX = 150
# The polygons are coarse: a patch is kept only if most of its inside is lighter than its
# ring (L* above the ring's median) and its ring is mostly one skin colour (within 12 L*
# of its median), so hands, clothes and backdrops inside or around a polygon stay out.
MIN_LIGHTER_SHARE = 0.6
MIN_LIGHTNESS_STEP = 5.0
MIN_RING_CONSISTENCY = 0.6
RING_SPREAD_L = 12.0
# Eyes, nostrils and navels inside face and trunk polygons: at most this share of the inside
# may be much darker (15 L*) than the ring.
MAX_DARK_SHARE = 0.03
DARK_STEP_L = 15.0
# Patches are never enlarged more than this: upscaled crops look blurred.
MAX_SCALE = 1.5
# Per-channel gain limits: beyond them the donor and target lighting are too different.
GAIN_RANGE = (0.33, 3.0)


@dataclass(frozen=True)
class DonorPatch:
    """One lesion of a donor photo, cropped with its ring of surrounding skin.

    Attributes:
        rgb: (h, w, 3) uint8 crop.
        lesion: (h, w) bool, the annotator's polygon inside the crop.
        ring: (h, w) bool, the skin band around the lesion used for colour matching.
        ita: skin tone of the ring (degrees).
        source_id: donor case id (for the provenance of each pasted case).
    """

    rgb: np.ndarray
    lesion: np.ndarray
    ring: np.ndarray
    ita: float
    source_id: str


def ring_width(lesion_px: int) -> int:
    """Width of the matching ring: 15 % of the patch's equivalent diameter, at least 4 px."""
    return max(4, int(round(0.15 * np.sqrt(4.0 * lesion_px / np.pi))))


def cut_donor_patches(
    rgb: np.ndarray, lesion_mask: np.ndarray, source_id: str
) -> list[DonorPatch]:
    """Every lesion component of one donor photo large enough to carry texture.

    The ring leaves out all lesion pixels of the photo, so a neighbouring patch does not
    count as normal skin.
    """
    lesion_all = lesion_mask > 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(lesion_all.astype(np.uint8), 8)
    height, width = lesion_all.shape
    patches = []
    for index in range(1, count):
        area = int(stats[index, cv2.CC_STAT_AREA])
        if area < MIN_PATCH_PX:
            continue
        margin = ring_width(area)
        x, y, w, h = (int(v) for v in stats[index, :4])
        if x == 0 or y == 0 or x + w == width or y + h == height:
            continue  # cut by the photo's border: its straight edge would be pasted too
        x0, y0 = max(0, x - margin), max(0, y - margin)
        x1, y1 = min(width, x + w + margin), min(height, y + h + margin)
        component = labels[y0:y1, x0:x1] == index
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
        grown = cv2.dilate(component.astype(np.uint8), kernel) > 0
        ring = grown & ~lesion_all[y0:y1, x0:x1]
        if ring.sum() < 0.2 * area:  # the patch fills the photo: nothing to match against
            continue
        crop = rgb[y0:y1, x0:x1]
        if not looks_depigmented(crop, component, ring):
            continue
        ita, _, _ = measure_ita(crop, ring)
        patches.append(DonorPatch(crop.copy(), component, ring, ita, source_id))
    return patches


def looks_depigmented(rgb: np.ndarray, lesion: np.ndarray, ring: np.ndarray) -> bool:
    """Whether a polygon holds a light patch on an even ring of skin (see the thresholds)."""
    lightness = rgb8_to_lab(rgb)[..., 0]
    ring_l = float(np.median(lightness[ring]))
    inside = lightness[lesion]
    return (
        float(np.median(inside)) >= ring_l + MIN_LIGHTNESS_STEP
        and float(np.mean(inside > ring_l)) >= MIN_LIGHTER_SHARE
        and float(np.mean(inside < ring_l - DARK_STEP_L)) <= MAX_DARK_SHARE
        and float(np.mean(np.abs(lightness[ring] - ring_l) <= RING_SPREAD_L))
        >= MIN_RING_CONSISTENCY
    )


def choose_donor(
    patches: list[DonorPatch], target_ita: float, rng: np.random.Generator, candidates: int = 4
) -> DonorPatch:
    """Among a few patches drawn at random, the one whose skin tone is closest to the target."""
    drawn = rng.choice(len(patches), size=min(candidates, len(patches)), replace=False)
    return min((patches[i] for i in drawn), key=lambda p: abs(p.ita - target_ita))


def _transform(
    patch: DonorPatch, scale: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Flips and quarter turns keep the polygon's pixels exact; the scale resamples.
    arrays = [patch.rgb, patch.lesion.astype(np.uint8), patch.ring.astype(np.uint8)]
    if rng.random() < 0.5:
        arrays = [np.fliplr(a) for a in arrays]
    turns = int(rng.integers(4))
    arrays = [np.ascontiguousarray(np.rot90(a, turns)) for a in arrays]
    h, w = arrays[1].shape
    size = (max(2, int(round(w * scale))), max(2, int(round(h * scale))))
    rgb = cv2.resize(
        arrays[0], size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )
    lesion = cv2.resize(arrays[1], size, interpolation=cv2.INTER_NEAREST) > 0
    ring = cv2.resize(arrays[2], size, interpolation=cv2.INTER_NEAREST) > 0
    return rgb, lesion, ring


def paste_patch(
    target: np.ndarray,
    skin: np.ndarray,
    patch: DonorPatch,
    lesion_fraction: float,
    rng: np.random.Generator,
    min_on_skin: float = 0.7,
    tries: int = 20,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Paste one donor patch onto the target's skin.

    Args:
        target: (H, W, 3) uint8 photo (not modified).
        skin: (H, W) bool skin mask of the target.
        patch: the donor patch.
        lesion_fraction: wanted patch area as a share of the target's skin area.
        rng: random stream (flip, turn, site).
        min_on_skin: least share of the pasted polygon that must land on skin.
        tries: paste sites tried before giving up.

    Returns:
        (new photo, pasted lesion mask inside skin), or None when no site fits.
    """
    skin_px = int(skin.sum())
    scale = float(np.sqrt(lesion_fraction * skin_px / max(1, int(patch.lesion.sum()))))
    rgb, lesion, ring = _transform(patch, float(np.clip(scale, 0.25, MAX_SCALE)), rng)
    h, w = lesion.shape
    height, width = skin.shape
    if h >= height or w >= width or not lesion.any() or not ring.any():
        return None
    ys, xs = np.nonzero(skin)
    for _ in range(tries):
        pick = int(rng.integers(len(ys)))
        y0 = int(np.clip(ys[pick] - h // 2, 0, height - h))
        x0 = int(np.clip(xs[pick] - w // 2, 0, width - w))
        site_skin = skin[y0 : y0 + h, x0 : x0 + w]
        if (lesion & site_skin).sum() < min_on_skin * lesion.sum():
            continue
        around = ring & site_skin
        if around.sum() < 0.5 * ring.sum():
            continue
        site = target[y0 : y0 + h, x0 : x0 + w]
        site_lin = srgb_to_linear(site.astype(np.float32) / 255.0)
        patch_lin = srgb_to_linear(rgb.astype(np.float32) / 255.0)
        gain = np.median(site_lin[around], axis=0) / np.maximum(
            np.median(patch_lin[ring], axis=0), 1e-4
        )
        pasted = patch_lin * np.clip(gain, *GAIN_RANGE)
        width_px = max(2, ring_width(int(lesion.sum())) // 2)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width_px + 1,) * 2)
        alpha = cv2.dilate(lesion.astype(np.float32), kernel)
        alpha = cv2.GaussianBlur(alpha, (0, 0), width_px / 2.0) * site_skin
        # The polygon itself is pasted whole: its label must match its pixels.
        alpha = np.maximum(alpha, (lesion & site_skin).astype(np.float32))[..., None]
        blended = alpha * pasted + (1.0 - alpha) * site_lin
        out = target.copy()
        out[y0 : y0 + h, x0 : x0 + w] = np.clip(
            np.round(linear_to_srgb(blended) * 255.0), 0, 255
        ).astype(np.uint8)
        mask = np.zeros_like(skin)
        mask[y0 : y0 + h, x0 : x0 + w] = lesion & site_skin
        return out, mask
    return None


def render_copy_paste_case(
    target: np.ndarray,
    skin: np.ndarray,
    patches: list[DonorPatch],
    rng: np.random.Generator,
    max_patches: int = 3,
    fraction_range: tuple[float, float] = (0.02, 0.15),
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Paste 1..max_patches tone-matched donor patches onto one target photo.

    Returns:
        (photo, lesion mask inside skin, donor case ids used). The mask may be empty
        when no site fitted; callers skip such cases.
    """
    target_ita, _, _ = measure_ita(target, skin)
    photo = target
    lesion = np.zeros(skin.shape, dtype=bool)
    donors: list[str] = []
    for _ in range(int(rng.integers(1, max_patches + 1))):
        patch = choose_donor(patches, target_ita, rng)
        pasted = paste_patch(
            photo, skin & ~lesion, patch, float(rng.uniform(*fraction_range)), rng
        )
        if pasted is None:
            continue
        photo, mask = pasted
        lesion |= mask
        donors.append(patch.source_id)
    return photo, lesion, donors
