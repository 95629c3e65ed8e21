"""A follow-up patch keeps its baseline VASI level when its depigmented share barely moved."""

from __future__ import annotations

import numpy as np
import pytest

from vitiseg.compare.align import identity_alignment
from vitiseg.compare.change import compare_masks
from vitiseg.compare.pairs import comparison_row
from vitiseg.vasi import LevelReference, VasiConfig, score_region, score_region_labelled
from vitiseg.vasi.patches import largest_overlaps

SHAPE = (200, 240)
EXACT = VasiConfig(merge_radius_px=0.0, min_patch_area_px=0, min_patch_area_fraction=0.0)


def disc(centre: tuple[int, int], radius: int) -> np.ndarray:
    rows, cols = np.ogrid[: SHAPE[0], : SHAPE[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def depigmented_share_of(patch: np.ndarray, share: float, seed: int = 0) -> np.ndarray:
    """Exactly round(share x area) of the patch's pixels, chosen at random."""
    pixels = np.flatnonzero(patch)
    chosen = np.random.default_rng(seed).choice(pixels, round(share * pixels.size), replace=False)
    mask = np.zeros(SHAPE, bool)
    mask.flat[chosen] = True
    return mask


def test_largest_overlaps_names_the_other_label_sharing_most_pixels():
    labels = np.array([[1, 1, 1, 2], [0, 0, 2, 2]])
    other = np.array([[5, 6, 6, 0], [5, 0, 0, 0]])
    assert largest_overlaps(labels, other) == {1: (6, 2)}  # label 2 overlaps nothing
    with pytest.raises(ValueError, match="shape"):
        largest_overlaps(labels, other[:1])


def test_a_share_that_barely_moved_across_a_cut_keeps_the_baseline_level():
    patch = disc((100, 120), 40)
    skin = np.ones(SHAPE, bool)
    baseline, labels = score_region_labelled(
        skin, patch, "face", config=EXACT, depigmented=depigmented_share_of(patch, 0.38)
    )
    assert baseline.patches[0].level == 0.5  # 0.38: just above the 0.375 cut
    reference = LevelReference(labels, baseline.patches, within=0.05)

    def followup(share: float, outline: np.ndarray = patch, **options):
        return score_region(
            skin,
            outline,
            "face",
            config=EXACT,
            depigmented=depigmented_share_of(outline, share, seed=1),
            **options,
        )

    alone = followup(0.365)
    held = followup(0.365, level_reference=reference)
    assert alone.patches[0].level == 0.25 and not alone.patches[0].level_held
    assert held.patches[0].level == 0.5 and held.patches[0].level_held
    assert held.vasi == pytest.approx(2 * alone.vasi)
    # A share that really moved snaps from its own value.
    moved = followup(0.30, level_reference=reference)
    assert moved.patches[0].level == 0.25 and not moved.patches[0].level_held
    # A patch lying mostly outside the baseline's keeps no baseline level.
    elsewhere = disc((100, 190), 40)
    assert np.count_nonzero(elsewhere & patch) * 2 < np.count_nonzero(elsewhere)
    shifted = followup(0.365, elsewhere, level_reference=reference)
    assert shifted.patches[0].level == 0.25 and not shifted.patches[0].level_held
    assert "level_held" in held.to_dict()["patches"][0]
    with pytest.raises(ValueError, match="between 0 and 1"):
        LevelReference(labels, baseline.patches, within=1.5)
    with pytest.raises(ValueError, match="level reference shape"):
        followup(0.365, level_reference=LevelReference(labels[:50], baseline.patches, 0.05))


def test_a_comparison_with_held_levels_reads_no_change_as_none_and_keeps_real_change():
    patch = disc((100, 120), 40)
    skin = np.ones(SHAPE, bool)
    alignment = identity_alignment(SHAPE, SHAPE)
    before = depigmented_share_of(patch, 0.38)

    def comparison(share: float, **options):
        return compare_masks(
            skin,
            patch,
            skin,
            patch,
            alignment,
            "face",
            config=EXACT,
            baseline_depigmented=before,
            followup_depigmented=depigmented_share_of(patch, share, seed=1),
            **options,
        )

    def improvement(share: float, **options) -> float:
        return comparison(share, **options).response.improvement

    assert improvement(0.365) == pytest.approx(0.5)  # a 50 % "responder" from a 1.5 pp move
    assert improvement(0.365, hold_levels_within=0.05) == pytest.approx(0.0)
    held = comparison(0.365, hold_levels_within=0.05)
    assert held.to_dict()["followup_levels_held"] == 1
    assert comparison_row(held)["followup_levels_held"] == 1
    assert comparison_row(comparison(0.365))["followup_levels_held"] == 0
    # Pigment returning in most of the patch (share 0.38 -> 0.15, level 50 % -> 10 %).
    assert improvement(0.15, hold_levels_within=0.05) == pytest.approx(0.8)
