"""Align a follow-up photo to its baseline: features, a robust homography, ECC refinement.

Coordinates are OpenCV pixel coordinates (x to the right, y down, pixel centres at
integers). :attr:`Alignment.homography` maps a follow-up pixel to the baseline pixel that
shows the same skin, so ``cv2.warpPerspective(followup, H, baseline_size)`` puts the
follow-up into the baseline frame.

Steps (``docs/compare_and_cohort.md``):

1. Both photos to grey, shrunk to ``feature_max_side``, contrast-equalised (CLAHE) so a
   change of lighting between visits matters less.
2. SIFT (or ORB) key points, Lowe's ratio test on the two nearest neighbours.
3. A homography by MAGSAC++ (``cv2.USAC_MAGSAC``), deterministic in OpenCV.
4. ECC refinement (``cv2.findTransformECC``, ``MOTION_HOMOGRAPHY``) on photos shrunk to
   ``ecc_max_side``, started from step 3; kept only when it raises the correlation by at
   least ``min_refine_gain`` and moves no corner further than ``max_refine_shift``.
5. Checks that make the result unreliable, each named in :attr:`Alignment.reason`.
   When a check fails the result is reported as unreliable; callers must not use it for
   pixel-wise comparisons.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

logger = logging.getLogger(__name__)

DETECTORS = ("sift", "orb")


@dataclass(frozen=True)
class AlignSettings:
    """How to align and when to call the result unreliable (``configs/compare.yaml``).

    Attributes:
        detector: ``"sift"`` (default) or ``"orb"`` (faster, less robust to scale).
        feature_max_side: Long side in pixels of the grey images used for key points.
        max_features: Most key points kept per photo (SIFT and ORB).
        ratio: Lowe's ratio test: keep a match when its distance is below ``ratio`` times
            the second-best distance.
        ransac_threshold_px: MAGSAC++ inlier threshold in pixels at ``feature_max_side``.
        min_inliers: Fewest homography inliers for a reliable alignment.
        min_inlier_ratio: Smallest share of ratio-test matches that are inliers.
        max_reprojection_error: Largest median inlier reprojection error, as a fraction of
            the baseline photo's diagonal (0.005 = 5 px on a 1000 px diagonal).
        min_overlap: Smallest share of the baseline frame covered by the warped follow-up.
        max_scale_change: Largest area ratio between the warped follow-up and the follow-up
            (either way); larger means the photos show different things.
        refine: Run ECC refinement after the feature homography.
        ecc_max_side: Long side in pixels of the grey images used by ECC.
        ecc_iterations: Most ECC iterations.
        ecc_epsilon: ECC stops when the correlation improves by less than this.
        max_refine_shift: Largest corner movement ECC may make, as a fraction of the
            baseline diagonal; a larger jump means ECC ran away and is discarded.
        min_refine_gain: Smallest rise of the ECC correlation for which the refinement is
            kept. Changed lesions pull ECC's optimum off by a fraction of a pixel for a gain
            far below this, while a feature homography 0.5 px off gains more.
        min_ecc_correlation: Smallest ECC correlation (in [-1, 1]) between the baseline and
            the aligned follow-up over their common area. Kept low on purpose: marked
            repigmentation lowers the correlation of correctly aligned photos (0.4 in a test
            with shrinking lesions), while unrelated photos give about 0.
    """

    detector: str = "sift"
    feature_max_side: int = 1024
    max_features: int = 5000
    ratio: float = 0.75
    ransac_threshold_px: float = 3.0
    min_inliers: int = 20
    min_inlier_ratio: float = 0.2
    max_reprojection_error: float = 0.005
    min_overlap: float = 0.3
    max_scale_change: float = 3.0
    refine: bool = True
    ecc_max_side: int = 512
    ecc_iterations: int = 100
    ecc_epsilon: float = 1e-5
    max_refine_shift: float = 0.02
    min_refine_gain: float = 0.002
    min_ecc_correlation: float = 0.2

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"detector: one of {DETECTORS}, got {self.detector!r}")
        if not 0 < self.ratio < 1:
            raise ValueError(f"ratio: must lie in (0, 1), got {self.ratio}")
        if self.feature_max_side < 64 or self.ecc_max_side < 64:
            raise ValueError("feature_max_side and ecc_max_side: must be >= 64 pixels")
        if self.max_scale_change < 1:
            raise ValueError("max_scale_change: must be >= 1")


@dataclass(frozen=True, eq=False)
class Alignment:
    """Where the follow-up photo lies in the baseline photo, and how far to trust it.

    Attributes:
        homography: (3, 3) float64 mapping follow-up pixels to baseline pixels, read-only;
            None when none could be estimated.
        baseline_shape: Baseline photo (H, W) in pixels.
        followup_shape: Follow-up photo (H, W) in pixels.
        method: What produced the homography, e.g. ``"sift+magsac+ecc"`` or ``"identity"``.
        matches: Key-point matches that passed the ratio test.
        inliers: Matches consistent with the homography.
        inlier_ratio: ``inliers / matches`` (0 without matches).
        reprojection_error_px: Median distance in baseline pixels between matched baseline
            key points and their follow-up partners mapped by the homography, over inliers.
        ecc_correlation: ECC correlation in [-1, 1] between the baseline and the aligned
            follow-up over their common area (grey, shrunk to ``ecc_max_side``).
        refined: Whether the ECC refinement was kept.
        overlap: Share of the baseline frame covered by the aligned follow-up, in [0, 1].
        reliable: Whether every check passed; only then compare pixel by pixel.
        reason: ``"ok"``, or every failed check, separated by ``"; "``.
    """

    homography: np.ndarray | None
    baseline_shape: tuple[int, int]
    followup_shape: tuple[int, int]
    method: str
    matches: int
    inliers: int
    inlier_ratio: float
    reprojection_error_px: float | None
    ecc_correlation: float | None
    refined: bool
    overlap: float
    reliable: bool
    reason: str

    def __post_init__(self) -> None:
        if self.homography is not None:
            homography = np.array(self.homography, dtype=np.float64)
            if homography.shape != (3, 3):
                raise ValueError(f"homography must be (3, 3), got {homography.shape}")
            homography.setflags(write=False)
            object.__setattr__(self, "homography", homography)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; the homography as a nested list (or None)."""
        return {
            "reliable": self.reliable,
            "reason": self.reason,
            "method": self.method,
            "matches": self.matches,
            "inliers": self.inliers,
            "inlier_ratio": self.inlier_ratio,
            "reprojection_error_px": self.reprojection_error_px,
            "ecc_correlation": self.ecc_correlation,
            "refined": self.refined,
            "overlap": self.overlap,
            "baseline_shape": list(self.baseline_shape),
            "followup_shape": list(self.followup_shape),
            "homography": None if self.homography is None else self.homography.tolist(),
        }


def identity_alignment(
    baseline_shape: tuple[int, int], followup_shape: tuple[int, int]
) -> Alignment:
    """The alignment of photos that are already registered (same camera rig, same frame).

    Reliable only when both photos have the same height and width.
    """
    same = tuple(baseline_shape) == tuple(followup_shape)
    return Alignment(
        homography=np.eye(3),
        baseline_shape=tuple(baseline_shape),
        followup_shape=tuple(followup_shape),
        method="identity",
        matches=0,
        inliers=0,
        inlier_ratio=0.0,
        reprojection_error_px=None,
        ecc_correlation=None,
        refined=False,
        overlap=1.0 if same else 0.0,
        reliable=same,
        reason="ok (photos taken as registered)"
        if same
        else f"photos taken as registered but their sizes differ: {baseline_shape} "
        f"vs {followup_shape}",
    )


def align_images(
    baseline: np.ndarray, followup: np.ndarray, settings: AlignSettings | None = None
) -> Alignment:
    """Estimate the homography that maps the follow-up photo onto the baseline photo.

    Args:
        baseline: (H, W, 3) uint8 RGB or (H, W) uint8 grey baseline photo.
        followup: (H', W', 3) uint8 RGB or (H', W') uint8 grey follow-up photo.
        settings: Detector and reliability thresholds; None for the defaults.

    Returns:
        The alignment; ``reliable`` is False (with the reasons) rather than raising when the
        photos cannot be aligned with confidence.
    """
    settings = settings or AlignSettings()
    baseline_grey, followup_grey = _grey(baseline), _grey(followup)
    shapes = (baseline_grey.shape[:2], followup_grey.shape[:2])
    diagonal = float(np.hypot(*shapes[0]))

    base_small, base_scale = _shrink(baseline_grey, settings.feature_max_side)
    follow_small, follow_scale = _shrink(followup_grey, settings.feature_max_side)
    base_points, follow_points = _ratio_matches(
        _equalise(base_small), _equalise(follow_small), settings
    )
    matches = len(base_points)
    failed = _failure(shapes, matches)
    if matches < 4:
        return failed(f"too few key-point matches ({matches}); photos look unrelated")

    homography_small, inlier_mask = cv2.findHomography(
        follow_points,
        base_points,
        cv2.USAC_MAGSAC,
        settings.ransac_threshold_px,
        maxIters=10_000,
        confidence=0.999,
    )
    if homography_small is None or inlier_mask is None:
        return failed(f"no homography fits the {matches} key-point matches")
    inlier = inlier_mask.ravel().astype(bool)
    # Back to full-resolution pixels: H = S_base^-1 . H_small . S_follow.
    homography = (
        np.diag([1 / base_scale, 1 / base_scale, 1.0])
        @ homography_small
        @ np.diag([follow_scale, follow_scale, 1.0])
    )
    homography /= homography[2, 2]
    method = f"{settings.detector}+magsac"

    refined = False
    ecc_frames = _ecc_frames(baseline_grey, followup_grey, settings)
    problems = _geometry_problems(homography, shapes, settings)
    if settings.refine and not problems:
        candidate = _refine_ecc(homography, ecc_frames, settings)
        gain = settings.min_refine_gain
        if candidate is not None:
            shift = _corner_shift(homography, candidate, shapes[1])
            before = _ecc_correlation(homography, ecc_frames)
            after = _ecc_correlation(candidate, ecc_frames)
            if shift > settings.max_refine_shift * diagonal:
                logger.info("ECC refinement discarded: it moved a corner %.1f px", shift)
            elif after is not None and (before is None or after >= before + gain):
                homography, refined, method = candidate, True, f"{method}+ecc"
                problems = _geometry_problems(homography, shapes, settings)

    inliers = int(inlier.sum())
    inlier_ratio = inliers / matches
    base_full = base_points[inlier] / base_scale
    follow_full = follow_points[inlier] / follow_scale
    errors = np.linalg.norm(_project(homography, follow_full) - base_full, axis=1)
    reprojection_error = float(np.median(errors)) if inliers else None
    correlation = _ecc_correlation(homography, ecc_frames)
    overlap = _overlap(homography, shapes)

    # The match statistics come first in the reason: they are the root cause when they fail.
    match_problems = []
    if inliers < settings.min_inliers:
        match_problems.append(f"too few inliers ({inliers} < {settings.min_inliers})")
    if inlier_ratio < settings.min_inlier_ratio:
        match_problems.append(f"inlier ratio {inlier_ratio:.2f} < {settings.min_inlier_ratio:.2f}")
    problems = match_problems + problems
    limit_px = settings.max_reprojection_error * diagonal
    if reprojection_error is None or reprojection_error > limit_px:
        shown = "n/a" if reprojection_error is None else f"{reprojection_error:.2f}"
        problems.append(f"median reprojection error {shown} px > {limit_px:.1f} px")
    if overlap < settings.min_overlap:
        problems.append(f"common area {overlap:.0%} of the baseline < {settings.min_overlap:.0%}")
    if correlation is None or correlation < settings.min_ecc_correlation:
        shown = "n/a" if correlation is None else f"{correlation:.2f}"
        problems.append(
            f"aligned photos disagree (ECC correlation {shown} < "
            f"{settings.min_ecc_correlation:.2f})"
        )
    alignment = Alignment(
        homography=homography,
        baseline_shape=shapes[0],
        followup_shape=shapes[1],
        method=method,
        matches=matches,
        inliers=inliers,
        inlier_ratio=inlier_ratio,
        reprojection_error_px=reprojection_error,
        ecc_correlation=correlation,
        refined=refined,
        overlap=overlap,
        reliable=not problems,
        reason="; ".join(problems) if problems else "ok",
    )
    if not alignment.reliable:
        logger.warning("alignment unreliable: %s", alignment.reason)
    return alignment


def refine_homography(
    baseline: np.ndarray,
    followup: np.ndarray,
    homography: np.ndarray,
    settings: AlignSettings | None = None,
) -> np.ndarray | None:
    """ECC refinement of a follow-up -> baseline homography (step 4, without its checks).

    Args:
        baseline: (H, W, 3) uint8 RGB or (H, W) uint8 grey baseline photo.
        followup: (H', W', 3) or (H', W') uint8 follow-up photo.
        homography: (3, 3) starting estimate, follow-up pixels -> baseline pixels.
        settings: ECC sizes and stopping rule; None for the defaults.

    Returns:
        (3, 3) float64 refined homography, or None when ECC does not converge.
    """
    settings = settings or AlignSettings()
    frames = _ecc_frames(_grey(baseline), _grey(followup), settings)
    return _refine_ecc(np.asarray(homography, np.float64), frames, settings)


def warp_to_baseline(
    image: np.ndarray, alignment: Alignment, *, nearest: bool = False, fill: int = 0
) -> np.ndarray:
    """Put a follow-up image (photo, mask or label map) into the baseline frame.

    Args:
        image: (H', W') or (H', W', C) array in the follow-up frame; bool is allowed.
        alignment: Alignment with a homography.
        nearest: Nearest-neighbour sampling (for masks and labels); else bilinear.
        fill: Value outside the follow-up's field of view.

    Returns:
        Array of the baseline's (H, W), same dtype as ``image``.
    """
    if alignment.homography is None:
        raise ValueError(f"no homography to warp with ({alignment.reason})")
    height, width = alignment.baseline_shape
    is_bool = image.dtype == bool
    source = image.astype(np.uint8) if is_bool else image
    interpolation = cv2.INTER_NEAREST if nearest or is_bool else cv2.INTER_LINEAR
    warped = cv2.warpPerspective(
        source,
        alignment.homography,
        (width, height),
        flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=fill,
    )
    return warped.astype(bool) if is_bool else warped


def common_area(alignment: Alignment) -> np.ndarray:
    """(H, W) bool in the baseline frame: pixels that the follow-up photo also shows."""
    inside = np.ones(alignment.followup_shape, bool)
    return warp_to_baseline(inside, alignment, nearest=True)


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        grey = image
    elif image.ndim == 3 and image.shape[2] == 3:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    else:
        raise ValueError(f"expected (H, W) or (H, W, 3) image, got shape {image.shape}")
    if grey.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {grey.dtype}")
    return grey


def _shrink(grey: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink so the long side is at most ``max_side``; returns the image and its scale."""
    scale = min(1.0, max_side / max(grey.shape[:2]))
    if scale >= 1.0:
        return grey, 1.0
    size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
    shrunk = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    # Exact per-axis scales differ by rounding; their mean is within half a pixel.
    actual = 0.5 * (size[0] / grey.shape[1] + size[1] / grey.shape[0])
    return shrunk, actual


def _ecc_frames(
    baseline_grey: np.ndarray, followup_grey: np.ndarray, settings: AlignSettings
) -> tuple[np.ndarray, float, np.ndarray, float]:
    """Both photos shrunk to ``ecc_max_side`` and equalised, with their scales."""
    base, base_scale = _shrink(baseline_grey, settings.ecc_max_side)
    follow, follow_scale = _shrink(followup_grey, settings.ecc_max_side)
    return _equalise(base), base_scale, _equalise(follow), follow_scale


def _equalise(grey: np.ndarray) -> np.ndarray:
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)


def _ratio_matches(
    base: np.ndarray, follow: np.ndarray, settings: AlignSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Matched key-point coordinates ``(baseline (N, 2), follow-up (N, 2))`` float32."""
    if settings.detector == "sift":
        detector, norm = cv2.SIFT_create(nfeatures=settings.max_features), cv2.NORM_L2
    else:
        detector, norm = cv2.ORB_create(nfeatures=settings.max_features), cv2.NORM_HAMMING
    base_keys, base_desc = detector.detectAndCompute(base, None)
    follow_keys, follow_desc = detector.detectAndCompute(follow, None)
    empty = np.zeros((0, 2), np.float32)
    if base_desc is None or follow_desc is None or len(base_keys) < 2 or len(follow_keys) < 2:
        return empty, empty
    pairs = cv2.BFMatcher(norm).knnMatch(follow_desc, base_desc, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < settings.ratio * p[1].distance]
    if not good:
        return empty, empty
    base_points = np.float32([base_keys[m.trainIdx].pt for m in good])
    follow_points = np.float32([follow_keys[m.queryIdx].pt for m in good])
    return base_points, follow_points


def _project(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points through a homography; points at infinity become NaN."""
    ones = np.ones((len(points), 1))
    mapped = np.hstack([points.astype(np.float64), ones]) @ homography.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return mapped[:, :2] / mapped[:, 2:3]


def _corners(shape: tuple[int, int]) -> np.ndarray:
    height, width = shape
    return np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], float)


def _signed_area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _geometry_problems(
    homography: np.ndarray, shapes: tuple[tuple[int, int], ...], settings: AlignSettings
) -> list[str]:
    """Checks that a plausible camera move between visits always passes."""
    corners = _corners(shapes[1])
    denominators = np.hstack([corners, np.ones((4, 1))]) @ homography[2]
    if np.any(denominators <= 1e-9):
        return ["homography folds the follow-up photo (points behind the camera)"]
    projected = _project(homography, corners)
    if not cv2.isContourConvex(projected.astype(np.float32)):
        return ["homography twists the follow-up photo (warped frame not convex)"]
    original_area = _signed_area(corners)
    warped_area = _signed_area(projected)
    if warped_area <= 0:
        return ["homography mirrors the follow-up photo"]
    scale = warped_area / original_area
    problems = []
    if not 1 / settings.max_scale_change <= scale <= settings.max_scale_change:
        problems.append(
            f"implausible change of scale (area x{scale:.2f}, limit x{settings.max_scale_change})"
        )
    return problems


def _overlap(homography: np.ndarray, shapes: tuple[tuple[int, int], ...]) -> float:
    """Share of the baseline frame covered by the warped follow-up frame."""
    projected = _project(homography, _corners(shapes[1]))
    if not np.all(np.isfinite(projected)) or _signed_area(projected) <= 0:
        return 0.0
    if not cv2.isContourConvex(projected.astype(np.float32)):
        return 0.0
    frame = _corners(shapes[0]).astype(np.float32)
    area, _ = cv2.intersectConvexConvex(frame, projected.astype(np.float32))
    return float(np.clip(area / _signed_area(frame), 0.0, 1.0))


def _corner_shift(first: np.ndarray, second: np.ndarray, shape: tuple[int, int]) -> float:
    corners = _corners(shape)
    shift = np.linalg.norm(_project(first, corners) - _project(second, corners), axis=1)
    return float(np.max(shift)) if np.all(np.isfinite(shift)) else float("inf")


def _ecc_warp(homography: np.ndarray, base_scale: float, follow_scale: float) -> np.ndarray:
    """Full-size follow-up->baseline homography as ECC's small-baseline->small-follow-up warp."""
    to_small_follow = np.diag([follow_scale, follow_scale, 1.0])
    from_small_base = np.diag([1 / base_scale, 1 / base_scale, 1.0])
    warp = to_small_follow @ np.linalg.inv(homography) @ from_small_base
    return warp / warp[2, 2]


def _from_ecc_warp(warp: np.ndarray, base_scale: float, follow_scale: float) -> np.ndarray:
    base_to_follow = (
        np.diag([1 / follow_scale, 1 / follow_scale, 1.0])
        @ warp.astype(np.float64)
        @ np.diag([base_scale, base_scale, 1.0])
    )
    homography = np.linalg.inv(base_to_follow)
    return homography / homography[2, 2]


def _refine_ecc(
    homography: np.ndarray,
    frames: tuple[np.ndarray, float, np.ndarray, float],
    settings: AlignSettings,
) -> np.ndarray | None:
    base, base_scale, follow, follow_scale = frames
    warp = _ecc_warp(homography, base_scale, follow_scale).astype(np.float32)
    criteria = (
        cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT,
        settings.ecc_iterations,
        settings.ecc_epsilon,
    )
    try:
        # The baseline is ECC's template: it finds W with follow(W(x)) ~ base(x).
        _, warp = cv2.findTransformECC(
            base, follow, warp, cv2.MOTION_HOMOGRAPHY, criteria, None, 5
        )
    except cv2.error as error:
        logger.info(
            "ECC refinement did not converge (%s); keeping the feature homography",
            str(error).strip().splitlines()[-1],
        )
        return None
    if not np.all(np.isfinite(warp)):
        return None
    return _from_ecc_warp(warp, base_scale, follow_scale)


def _ecc_correlation(
    homography: np.ndarray, frames: tuple[np.ndarray, float, np.ndarray, float]
) -> float | None:
    """ECC correlation of the baseline and the warped follow-up over their common area."""
    base, base_scale, follow, follow_scale = frames
    warp = _ecc_warp(homography, base_scale, follow_scale)
    size = (base.shape[1], base.shape[0])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(follow, warp, size, flags=flags)
    valid = cv2.warpPerspective(
        np.full(follow.shape, 255, np.uint8),
        warp,
        size,
        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
    )
    # Shrink the valid area by a pixel so interpolated border pixels do not count.
    valid = cv2.erode(valid, np.ones((3, 3), np.uint8))
    if int(np.count_nonzero(valid)) < 64:
        return None
    try:
        return float(cv2.computeECC(base, warped, valid))
    except cv2.error:
        return None


def _failure(shapes: tuple[tuple[int, int], ...], matches: int):
    def failed(reason: str) -> Alignment:
        logger.warning("alignment failed: %s", reason)
        return Alignment(
            homography=None,
            baseline_shape=shapes[0],
            followup_shape=shapes[1],
            method="none",
            matches=matches,
            inliers=0,
            inlier_ratio=0.0,
            reprojection_error_px=None,
            ecc_correlation=None,
            refined=False,
            overlap=0.0,
            reliable=False,
            reason=reason,
        )

    return failed
