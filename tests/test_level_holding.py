"""A follow-up patch keeps its baseline VASI level when its depigmented share barely moved,
and a follow-up's patches can be cut along its baseline's, so merges and splits keep their
grades."""

from __future__ import annotations

import numpy as np
import pytest

from vitiseg.compare.align import identity_alignment
from vitiseg.compare.change import compare_masks
from vitiseg.compare.pairs import comparison_row
from vitiseg.vasi import LevelReference, VasiConfig, score_region, score_region_labelled
from vitiseg.vasi.patches import extents_of_labels, largest_overlaps, partition_by_reference

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


def test_extents_of_labels_counts_each_label_present_even_when_it_does_not_touch():
    labels = np.array([[3, 3, 0, 3], [0, 0, 0, 7]])
    depigmented = np.array([[True, False, True, True], [False, False, False, True]])
    first, second = extents_of_labels(labels, depigmented)
    assert (first.label, first.area_px, first.lesion_px) == (3, 3, 2)  # (0, 2) is outside
    assert first.bbox == (0, 0, 1, 4) and first.centroid == pytest.approx((0.0, 4 / 3))
    assert (second.label, second.area_px, second.lesion_px) == (7, 1, 1)
    assert extents_of_labels(np.zeros((2, 2), int), np.ones((2, 2), bool)) == []


def test_partition_follows_the_reference_patches_and_keeps_new_extents_apart():
    reference = np.array(
        [
            [1, 1, 0, 0, 2, 2, 0, 0],
            [1, 1, 0, 0, 2, 2, 0, 0],
        ]
    )
    # Extent 5 bridges patches 1 and 2; extent 6 touches neither.
    labels = np.array(
        [
            [5, 5, 5, 5, 5, 5, 0, 6],
            [0, 5, 0, 0, 0, 0, 0, 6],
        ]
    )
    parts = partition_by_reference(labels, reference)
    assert parts.tolist() == [
        [1, 1, 1, 2, 2, 2, 0, 3],
        [0, 1, 0, 0, 0, 0, 0, 3],
    ]
    # One reference patch broken in two: both pieces take its label.
    broken = np.array([[4, 0, 0, 0, 0, 0, 0, 0], [0, 9, 0, 0, 0, 0, 0, 0]])
    assert set(np.unique(partition_by_reference(broken, reference))) == {0, 1}
    assert not partition_by_reference(np.zeros_like(labels), reference).any()
    with pytest.raises(ValueError, match="shape"):
        partition_by_reference(labels, reference[:1])


def compare(before_outline, before_depigmented, after_outline, after_depigmented, **options):
    skin = np.ones(SHAPE, bool)
    return compare_masks(
        skin,
        before_outline,
        skin,
        after_outline,
        identity_alignment(SHAPE, SHAPE),
        "face",
        config=EXACT,
        baseline_depigmented=before_depigmented,
        followup_depigmented=after_depigmented,
        **options,
    )


def test_two_patches_bridged_at_follow_up_keep_their_own_grades():
    left, right = disc((100, 70), 40), disc((100, 170), 40)
    bridge = np.zeros(SHAPE, bool)
    bridge[98:103, 100:141] = True  # the follow-up outline joins them: one extent
    depigmented = depigmented_share_of(left, 0.55) | depigmented_share_of(right, 0.72, seed=1)
    outline = left | right

    def improvement(**options):
        result = compare(outline, depigmented, outline | bridge, depigmented, **options)
        return result.response.improvement, result.followup

    mixed, mixed_followup = improvement()
    # One patch of share 0.63 (level 75 %) where the baseline had 50 % and 75 %.
    assert len(mixed_followup.patches) == 1 and mixed_followup.patches[0].level == 0.75
    disc_px, bridge_px = np.count_nonzero(left), np.count_nonzero(bridge & ~outline)
    assert mixed == pytest.approx(1 - 0.75 * (2 * disc_px + bridge_px) / (1.25 * disc_px))
    cut, cut_followup = improvement(follow_baseline_patches=True)
    assert [patch.level for patch in cut_followup.patches] == [0.5, 0.75]
    assert [patch.label for patch in cut_followup.patches] == [1, 2]
    assert abs(cut) < 0.02  # only the bridge's few pixels are new


def test_a_patch_broken_in_two_at_follow_up_is_graded_whole():
    patch = disc((100, 130), 50)
    gap = np.zeros(SHAPE, bool)
    gap[:, 128:133] = True  # an unaffected strip splits the follow-up outline
    left_half, right_half = patch & ~gap & (np.arange(SHAPE[1]) < 128), patch & ~gap
    right_half &= np.arange(SHAPE[1]) > 132
    before = depigmented_share_of(patch, 0.4)
    # The same 40 % overall, unevenly: 30 % on the left (level 25 %), 50 % on the right.
    after = depigmented_share_of(left_half, 0.3) | depigmented_share_of(right_half, 0.5, seed=1)

    def result(**options):
        return compare(patch, before, patch & ~gap, after, **options)

    split = result()
    assert sorted(patch.level for patch in split.followup.patches) == [0.25, 0.5]
    assert split.response.improvement > 0.2  # a quarter "better" with nothing healed
    whole = result(follow_baseline_patches=True)
    (followup_patch,) = whole.followup.patches
    assert followup_patch.level == 0.5 and followup_patch.label == 1
    assert abs(whole.response.improvement) < 0.1  # the strip's pixels only


def test_healing_and_new_patches_still_count_when_cut_along_the_baseline():
    old, new = disc((100, 70), 40), disc((100, 200), 30)
    before = depigmented_share_of(old, 0.9)
    # The old patch repigments to 20 % (level 90 % -> 25 %) and a new full patch appears.
    after = depigmented_share_of(old, 0.2) | new
    result = compare(old, before, old | new, after, follow_baseline_patches=True)
    levels = {patch.label: patch.level for patch in result.followup.patches}
    assert levels == {1: 0.25, 2: 1.0}  # the new patch numbered after the baseline's
    old_px, new_px = np.count_nonzero(old), np.count_nonzero(new)
    expected = 1 - (0.25 * old_px + new_px) / (0.9 * old_px)
    assert result.response.improvement == pytest.approx(expected)
