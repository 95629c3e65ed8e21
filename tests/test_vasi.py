"""VASI of constructed masks with known answers (docs/vasi.md)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vitiseg.paths import config_dir
from vitiseg.vasi import (
    VasiConfig,
    bland_altman,
    combine_photos,
    icc_2_1,
    load_vasi_config,
    mean_absolute_error,
    mosteller_bsa_cm2,
    plot_bland_altman,
    response,
    score_region,
    snap_level,
    total_vasi,
)
from vitiseg.vasi.patches import close_with_disk

FIXED_RADIUS = VasiConfig(merge_radius_px=2.0)


def face_photo(size: int = 64, skin: tuple[int, int] = (12, 52)) -> tuple[np.ndarray, np.ndarray]:
    """A (size, size) photo whose skin is the square rows/cols [12, 52): 1600 px."""
    skin_mask = np.zeros((size, size), bool)
    skin_mask[skin[0] : skin[1], skin[0] : skin[1]] = True
    return skin_mask, np.zeros_like(skin_mask)


# --- region-share mode: the issue's face examples -------------------------------------------


def test_solid_lesion_over_a_quarter_of_the_face_gives_f_vasi_075() -> None:
    skin, lesion = face_photo()
    lesion[12:32, 12:32] = True  # 400 of 1600 skin px
    score = score_region(skin, lesion, "face")
    assert score.skin_px == 1600
    assert score.lesion_px == 400
    assert score.affected_fraction == 0.25
    assert score.hand_units_region == 3.0
    assert score.hand_units_affected == 0.75
    assert score.vasi == 0.75
    assert [(p.area_px, p.level) for p in score.patches] == [(400, 1.0)]
    assert total_vasi([score]).f_vasi == 0.75


def test_fully_depigmented_face_gives_3_and_clean_face_gives_0() -> None:
    skin, lesion = face_photo()
    full = score_region(skin, skin.copy(), "face")
    assert full.vasi == 3.0
    assert full.affected_fraction == 1.0
    clean = score_region(skin, lesion, "face")
    assert clean.vasi == 0.0
    assert clean.patches == ()
    assert clean.affected_fraction == 0.0


def test_lesion_counts_as_visible_skin_and_roi_limits_both() -> None:
    skin, lesion = face_photo()
    skin[12:32, 12:32] = False  # a skin model that leaves lesion pixels out of "skin"
    lesion[12:32, 12:32] = True
    assert score_region(skin, lesion, "face").vasi == 0.75
    roi = np.zeros_like(skin)
    roi[12:52, 12:32] = True  # left half of the face: 800 px, 400 of them depigmented
    score = score_region(skin, lesion, "face", roi=roi)
    assert (score.skin_px, score.lesion_px, score.vasi) == (800, 400, 1.5)


def test_many_patches_are_all_kept_and_summed() -> None:
    skin, lesion = face_photo()
    lesion[14:22, 14:22] = True  # 64 px
    lesion[14:22, 40:50] = True  # 80 px
    lesion[40:50, 20:36] = True  # 160 px
    score = score_region(skin, lesion, "face", config=FIXED_RADIUS)
    assert sorted(p.area_px for p in score.patches) == [64, 80, 160]
    assert score.vasi == pytest.approx(3.0 * 304 / 1600, abs=1e-15)


def test_small_patches_are_dropped_by_pixels_and_by_cm2() -> None:
    skin, lesion = face_photo()
    lesion[14:18, 14:18] = True  # 16 px
    lesion[30:40, 30:40] = True  # 100 px
    by_px = score_region(skin, lesion, "face", config=VasiConfig(min_patch_area_px=17))
    assert [p.area_px for p in by_px.patches] == [100]
    assert by_px.dropped_small == 1
    by_cm2 = score_region(
        skin, lesion, "face", pixels_per_cm=2.0, config=VasiConfig(min_patch_area_cm2=5.0)
    )  # 5 cm² = 20 px at 2 px/cm
    assert (by_cm2.min_patch_area_px, by_cm2.dropped_small) == (20.0, 1)
    assert by_cm2.mode == "region_share"
    assert by_cm2.patches[0].area_cm2 == 25.0


# --- depigmentation levels ------------------------------------------------------------------


def speckled_patch(scale: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """100x100 skin with a 60x60 patch holding 36 pigment specks of 3x3 (9 % pigment)."""
    skin = np.ones((100, 100), bool)
    lesion = np.zeros_like(skin)
    lesion[20:80, 20:80] = True
    for row in range(23, 69, 9):
        for col in range(23, 69, 9):
            lesion[row : row + 3, col : col + 3] = False
    block = np.ones((scale, scale), bool)
    return np.kron(skin, block), np.kron(lesion, block)


def test_patch_with_pigment_specks_over_a_tenth_has_level_90() -> None:
    skin, lesion = speckled_patch()
    assert lesion[20:80, 20:80].sum() == 3600 - 36 * 9
    score = score_region(skin, lesion, "trunk", config=FIXED_RADIUS)
    (patch,) = score.patches
    assert patch.area_px == 3600  # the specks are inside the extent
    assert patch.lesion_px == 3276
    assert patch.level == 0.9
    assert score.vasi == pytest.approx(36.0 * 0.36 * 0.9, abs=1e-12)


def test_without_merging_specks_stay_outside_and_level_is_100() -> None:
    skin, lesion = speckled_patch()
    (patch,) = score_region(skin, lesion, "trunk", config=VasiConfig(merge_radius_px=0)).patches
    assert (patch.area_px, patch.level) == (3276, 1.0)


def test_merge_radius_as_fraction_gives_the_same_patches_at_double_resolution() -> None:
    config = VasiConfig(merge_radius_fraction=0.03)
    small = score_region(*speckled_patch(1), "trunk", config=config)
    large = score_region(*speckled_patch(2), "trunk", config=config)
    assert large.merge_radius_px == pytest.approx(2 * small.merge_radius_px)
    assert [p.level for p in small.patches] == [p.level for p in large.patches] == [0.9]
    assert small.affected_fraction == large.affected_fraction == 0.36


def test_finely_half_pigmented_patch_has_level_50() -> None:
    skin, lesion = face_photo()
    rows, cols = np.indices(lesion.shape)
    checkerboard = (rows + cols) % 2 == 0
    lesion[20:44, 20:44] = checkerboard[20:44, 20:44]
    (patch,) = score_region(skin, lesion, "face", config=FIXED_RADIUS).patches
    assert patch.lesion_px == 288
    assert patch.level == 0.5


@pytest.mark.parametrize(
    ("share", "level"),
    [(1.0, 1.0), (0.95, 1.0), (0.9499, 0.9), (0.825, 0.9), (0.8, 0.75), (0.625, 0.75),
     (0.6, 0.5), (0.375, 0.5), (0.3, 0.25), (0.175, 0.25), (0.1, 0.1), (0.05, 0.1),
     (0.0499, None), (0.0, None)],
)  # fmt: skip
def test_snap_level_uses_midpoint_cut_points(share: float, level: float | None) -> None:
    config = VasiConfig()
    assert snap_level(share, config.levels, config.cut_points) == level


def test_faint_extent_below_lowest_cut_is_dropped() -> None:
    skin, lesion = face_photo()
    # Single depigmented pixels every 5 px, closed with radius 3, form one extent of
    # 1184 px holding 64 depigmented pixels: a share of 5.4 %.
    lesion[14:50:5, 14:50:5] = True
    kept = score_region(skin, lesion, "face", config=VasiConfig(merge_radius_px=3.0))
    (patch,) = kept.patches
    assert (patch.area_px, patch.lesion_px, patch.level) == (1184, 64, 0.1)
    cut_at_6_percent = VasiConfig(
        merge_radius_px=3.0, cut_points=(0.95, 0.825, 0.625, 0.375, 0.175, 0.06)
    )
    dropped = score_region(skin, lesion, "face", config=cut_at_6_percent)
    assert (dropped.patches, dropped.dropped_faint, dropped.vasi) == ((), 1, 0.0)


# --- merging keeps separate patches separate ------------------------------------------------


@pytest.mark.parametrize(("gap", "count"), [(5, 2), (6, 2), (4, 1), (3, 1)])
def test_patches_further_apart_than_twice_the_radius_stay_separate(gap: int, count: int) -> None:
    skin = np.ones((40, 60), bool)
    lesion = np.zeros_like(skin)
    lesion[10:30, 10:25] = True
    lesion[10:30, 25 + gap : 40 + gap] = True
    score = score_region(skin, lesion, "trunk", config=FIXED_RADIUS)  # 2 * radius = 4 px
    assert len(score.patches) == count


def test_ring_around_normal_skin_stays_a_100_percent_patch() -> None:
    skin = np.ones((60, 60), bool)
    lesion = np.zeros_like(skin)
    lesion[10:50, 10:50] = True
    lesion[18:42, 18:42] = False  # a pigmented island far wider than the merge disk
    (patch,) = score_region(skin, lesion, "trunk", config=FIXED_RADIUS).patches
    # The ring plus 3 px in each corner of the island, where the disk cannot reach.
    assert (patch.area_px, patch.level) == (1600 - 576 + 4 * 3, 1.0)


def test_closing_equals_textbook_closing_with_a_euclidean_disk() -> None:
    from scipy import ndimage

    mask = np.random.default_rng(0).random((40, 50)) < 0.3
    radius = 2.5
    yy, xx = np.mgrid[-3:4, -3:4]
    disk = yy**2 + xx**2 <= radius**2
    # Pixels beyond the image are background: pad, close, crop.
    padded = np.pad(mask, 4)
    expected = ndimage.binary_erosion(ndimage.binary_dilation(padded, disk), disk)[4:-4, 4:-4]
    assert np.array_equal(close_with_disk(mask, radius), expected)
    assert np.array_equal(close_with_disk(mask, 0.5), mask)


# --- calibrated mode ------------------------------------------------------------------------


def test_mosteller_body_surface() -> None:
    assert mosteller_bsa_cm2(180.0, 80.0) == 20_000.0
    with pytest.raises(ValueError):
        mosteller_bsa_cm2(0.0, 80.0)


def test_calibrated_mode_gives_area_over_body_surface() -> None:
    skin, lesion = face_photo()
    lesion[12:32, 12:32] = True  # 400 px = 4 cm² at 10 px/cm
    score = score_region(
        skin, lesion, "face", pixels_per_cm=10.0, body_surface_cm2=20_000.0, config=FIXED_RADIUS
    )
    assert score.mode == "calibrated"
    assert score.patches[0].area_cm2 == 4.0
    assert score.hand_units_affected == 0.02  # 4 cm² / 200 cm² per hand unit
    assert score.vasi == 0.02
    assert score.visible_skin_cm2 == 16.0
    assert score.hand_units_visible == 0.08


def test_calibrated_mode_is_capped_at_the_region_hand_units() -> None:
    skin = np.ones((100, 100), bool)
    score = score_region(skin, skin, "face", pixels_per_cm=1.0, body_surface_cm2=10_000.0)
    assert score.uncapped_vasi == 100.0
    assert score.vasi == 3.0
    assert score.capped


def test_hand_unit_percent_scales_hand_units() -> None:
    skin, _ = face_photo()
    config = VasiConfig(hand_unit_percent=0.78)
    assert score_region(skin, skin, "face", config=config).vasi == 3.0 / 0.78
    calibrated = score_region(
        skin, skin, "face", pixels_per_cm=10.0, body_surface_cm2=20_000.0, config=config
    )
    assert calibrated.vasi == pytest.approx(16.0 / 156.0, abs=1e-15)


# --- probabilities --------------------------------------------------------------------------


def test_probabilities_are_thresholded_and_reported() -> None:
    skin, lesion = face_photo()
    lesion[12:32, 12:32] = True
    skin_probability = np.where(skin, 0.9, 0.1)
    lesion_probability = np.where(lesion, 0.75, 0.25)
    score = score_region(skin_probability, lesion_probability, "face")
    assert (score.skin_px, score.lesion_px, score.vasi) == (1600, 400, 0.75)
    assert score.mean_lesion_probability == 0.75
    assert score_region(skin, lesion, "face").mean_lesion_probability is None


def test_bad_inputs_raise_clear_errors() -> None:
    skin, lesion = face_photo()
    with pytest.raises(KeyError, match="face"):
        score_region(skin, lesion, "tail")
    with pytest.raises(ValueError, match="within"):
        score_region(skin, lesion.astype(float) + 2.0, "face")
    with pytest.raises(ValueError, match="shape"):
        score_region(skin[:10], lesion, "face")
    with pytest.raises(ValueError, match="pixels_per_cm"):
        score_region(skin, lesion, "face", pixels_per_cm=0.0)


# --- T-VASI ---------------------------------------------------------------------------------


def test_t_vasi_sums_regions_and_respects_each_cap() -> None:
    skin, lesion = face_photo()
    lesion[12:32, 12:32] = True
    face = score_region(skin, lesion, "face")  # 0.75
    hands = score_region(skin, skin, "hands")  # all depigmented: 4.0
    everything = np.ones((100, 100), bool)
    trunk = score_region(  # 100 hand units of photo, capped at 36
        everything, everything, "trunk", pixels_per_cm=1.0, body_surface_cm2=10_000.0
    )
    total = total_vasi([trunk, face, hands])
    assert total.t_vasi == 40.75
    assert total.f_vasi == 0.75
    assert [(c.region, c.vasi, c.capped) for c in total.contributions] == [
        ("face", 0.75, False),
        ("hands", 4.0, False),
        ("trunk", 36.0, True),
    ]
    assert total.t_vasi_max == 43.0
    assert total.regions_missing == (
        "head_neck", "upper_extremities", "lower_extremities", "feet", "genitals",
    )  # fmt: skip
    without_head = total_vasi([trunk, face, hands], VasiConfig(include_head_neck_in_t_vasi=False))
    assert without_head.t_vasi == 40.0
    assert without_head.f_vasi == 0.75
    json.dumps(total.to_dict())  # JSON-ready


def test_photos_of_one_region_combine_by_visible_skin_weight() -> None:
    skin, lesion = face_photo()
    lesion[12:32, 12:32] = True
    quarter = score_region(skin, lesion, "face")  # 1600 px skin, VASI 0.75
    small_skin = np.zeros((64, 64), bool)
    small_skin[0:20, 0:20] = True
    full = score_region(small_skin, small_skin, "face")  # 400 px skin, VASI 3.0
    combined = combine_photos([quarter, full])
    assert combined.vasi == 1.2  # (0.75 * 1600 + 3.0 * 400) / 2000
    assert combined.n_photos == 2
    assert total_vasi([quarter, full]).f_vasi == 1.2


def test_calibrated_photos_of_one_region_add_up_then_cap() -> None:
    skin = np.ones((20, 20), bool)  # 400 px = 4 cm² at 10 px/cm = 0.02 hand units each
    views = [
        score_region(skin, skin, "hands", pixels_per_cm=10.0, body_surface_cm2=20_000.0)
        for _ in range(3)
    ]
    assert combine_photos(views).vasi == pytest.approx(0.06, abs=1e-15)
    big = np.ones((100, 100), bool)
    huge = score_region(big, big, "hands", pixels_per_cm=1.0, body_surface_cm2=10_000.0)
    assert combine_photos([huge, views[0]]).vasi == 4.0
    with pytest.raises(ValueError, match="modes"):
        combine_photos([huge, score_region(big, big, "hands")])


# --- response -------------------------------------------------------------------------------


def test_response_improvement_and_flags() -> None:
    half = response(10.0, 5.0)
    assert (half.improvement, half.vasi50, half.vasi75, half.vasi90) == (0.5, True, False, False)
    assert (0.7 - 0.175) / 0.7 < 0.75  # float division lands just under the threshold ...
    assert response(0.7, 0.175).vasi75  # ... and still counts as a 75 % improvement
    ninety = response(10.0, 1.0)
    assert (ninety.vasi75, ninety.vasi90) == (True, True)
    worse = response(10.0, 12.0)
    assert worse.improvement == pytest.approx(-0.2, abs=1e-15)
    assert (worse.vasi50, worse.change) == (False, 2.0)


def test_zero_baseline_gives_no_improvement_and_no_flags() -> None:
    result = response(0.0, 1.0)
    assert (result.improvement, result.vasi50, result.vasi75, result.vasi90) == (None,) * 4
    assert not result.below_detectable_change
    assert response(0.0, 0.0).below_detectable_change


def test_change_below_smallest_detectable_change_is_flagged() -> None:
    assert response(10.0, 9.5).below_detectable_change  # 5 % < 7.1 %
    assert not response(10.0, 9.0).below_detectable_change  # 10 %
    assert not response(
        10.0, 9.5, VasiConfig(smallest_detectable_change=0.04)
    ).below_detectable_change


def test_response_accepts_scores() -> None:
    skin, lesion = face_photo()
    baseline = score_region(skin, skin, "face")  # 3.0
    lesion[12:32, 12:32] = True
    followup = score_region(skin, lesion, "face")  # 0.75
    assert response(baseline, followup).improvement == 0.75
    assert response(total_vasi([baseline]), total_vasi([followup])).vasi75
    with pytest.raises(ValueError):
        response(-1.0, 0.0)


# --- config ---------------------------------------------------------------------------------


def test_defaults_equal_the_shipped_yaml() -> None:
    assert load_vasi_config(config_dir() / "vasi" / "default.yaml") == VasiConfig()
    assert load_vasi_config(None) == VasiConfig()


def test_region_tables_sum_to_100_percent() -> None:
    assert math.fsum(VasiConfig().regions.values()) == 100.0
    child = load_vasi_config(config_dir() / "vasi" / "child.yaml")
    assert math.fsum(child.regions.values()) == 100.0
    assert (child.regions["face"], child.regions["lower_extremities"]) == (5.0, 26.0)


def test_config_from_omegaconf_and_rejects_typos() -> None:
    from omegaconf import OmegaConf

    node = OmegaConf.create({"merge_radius_px": 3, "hand_unit_percent": "${oc.decode:'0.78'}"})
    config = load_vasi_config(node)
    assert (config.merge_radius_px, config.hand_unit_percent) == (3, 0.78)
    with pytest.raises(ValueError, match="merge_radius"):
        load_vasi_config({"merge_radius": 3})
    with pytest.raises(ValueError, match="descending"):
        VasiConfig(cut_points=(0.05, 0.175, 0.375, 0.625, 0.825, 0.95))


def test_records_are_json_ready() -> None:
    score = score_region(*speckled_patch(), "trunk", config=FIXED_RADIUS)
    payload = json.loads(json.dumps(score.to_dict()))
    assert payload["patches"][0]["level"] == 0.9
    assert payload["patches"][0]["bbox"] == [20, 20, 80, 80]
    assert json.loads(json.dumps(VasiConfig().to_dict()))["regions"]["face"] == 3.0


# --- agreement ------------------------------------------------------------------------------

SHROUT_FLEISS_TABLE_2 = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
    dtype=float,
)


def test_icc_2_1_matches_shrout_fleiss_worked_example() -> None:
    value = icc_2_1(SHROUT_FLEISS_TABLE_2)
    assert round(value, 2) == 0.29  # as published for their worked example
    assert value == pytest.approx(184 / 635, abs=1e-12)  # exact from their mean squares


def test_icc_2_1_edge_cases() -> None:
    targets = np.array([1.0, 4.0, 2.0, 8.0])
    assert icc_2_1(np.column_stack([targets, targets, targets])) == 1.0
    assert math.isnan(icc_2_1(np.full((4, 3), 5.0)))
    with pytest.raises(ValueError):
        icc_2_1(np.ones((1, 3)))
    with pytest.raises(ValueError):
        icc_2_1(np.array([[1.0, np.nan], [2.0, 3.0]]))


def test_bland_altman_and_mean_absolute_error() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([0.0, 2.0, 2.0, 4.0])
    result = bland_altman(a, b)
    sd = math.sqrt(1.0 / 3.0)
    assert (result.n, result.mean_difference) == (4, 0.5)
    assert result.sd == pytest.approx(sd, abs=1e-15)
    assert result.lower_loa == pytest.approx(0.5 - 1.96 * sd, abs=1e-15)
    assert result.upper_loa == pytest.approx(0.5 + 1.96 * sd, abs=1e-15)
    assert mean_absolute_error(a, b) == 0.5
    with pytest.raises(ValueError):
        bland_altman(a, b[:3])


def test_plot_bland_altman_writes_a_png(tmp_path) -> None:
    path = plot_bland_altman([1.0, 2.0, 3.0], [1.5, 2.0, 2.5], tmp_path / "ba" / "plot.png", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
