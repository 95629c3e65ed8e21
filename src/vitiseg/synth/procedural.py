"""Procedural clinical-style photos of vitiligo with exact masks.

A case is rendered in linear light: a body part (signed-distance shapes with a noisy
border) over a cloth, wall or studio background; skin reflectance from a CIELAB base
colour of the case's Fitzpatrick type, with melanin/haemoglobin mottling, pores, fine
lines and freckles; depigmented patches (:mod:`vitiseg.synth.patches`) that scale the
reflectance by a melanin-removal gain; shading from a height map, a light gradient,
vignetting, highlights and hairs; then blur, sensor noise and JPEG. The skin's overall
brightness is finally tuned so that the ITA measured on the rendered normal skin equals
the designed one.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from vitiseg.synth.body import BodyShape, body_shape
from vitiseg.synth.camera import encode_jpeg
from vitiseg.synth.color import (
    HAEMOGLOBIN_ABSORBANCE,
    ITA_RANGES,
    MELANIN_ABSORBANCE,
    SKIN_TONES,
    depigmentation_gain,
    depigmented_lab,
    fitzpatrick_from_ita,
    lab_to_linear,
    linear_to_lab,
    linear_to_srgb,
    measure_ita,
    srgb_to_linear,
)
from vitiseg.synth.fields import disk, dot_field, rotated_coords, value_noise
from vitiseg.synth.patches import LEVELS, PatchLayout, choose_levels, design_patches
from vitiseg.synth.records import REGIONS, CaseTruth, SynthCase

log = logging.getLogger(__name__)

# Field of view (cm across the frame) of a typical clinical photo of each region; gives
# the nominal pixels_per_cm and the physical size of hairs and pores.
FIELD_OF_VIEW_CM: dict[str, float] = {
    "face": 24.0,
    "head_neck": 32.0,
    "hands": 26.0,
    "feet": 30.0,
    "upper_extremities": 38.0,
    "lower_extremities": 48.0,
    "trunk": 55.0,
}
# Visible hairs per cm² of skin.
_HAIR_DENSITY: dict[str, float] = {
    "face": 0.0,
    "head_neck": 0.05,
    "hands": 0.3,
    "feet": 0.3,
    "upper_extremities": 1.2,
    "lower_extremities": 1.2,
    "trunk": 0.25,
}
# Background colours in sRGB [0, 1].
_WALLS = ((0.92, 0.92, 0.9), (0.85, 0.86, 0.88), (0.9, 0.86, 0.78), (0.78, 0.84, 0.9))
_DRAPES = ((0.2, 0.42, 0.62), (0.22, 0.5, 0.42), (0.35, 0.55, 0.65), (0.3, 0.45, 0.35))
_CLOTHS = ((0.06, 0.06, 0.07), (0.1, 0.12, 0.22), (0.22, 0.3, 0.45), (0.35, 0.28, 0.22))
_STUDIO = ((0.95, 0.88, 0.8), (0.55, 0.6, 0.66), (0.2, 0.2, 0.22), (0.8, 0.8, 0.82))


def _srgb_to_lin(colour: tuple[float, float, float]) -> np.ndarray:
    return srgb_to_linear(np.asarray(colour, dtype=np.float32))


def _background(
    rng: np.random.Generator, shape: tuple[int, int], size: int
) -> tuple[np.ndarray, str]:
    """(H, W, 3) float32 linear-light background and its kind."""
    kind = str(rng.choice(["wall", "drape", "cloth", "studio"]))
    height, width = shape
    if kind == "wall":
        base = _srgb_to_lin(_WALLS[rng.integers(len(_WALLS))])
        variation = 1 + 0.04 * value_noise(rng, shape, 0.3 * size, octaves=3)
        variation += 0.01 * value_noise(rng, shape, 2.0, octaves=1)
        return (base * variation[..., None]).astype(np.float32), kind
    if kind in ("drape", "cloth"):
        palette = _DRAPES if kind == "drape" else _CLOTHS
        base = _srgb_to_lin(palette[rng.integers(len(palette))])
        u, v = rotated_coords(shape, (0.0, 0.0), rng.uniform(0, math.pi))
        warp = value_noise(rng, shape, 0.25 * size, octaves=2)
        folds = np.sin(2 * math.pi * u / (rng.uniform(0.15, 0.4) * size) + 1.5 * warp)
        period = rng.uniform(2.5, 4.0)
        weave = np.sin(2 * math.pi * u / period) * np.sin(2 * math.pi * v / period)
        grain = value_noise(rng, shape, 1.0, octaves=1)
        shade = 1 + 0.18 * folds + 0.05 * weave + 0.06 * grain
        return (base * np.clip(shade, 0.3, 2.0)[..., None]).astype(np.float32), kind
    first = _srgb_to_lin(_STUDIO[rng.integers(len(_STUDIO))])
    second = first * rng.uniform(0.4, 0.8)
    u, _ = rotated_coords(shape, (width / 2, height / 2), rng.uniform(0, 2 * math.pi))
    t = np.clip(0.5 + u / size, 0, 1)[..., None]
    blend = first * (1 - t) + second * t
    return (blend * (1 + 0.01 * value_noise(rng, shape, 3.0))[..., None]).astype(np.float32), kind


def _shading(
    rng: np.random.Generator, skin: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lambertian shading and a specular term from a height map of the skin mask.

    Returns:
        (diffuse, specular): (H, W) float32 each; diffuse has median 1 on skin.
    """
    depth = cv2.distanceTransform(skin.astype(np.uint8), cv2.DIST_L2, 5)
    reach = max(float(np.percentile(depth[skin], 90)), 1.0)
    height = np.sqrt(np.clip(depth / reach, 0, 1)) * reach * rng.uniform(0.6, 1.0)
    height = cv2.GaussianBlur(height.astype(np.float32), (0, 0), 0.01 * size + 1)
    grad_y, grad_x = np.gradient(height)
    normal = np.stack([-grad_x, -grad_y, np.ones_like(grad_x)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    azimuth = rng.uniform(0, 2 * math.pi)
    elevation = rng.uniform(0.55, 1.2)
    light = np.array(
        [
            math.cos(azimuth) * math.cos(elevation),
            math.sin(azimuth) * math.cos(elevation),
            math.sin(elevation),
        ],
        dtype=np.float32,
    )
    ambient = rng.uniform(0.3, 0.5)
    diffuse = ambient + (1 - ambient) * np.clip(normal @ light, 0, 1)
    diffuse = diffuse / float(np.median(diffuse[skin]))
    half = light + np.array([0, 0, 1], dtype=np.float32)
    half /= np.linalg.norm(half)
    specular = rng.uniform(0.0, 0.06) * np.clip(normal @ half, 0, 1) ** rng.uniform(15, 40)
    return diffuse.astype(np.float32), specular.astype(np.float32)


def _skin_texture(
    rng: np.random.Generator, shape: tuple[int, int], unit_px: float, pixels_per_cm: float
) -> np.ndarray:
    """(H, W) float32 multiplicative luminance texture around 1: grain, lines and pores."""
    grain = 0.03 * value_noise(rng, shape, 1.2 * unit_px, octaves=2, persistence=0.6)
    lines = np.zeros(shape, dtype=np.float32)
    white = rng.standard_normal(shape).astype(np.float32)
    for angle in rng.uniform(0, math.pi, 2):
        # A one-pixel line kernel turns white noise into fine oriented skin furrows.
        length = 9
        kernel = np.zeros((length, length), dtype=np.float32)
        c = length // 2
        dx, dy = math.cos(angle) * c, math.sin(angle) * c
        cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0)
        kernel /= kernel.sum()
        lines += cv2.filter2D(white, -1, kernel)
    lines = 0.03 * lines / max(float(lines.std()), 1e-6)
    spacing = max(0.1 * pixels_per_cm, 2.5)  # pores ~1 mm apart, never closer than 2.5 px
    pores = dot_field(rng, shape, spacing, 0.6)
    pores = 0.06 * pores / max(float(pores.max()), 1e-6)
    return (1.0 + grain + lines - pores).astype(np.float32)


def _streaks(rng: np.random.Generator, shape: tuple[int, int], angle: float) -> np.ndarray:
    """(H, W) float32 unit-variance noise smeared along ``angle``: strands of scalp hair."""
    length = 15
    kernel = np.zeros((length, length), dtype=np.float32)
    c = length // 2
    dx, dy = math.cos(angle) * c, math.sin(angle) * c
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0)
    smeared = cv2.filter2D(rng.standard_normal(shape).astype(np.float32), -1, kernel)
    smeared += 0.5 * value_noise(rng, shape, 20.0, octaves=1) * float(smeared.std())
    return smeared / max(float(smeared.std()), 1e-6)


def _hairs(
    rng: np.random.Generator,
    skin: np.ndarray,
    region: str,
    angle: float,
    pixels_per_cm: float,
    extra: list[np.ndarray] | None = None,
) -> np.ndarray:
    """(H, W) float32 hair coverage in [0, 1], drawn anti-aliased at twice the resolution.

    Hairs are 0.4-1.3 cm long, start on skin and follow ``angle`` (radians) loosely;
    ``extra`` polylines (eyebrows, in doubled pixel coordinates) are drawn thicker.
    """
    height, width = skin.shape
    skin_cm2 = float(skin.sum()) / pixels_per_cm**2
    count = int(rng.poisson(_HAIR_DENSITY[region] * rng.uniform(0.3, 1.5) * skin_cm2))
    canvas = np.zeros((2 * height, 2 * width), dtype=np.uint8)
    polylines: list[np.ndarray] = []
    if count:
        starts = np.flatnonzero(skin.ravel())[rng.integers(0, int(skin.sum()), count)]
        y0, x0 = np.divmod(starts, width)
        length = rng.uniform(0.4, 1.3, count) * pixels_per_cm
        heading = angle + rng.normal(0, 0.35, count)
        curl = rng.normal(0, 0.25, count)
        steps = np.arange(5, dtype=np.float32)[None, :] / 4.0
        theta = heading[:, None] + curl[:, None] * steps
        seg = (length / 4.0)[:, None]
        xs = x0[:, None] + np.cumsum(np.cos(theta) * seg, axis=1) - np.cos(theta[:, :1]) * seg
        ys = y0[:, None] + np.cumsum(np.sin(theta) * seg, axis=1) - np.sin(theta[:, :1]) * seg
        points = np.stack([xs, ys], axis=-1) * 2
        polylines.extend(np.round(points).astype(np.int32))
    if polylines:
        cv2.polylines(canvas, polylines, False, 255, 1, cv2.LINE_AA)
    if extra:  # eyebrows: denser, thicker hairs
        cv2.polylines(canvas, extra, False, 255, 2, cv2.LINE_AA)
    coverage = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    return coverage.astype(np.float32) / 255.0


def _eyebrows(rng: np.random.Generator, body: BodyShape) -> list[np.ndarray]:
    """Short hair strokes arched above each eye, as polylines at twice the resolution."""
    strokes = []
    half_width = 1.9 * body.eye_radius
    for ex, ey in body.eye_centers:
        xs = ex + rng.uniform(-1.2, 1.2, 70) * half_width
        arch = (xs - ex) / half_width
        ys = ey - 2.2 * body.eye_radius - 0.6 * body.eye_radius * (1 - arch**2)
        ys = ys + rng.normal(0, 0.25 * body.eye_radius, 70)
        for x, y in zip(xs, ys, strict=True):
            dx = rng.uniform(0.3, 0.6) * body.eye_radius * np.sign(x - ex + 1e-3)
            strokes.append(np.array([[x, y + 0.5], [x + dx, y - 0.8]]) * 2)
    return [np.round(stroke).astype(np.int32) for stroke in strokes]


def _eye_colours(rng: np.random.Generator, body: BodyShape, shape: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 linear colour of the eyes: sclera, iris, pupil."""
    colour = np.empty((*shape, 3), dtype=np.float32)
    colour[:] = np.clip(lab_to_linear(np.array([72.0, 2.0, 5.0])), 0, 1)
    iris_lab = np.array([rng.uniform(22, 45), 6.0, rng.uniform(5, 20)])
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    for ex, ey in body.eye_centers:
        distance = np.hypot(x - ex, y - ey)
        colour[distance < 1.25 * body.eye_radius] = np.clip(lab_to_linear(iris_lab), 0, 1)
        colour[distance < 0.45 * body.eye_radius] = 0.01
    return colour


def _normal_skin(skin: np.ndarray, layout: PatchLayout) -> np.ndarray:
    """Skin away from patches and borders: where the ITA of normal skin is measured."""
    core = cv2.erode(skin.astype(np.uint8), disk(3)).astype(bool)
    near_patch = cv2.dilate((layout.extent_labels > 0).astype(np.uint8), disk(4)).astype(bool)
    return core & ~near_patch


def _skin_reflectance(
    rng: np.random.Generator,
    body: BodyShape,
    layout: PatchLayout,
    normal_lab: np.ndarray,
    fitzpatrick: int,
    pixels_per_cm: float,
) -> np.ndarray:
    """(H, W, 3) float32 linear reflectance of the skin, patches depigmented."""
    shape = body.sdf.shape
    size = shape[0]
    base = np.clip(lab_to_linear(normal_lab), 1e-4, 1.0)
    melanin = 0.06 * value_noise(rng, shape, 0.2 * size, octaves=3)
    if fitzpatrick <= 3 and rng.random() < 0.4:  # freckles / lentigines
        freckles = dot_field(rng, shape, 0.4 * pixels_per_cm, 0.08 * pixels_per_cm)
        melanin += 0.35 * (freckles > np.quantile(freckles, 0.9)) * rng.uniform(0.5, 1.0)
    level_of_label = np.array([0.0] + [p.level for p in layout.patches], dtype=np.float32)
    # Repigmentation islands are follicular melanocytes: darker than the normal skin.
    follicular = layout.pigment_specks & (level_of_label[layout.extent_labels] >= 0.75)
    melanin += follicular * rng.uniform(0.1, 0.3)
    blood = 0.035 * value_noise(rng, shape, 0.12 * size, octaves=2)
    blood += 0.5 * np.clip(0.5 - body.lips / 3.0, 0, 1)
    gain = depigmentation_gain(normal_lab, depigmented_lab(normal_lab, rng))
    texture = _skin_texture(rng, shape, max(size / 384.0, 0.75), pixels_per_cm)
    # Without melanin the fine texture loses some of its contrast.
    texture = 1.0 + (texture - 1.0) * (1.0 - 0.35 * layout.strength)
    strength = layout.strength[..., None]
    return (
        base
        * np.exp(-(melanin * (1.0 - layout.strength))[..., None] * MELANIN_ABSORBANCE)
        * np.exp(-blood[..., None] * HAEMOGLOBIN_ABSORBANCE)
        * np.power(gain, strength)
        * texture[..., None]
    ).astype(np.float32)


def _match_ita(
    skin_light: np.ndarray,
    hair_light: np.ndarray,
    opacity: np.ndarray,
    region: np.ndarray,
    ita_deg: float,
) -> np.ndarray:
    """Scale the skin's light so its normal part, hairs included, has the wanted ITA.

    Args:
        skin_light: (H, W, 3) float32 linear light reflected by the skin.
        hair_light: (H, W, 3) float32 linear light of body hair.
        opacity: (H, W, 1) float32 hair coverage.
        region: (H, W) bool normal skin.
        ita_deg: Wanted ITA in degrees.

    Returns:
        The scaled ``skin_light``.
    """
    # A fixed stride is plenty for medians and keeps the three rounds cheap.
    stride = max(1, int(region.sum()) // 20000)
    skin = skin_light[region][::stride]
    hair = (hair_light * opacity)[region][::stride]
    cover = opacity[region][::stride]
    scale = 1.0
    for _ in range(3):
        lab = linear_to_lab(skin * scale * (1 - cover) + hair)
        l_now, b_now = float(np.median(lab[:, 0])), float(np.median(lab[:, 2]))
        l_want = 50.0 + b_now * math.tan(math.radians(ita_deg))
        scale *= (((l_want + 16) / 116) ** 3) / (((l_now + 16) / 116) ** 3)
    return skin_light * np.float32(scale)


def render_procedural_case(
    rng: np.random.Generator, case_id: str, patient_id: str, size: int, index: int
) -> SynthCase:
    """Render one procedural case.

    Args:
        rng: The case's own random source (seeded from the dataset seed and ``index``).
        case_id: Stem for the files.
        patient_id: Patient grouping key.
        size: Side of the square image in pixels.
        index: Case number; picks the skin type (cycling I-VI) and the first patch's level
            (cycling through :data:`LEVELS`), so every type and level occurs in any 6 cases.

    Returns:
        The case, with its JPEG bytes and the decoded image.
    """
    shape = (size, size)
    fitzpatrick = 1 + index % 6
    region = REGIONS[int(rng.integers(len(REGIONS)))]
    pixels_per_cm = round(size / (FIELD_OF_VIEW_CM[region] * rng.uniform(0.85, 1.15)), 2)
    tone = SKIN_TONES[fitzpatrick]
    ita_target = rng.uniform(*tone.ita_deg)
    b_star = rng.uniform(*tone.b_star)
    a_star = rng.uniform(*tone.a_star)
    l_star = 50.0 + b_star * math.tan(math.radians(ita_target))
    normal_lab = np.array([l_star, a_star, b_star], dtype=np.float32)

    for _ in range(20):
        body = body_shape(rng, region, size)
        skin = body.skin
        if skin.mean() > 0.15:
            break
    # One pixel of anti-aliasing; the mask is the half-coverage level set, exactly.
    covered = np.minimum(body.scalp, body.eyes)
    skin_alpha = np.clip(0.5 - body.sdf, 0, 1) * np.clip(covered + 0.5, 0, 1)
    skin_alpha = np.where(skin, np.maximum(skin_alpha, 0.5), np.minimum(skin_alpha, 0.49))
    alpha = skin_alpha[..., None].astype(np.float32)

    count = int(rng.integers(2, 7))
    layout = design_patches(rng, skin, choose_levels(rng, count, LEVELS[index % len(LEVELS)]))
    reflectance = _skin_reflectance(rng, body, layout, normal_lab, fitzpatrick, pixels_per_cm)

    diffuse, specular = _shading(rng, skin, size)
    # Light falls off across the frame and towards the corners (lamp and lens).
    u, v = rotated_coords(shape, (size / 2, size / 2), rng.uniform(0, 2 * math.pi))
    gradient = 1.0 + rng.uniform(0.05, 0.25) * (u / size) - 0.25 * ((u**2 + v**2) / size**2)
    tint = np.array([1.0, 1.0, 1.0]) + rng.normal(0, 0.025, 3)
    illumination = (gradient[..., None] * tint).astype(np.float32)
    skin_light = (reflectance * (diffuse * body.relief)[..., None] + specular[..., None]) * (
        illumination
    )

    extra = _eyebrows(rng, body) if body.eye_centers else None
    hair = _hairs(rng, skin, region, body.hair_angle, pixels_per_cm, extra)
    hair_lab = np.array([25.0 if fitzpatrick >= 3 else rng.uniform(25, 60), 3.0, 8.0])
    hair_colour = np.clip(lab_to_linear(hair_lab), 0, 1)
    if rng.random() < 0.5:  # leukotrichia: white hairs in some patches
        hair_colour = np.where(layout.lesion[..., None], np.float32(0.75), hair_colour)
    hair_light = (hair_colour * illumination).astype(np.float32)
    opacity = (hair * rng.uniform(0.35, 0.7))[..., None].astype(np.float32)
    normal_region = _normal_skin(skin, layout)
    skin_light = _match_ita(skin_light, hair_light, opacity, normal_region, ita_target)

    background, _ = _background(rng, shape, size)
    shadow_shift = rng.uniform(-0.03, 0.03, 2) * size
    moved = cv2.warpAffine(
        skin_alpha.astype(np.float32),
        np.array([[1, 0, shadow_shift[0]], [0, 1, abs(shadow_shift[1])]], dtype=np.float32),
        (size, size),
    )
    shadow = cv2.GaussianBlur(moved, (0, 0), 0.03 * size)
    background = background * (1 - 0.4 * shadow)[..., None] * illumination
    linear = skin_light * alpha + background * (1 - alpha)
    if body.eye_centers:
        eye_alpha = np.clip(0.5 - body.eyes, 0, 1)[..., None]
        eye_light = _eye_colours(rng, body, shape) * diffuse[..., None] * illumination
        linear = linear * (1 - eye_alpha) + eye_light * eye_alpha
    linear = linear * (1 - opacity) + hair_light * opacity
    if np.isfinite(body.scalp).any():  # dark, streaky scalp hair
        scalp = np.clip(0.5 - body.scalp, 0, 1)[..., None]
        streaks = 1 + 0.4 * _streaks(rng, shape, rng.uniform(1.3, 1.85))
        scalp_colour = np.clip(lab_to_linear(np.array([rng.uniform(12, 30), 3.0, 6.0])), 0, 1)
        scalp_light = scalp_colour * streaks[..., None] * illumination
        linear = linear * (1 - scalp) + scalp_light * scalp

    # Camera: lens blur, sensor noise, 8 bits, JPEG.
    srgb = linear_to_srgb(linear)
    srgb = cv2.GaussianBlur(srgb, (0, 0), rng.uniform(0.3, 0.9))
    srgb = srgb + rng.normal(0, rng.uniform(0.002, 0.006), srgb.shape).astype(np.float32)
    rgb8 = np.clip(np.round(srgb * 255.0), 0, 255).astype(np.uint8)
    quality = int(rng.integers(70, 96))
    encoded, decoded = encode_jpeg(rgb8, quality)
    ita_measured, _, _ = measure_ita(decoded, normal_region)
    measured_type = fitzpatrick_from_ita(ita_measured)
    if measured_type != fitzpatrick:
        # The record must agree with the pixels; the design margin makes this rare.
        log.warning(
            "%s: rendered ITA %.1f falls in type %d, not the designed %d (range %s)",
            case_id,
            ita_measured,
            measured_type,
            fitzpatrick,
            ITA_RANGES[fitzpatrick],
        )
        fitzpatrick = measured_type
    truth = CaseTruth(
        case_id=case_id,
        patient_id=patient_id,
        region=region,
        pixels_per_cm=pixels_per_cm,
        fitzpatrick=fitzpatrick,
        ita_deg=ita_measured,
        skin_px=int(skin.sum()),
        lesion_px=int(layout.lesion.sum()),
        patches=layout.patches,
        gap_px=layout.gap_px,
        jpeg_quality=quality,
    )
    return SynthCase.from_layout(encoded, decoded, skin, layout, truth)
