"""Lesion mask clean-up: closing, hole filling, small components, and the model's say."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vitiseg.inference.colour_refine import refine_lesion_by_colour
from vitiseg.inference.postprocess import (
    LesionPostprocess,
    clean_lesion_mask,
    keep_seeded_components,
    lesion_mask,
)
from vitiseg.inference.predictor import Prediction, Predictor


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    return 2 * (prediction & truth).sum() / (prediction.sum() + truth.sum())


def two_patches_with_a_gap(gap: int) -> np.ndarray:
    mask = np.zeros((100, 100), bool)
    mask[30:70, 20:48] = True
    mask[30:70, 48 + gap : 80] = True
    return mask


def test_identity_setting_returns_an_equal_copy():
    mask = two_patches_with_a_gap(3)
    cleaned = clean_lesion_mask(mask, LesionPostprocess())
    assert cleaned is not mask
    np.testing.assert_array_equal(cleaned, mask)


def test_closing_joins_a_narrow_gap_and_leaves_the_input_alone():
    mask = two_patches_with_a_gap(3)
    before = mask.copy()
    cleaned = clean_lesion_mask(mask, LesionPostprocess(close_fraction=0.06))
    np.testing.assert_array_equal(mask, before)
    assert cleaned[50, 48:51].all(), "the 3-px gap should be closed"
    # Closing never removes lesion pixels and does not grow the outer outline much.
    assert cleaned[mask].all()
    assert cleaned.sum() < mask.sum() * 1.15


def test_closing_does_not_glue_a_patch_to_the_border():
    mask = np.zeros((60, 60), bool)
    mask[2:20, 2:20] = True
    cleaned = clean_lesion_mask(mask, LesionPostprocess(close_fraction=0.1))
    assert not cleaned[0, :].any() and not cleaned[:, 0].any()


def test_fill_holes_fills_an_enclosed_island_only():
    mask = np.zeros((80, 80), bool)
    mask[10:50, 10:50] = True
    mask[25:35, 25:35] = False  # pigmented island inside the patch
    mask[60:70, 60:80] = True
    mask[63:67, 75:80] = False  # notch open to the border side: not a hole
    cleaned = clean_lesion_mask(mask, LesionPostprocess(fill_holes=True))
    assert cleaned[25:35, 25:35].all()
    assert not cleaned[63:67, 76:80].any()


def test_small_components_are_dropped_large_ones_kept():
    mask = np.zeros((100, 100), bool)
    mask[10:40, 10:40] = True  # 900 px = 9 % of the image
    mask[80:83, 80:83] = True  # 9 px speck
    cleaned = clean_lesion_mask(mask, LesionPostprocess(min_area_fraction=0.002))
    assert cleaned[10:40, 10:40].all()
    assert not cleaned[80:83, 80:83].any()


@pytest.mark.parametrize(
    "bad", [{"close_fraction": -0.1}, {"close_fraction": 0.5}, {"min_area_fraction": 1.0}]
)
def test_out_of_range_settings_are_refused(bad):
    with pytest.raises(ValueError):
        LesionPostprocess(**bad)


def test_setting_round_trips_through_a_dict():
    setting = LesionPostprocess(close_fraction=0.02, min_area_fraction=0.001, fill_holes=True)
    assert LesionPostprocess.from_dict(setting.to_dict()) == setting
    colour = LesionPostprocess(colour_iterations=3, colour_sure_lesion=0.7, colour_long_side=256)
    assert LesionPostprocess.from_dict(colour.to_dict()) == colour
    assert LesionPostprocess.from_dict({}) == LesionPostprocess()


def test_predictor_applies_the_clean_up_named_in_the_model_metadata(tiny_model_dir):
    predictor = Predictor.from_folder(tiny_model_dir)
    lesion = np.zeros((100, 100), np.float32)
    lesion[10:40, 10:40] = 0.9
    lesion[80:83, 80:83] = 0.9
    prediction = Prediction(skin=np.zeros_like(lesion), lesion=lesion)
    _, plain = predictor.masks(prediction)
    assert plain[81, 81]
    predictor.metadata = dataclasses.replace(
        predictor.metadata, lesion_postprocess={"min_area_fraction": 0.002}
    )
    skin, cleaned = predictor.masks(prediction)
    assert cleaned[20, 20] and not cleaned[81, 81]
    assert not (cleaned & ~skin).any()


def test_skin_gate_drops_lesion_where_the_skin_output_sees_background():
    lesion_probability = np.full((20, 20), 0.9, np.float32)
    skin_probability = np.zeros((20, 20), np.float32)
    skin_probability[:, :10] = 0.8  # left half skin, right half a white wall
    plain = lesion_mask(lesion_probability, skin_probability, 0.5, LesionPostprocess())
    gated = lesion_mask(
        lesion_probability, skin_probability, 0.5, LesionPostprocess(skin_gate=0.3)
    )
    assert plain.all()
    assert gated[:, :10].all() and not gated[:, 10:].any()


def pale_patch_photo() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 120 x 160 photo of brown skin with a pale 60 x 60 patch, and a network that is
    sure only of the patch's 20 x 20 core and unsure (0.3) about the rest of it."""
    rng = np.random.default_rng(0)
    rgb = np.empty((120, 160, 3), np.float32)
    rgb[:] = (150, 100, 75)
    rgb[30:90, 40:100] = (235, 215, 205)
    rgb = np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)
    lesion = np.full((120, 160), 0.02, np.float32)
    lesion[30:90, 40:100] = 0.3
    lesion[50:70, 60:80] = 0.95
    truth = np.zeros((120, 160), bool)
    truth[30:90, 40:100] = True
    return rgb, lesion, truth


def refine(rgb, lesion, skin, long_side=0):
    """The colour refinement at fixed settings, at the photo's size unless told."""
    return refine_lesion_by_colour(
        rgb,
        lesion,
        skin,
        threshold=0.5,
        sure_lesion=0.8,
        sure_normal=0.05,
        iterations=3,
        long_side=long_side,
    )


def test_colour_refinement_grows_a_sure_core_to_the_patch_the_photo_shows():
    rgb, lesion, truth = pale_patch_photo()
    skin = np.ones_like(truth)
    before = rgb.copy(), lesion.copy()
    refined = refine(rgb, lesion, skin)
    plain = lesion >= 0.5
    assert dice(plain, truth) < 0.3
    assert dice(refined, truth) > 0.95
    np.testing.assert_array_equal(rgb, before[0])
    np.testing.assert_array_equal(lesion, before[1])


def test_colour_refinement_at_a_working_size_and_never_outside_skin():
    rgb, lesion, truth = pale_patch_photo()
    skin = np.ones_like(truth)
    skin[:, 90:] = False  # the right part of the patch is, say, a white sleeve
    refined = refine(rgb, lesion, skin, long_side=80)
    assert refined.shape == truth.shape
    assert not (refined & ~skin).any()
    assert dice(refined, truth & skin) > 0.9


def test_colour_refinement_keeps_the_threshold_without_sure_seeds():
    rgb, lesion, _ = pale_patch_photo()
    lesion = np.clip(lesion, 0.1, 0.6)  # nothing sure either way
    skin = np.ones(lesion.shape, bool)
    refined = refine(rgb, lesion, skin)
    np.testing.assert_array_equal(refined, lesion >= 0.5)


def test_colour_refinement_refuses_mismatched_sizes():
    rgb, lesion, _ = pale_patch_photo()
    with pytest.raises(ValueError, match="one size"):
        refine(rgb[:100], lesion, np.ones(lesion.shape, bool))


def test_predictor_refines_by_colour_when_the_metadata_says_and_needs_the_photo(
    tiny_model_dir,
):
    rgb, lesion, truth = pale_patch_photo()
    predictor = Predictor.from_folder(tiny_model_dir)
    predictor.metadata = dataclasses.replace(
        predictor.metadata, lesion_postprocess={"colour_iterations": 3, "colour_long_side": 0}
    )
    prediction = Prediction(skin=np.ones_like(lesion), lesion=lesion)
    with pytest.raises(ValueError, match="pass the photo"):
        predictor.masks(prediction)
    skin, refined = predictor.masks(prediction, rgb)
    assert dice(refined, truth) > 0.95 and skin.all()


@pytest.mark.parametrize(
    "bad",
    [
        {"colour_iterations": -1},
        {"colour_sure_lesion": 0.05, "colour_sure_normal": 0.05},
        {"colour_sure_lesion": 1.2},
    ],
)
def test_out_of_range_colour_settings_are_refused(bad):
    with pytest.raises(ValueError):
        LesionPostprocess(**bad)


def test_only_patches_holding_a_seed_pixel_are_kept():
    mask = np.zeros((10, 12), bool)
    mask[1:4, 1:4] = True  # seeded patch
    mask[4, 4] = True  # touches it only at a corner: the same 8-connected patch
    mask[6:9, 7:11] = True  # no seed pixel: dropped
    seed = np.zeros_like(mask)
    seed[2, 2] = True
    seed[0, 11] = True  # a seed outside the mask keeps nothing
    kept = keep_seeded_components(mask, seed)
    expected = mask.copy()
    expected[6:9, 7:11] = False
    np.testing.assert_array_equal(kept, expected)
    assert not keep_seeded_components(np.zeros_like(mask), seed).any()
