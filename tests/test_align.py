"""Alignment of a follow-up photo to its baseline: known synthetic warps, unrelated photos."""

from __future__ import annotations

import math
from dataclasses import fields

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy.ndimage import gaussian_filter

from vitiseg.compare.align import (
    Alignment,
    AlignSettings,
    align_images,
    common_area,
    identity_alignment,
    refine_homography,
    warp_to_baseline,
)
from vitiseg.paths import config_dir

# --- a procedural skin-like scene, its lesions, and a known camera move ----------------------


def skin_scene(
    seed: int, height: int, width: int, lesion_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """A skin-coloured photo with shading, pores, freckles and pale depigmented ellipses.

    The freckles, texture and shading depend only on ``seed``; ``lesion_scale`` shrinks the
    lesions about their own centres, as repigmentation does between visits.

    Returns:
        (height, width, 3) uint8 RGB photo and (height, width) bool lesion mask.
    """
    rng = np.random.default_rng(seed)
    shading = gaussian_filter(rng.normal(size=(height, width)), 40)
    texture = gaussian_filter(rng.normal(size=(height, width)), 2.5)
    shading /= shading.std()
    texture /= texture.std()
    tone = np.array([196.0, 150.0, 122.0])
    image = tone + (10 * shading + 5 * texture)[..., None] * np.array([1.0, 0.9, 0.8])
    freckles = np.zeros((height, width), np.float32)
    for _ in range(height * width // 1500):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(freckles, centre, int(rng.integers(1, 5)), float(rng.uniform(0.4, 1)), -1)
    image *= 1 - 0.45 * gaussian_filter(freckles, 0.8)[..., None]
    lesion = np.zeros((height, width), np.uint8)
    for _ in range(6):
        centre = (int(rng.uniform(0.15, 0.85) * width), int(rng.uniform(0.15, 0.85) * height))
        axes = tuple(max(1, int(a * lesion_scale)) for a in rng.uniform(25, 70, size=2))
        cv2.ellipse(lesion, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    pale = gaussian_filter(lesion.astype(np.float64), 2)[..., None]
    image = image * (1 - pale) + np.array([236.0, 222.0, 206.0]) * pale
    image += np.random.default_rng(seed + 1000).normal(0, 2, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), lesion.astype(bool)


def camera_move(
    size: tuple[int, int],
    rotation_deg: float,
    scale: float,
    shift: tuple[float, float],
    perspective: tuple[float, float],
) -> np.ndarray:
    """Homography of a camera move about the photo centre: rotate, scale, shift, tilt."""
    height, width = size
    angle = math.radians(rotation_deg)
    rotate = np.array(
        [
            [scale * math.cos(angle), -scale * math.sin(angle), 0],
            [scale * math.sin(angle), scale * math.cos(angle), 0],
            [0, 0, 1],
        ]
    )
    to_centre = np.array([[1, 0, -width / 2], [0, 1, -height / 2], [0, 0, 1]])
    back = np.array([[1, 0, width / 2 + shift[0]], [0, 1, height / 2 + shift[1]], [0, 0, 1]])
    tilt = np.array([[1, 0, 0], [0, 1, 0], [perspective[0], perspective[1], 1]])
    return tilt @ back @ rotate @ to_centre


def visit_pair(
    seed: int = 1,
    size: tuple[int, int] = (480, 640),
    *,
    move: np.ndarray | None = None,
    lesion_scale: float = 0.6,
) -> dict[str, np.ndarray]:
    """Baseline and follow-up photos of one scene, the follow-up's lesions shrunk and its
    camera moved by ``move`` (baseline pixels -> follow-up pixels) and its exposure changed.

    Returns:
        ``baseline``, ``followup`` (H, W, 3) uint8; ``baseline_lesion``, ``followup_lesion``
        (H, W) bool in their own frames; ``true_homography`` (3, 3) follow-up -> baseline.
    """
    height, width = size
    margin = 150  # the scene is larger than the photos, so the moved camera sees real skin
    scene_size = (height + 2 * margin, width + 2 * margin)
    before, before_lesion = skin_scene(seed, *scene_size)
    after, after_lesion = skin_scene(seed, *scene_size, lesion_scale=lesion_scale)
    crop = np.array([[1, 0, -margin], [0, 1, -margin], [0, 0, 1]], float)  # scene -> baseline
    move = np.eye(3) if move is None else move
    scene_to_followup = move @ crop
    followup = cv2.warpPerspective(
        after, scene_to_followup, (width, height), flags=cv2.INTER_LINEAR
    )
    followup = np.clip(followup * 1.08 - 12, 0, 255).astype(np.uint8)  # other exposure
    followup_lesion = (
        cv2.warpPerspective(
            after_lesion.astype(np.uint8),
            scene_to_followup,
            (width, height),
            flags=cv2.INTER_NEAREST,
        )
        > 0
    )
    return {
        "baseline": before[margin : margin + height, margin : margin + width],
        "baseline_lesion": before_lesion[margin : margin + height, margin : margin + width],
        "followup": followup,
        "followup_lesion": followup_lesion,
        "true_homography": np.linalg.inv(move),
    }


def project(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    mapped = np.hstack([points, np.ones((len(points), 1))]) @ homography.T
    return mapped[:, :2] / mapped[:, 2:]


def grid_errors(estimate: np.ndarray, truth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Distances in baseline pixels between where the two homographies send a grid of
    follow-up pixels (every 16 px over the whole follow-up photo)."""
    ys, xs = np.mgrid[0 : shape[0] : 16, 0 : shape[1] : 16]
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(float)
    return np.linalg.norm(project(estimate, grid) - project(truth, grid), axis=1)


MOVES = {
    "rotate-scale-shift-tilt": camera_move((480, 640), 7.0, 1.08, (18, -12), (1.5e-4, -1e-4)),
    "zoom-out-turn-left": camera_move((480, 640), -12.0, 0.9, (-25, 20), (-1e-4, 1.2e-4)),
}


# --- tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MOVES))
def test_alignment_recovers_a_known_warp_within_two_pixels(name):
    pair = visit_pair(move=MOVES[name])
    alignment = align_images(pair["baseline"], pair["followup"])
    assert alignment.reliable, alignment.reason
    assert alignment.reason == "ok"
    errors = grid_errors(alignment.homography, pair["true_homography"], (480, 640))
    assert np.median(errors) < 2.0
    assert np.percentile(errors, 95) < 3.0
    assert alignment.inliers >= 20 and 0 < alignment.inlier_ratio <= 1
    assert alignment.reprojection_error_px < 2.0
    assert AlignSettings().min_ecc_correlation <= alignment.ecc_correlation <= 1
    # The follow-up's frame in the baseline equals the true one, as a share of the baseline.
    truth = cv2.warpPerspective(
        np.ones((480, 640), np.uint8), pair["true_homography"], (640, 480), flags=cv2.INTER_NEAREST
    )
    assert alignment.overlap == pytest.approx(truth.mean(), abs=0.01)


def test_orb_features_also_recover_the_warp():
    pair = visit_pair(move=MOVES["rotate-scale-shift-tilt"])
    alignment = align_images(pair["baseline"], pair["followup"], AlignSettings(detector="orb"))
    assert alignment.reliable, alignment.reason
    errors = grid_errors(alignment.homography, pair["true_homography"], (480, 640))
    assert np.median(errors) < 2.0


def test_identical_photos_align_to_the_identity():
    photo, _ = skin_scene(3, 300, 400)
    alignment = align_images(photo, photo.copy())
    assert alignment.reliable
    assert np.max(grid_errors(alignment.homography, np.eye(3), (300, 400))) < 0.5
    assert alignment.ecc_correlation > 0.99


def test_unrelated_photos_are_reported_unreliable_with_a_reason():
    first, _ = skin_scene(1, 480, 640)
    other, _ = skin_scene(99, 480, 640)
    alignment = align_images(first, other)
    assert not alignment.reliable
    assert alignment.reason and alignment.reason != "ok"
    assert alignment.inliers < AlignSettings().min_inliers or alignment.homography is None


def test_featureless_photo_gives_no_homography():
    photo, _ = skin_scene(1, 240, 320)
    blank = np.full_like(photo, 180)
    alignment = align_images(photo, blank)
    assert not alignment.reliable
    assert alignment.homography is None
    assert "too few key-point matches" in alignment.reason
    with pytest.raises(ValueError, match="no homography"):
        warp_to_baseline(blank, alignment)


def test_ecc_refinement_corrects_a_slightly_wrong_homography():
    pair = visit_pair(move=MOVES["rotate-scale-shift-tilt"])
    nudge = np.array([[1, 0, 3.0], [0, 1, -2.5], [0, 0, 1]])  # 3.9 px off in the baseline
    start = nudge @ pair["true_homography"]
    refined = refine_homography(pair["baseline"], pair["followup"], start)
    assert refined is not None
    before = np.median(grid_errors(start, pair["true_homography"], (480, 640)))
    after = np.median(grid_errors(refined, pair["true_homography"], (480, 640)))
    assert before == pytest.approx(math.hypot(3.0, 2.5), rel=1e-6)
    assert after < 1.0


def test_warp_and_common_area_follow_the_homography():
    shift = np.array([[1, 0, 5], [0, 1, -3], [0, 0, 1]], float)  # follow-up -> baseline
    alignment = Alignment(
        homography=shift,
        baseline_shape=(40, 50),
        followup_shape=(40, 50),
        method="test",
        matches=0,
        inliers=0,
        inlier_ratio=0.0,
        reprojection_error_px=None,
        ecc_correlation=None,
        refined=False,
        overlap=1.0,
        reliable=True,
        reason="ok",
    )
    mask = np.zeros((40, 50), bool)
    mask[10:20, 10:30] = True
    expected = np.zeros((40, 50), bool)
    expected[7:17, 15:35] = True  # rows move up 3, columns right 5
    np.testing.assert_array_equal(warp_to_baseline(mask, alignment), expected)
    area = common_area(alignment)
    assert area[:37, 5:].all() and not area[37:].any() and not area[:, :5].any()
    photo = np.arange(40 * 50 * 3, dtype=np.uint8).reshape(40, 50, 3)
    warped = warp_to_baseline(photo, alignment)
    np.testing.assert_array_equal(warped[0:37, 5:50], photo[3:40, 0:45])
    with pytest.raises(ValueError):
        alignment.homography[0, 0] = 2  # records stay frozen, arrays included


def test_identity_alignment_needs_equal_sizes():
    assert identity_alignment((10, 20), (10, 20)).reliable
    different = identity_alignment((10, 20), (20, 10))
    assert not different.reliable and "sizes differ" in different.reason


def test_settings_defaults_equal_the_shipped_config():
    shipped = OmegaConf.to_container(OmegaConf.load(config_dir() / "compare.yaml").align)
    shipped.pop("method")
    defaults = {f.name: getattr(AlignSettings(), f.name) for f in fields(AlignSettings)}
    assert shipped == defaults
