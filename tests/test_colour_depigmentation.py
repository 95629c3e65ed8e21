"""The colour rule for depigmented pixels: lighter than the normal skin around them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vitiseg.inference.depigmentation import depigmented_by_colour
from vitiseg.inference.predictor import Predictor
from vitiseg.models.model_folder import load_metadata
from vitiseg.synth.color import lab_to_linear, linear_to_srgb, rgb8_to_lab


def _photo_of_lightness(light: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 grey-beige photo whose CIELAB L* is ``light`` (a = 12, b = 18)."""
    lab = np.stack([light, np.full_like(light, 12.0), np.full_like(light, 18.0)], axis=-1)
    return np.round(linear_to_srgb(lab_to_linear(lab.astype(np.float32))) * 255).astype(np.uint8)


def _patch_scene(lift: float, gradient: float = 0.0):
    """120 x 160 photo, all skin, lit from the left (L* falls by ``gradient`` across it); a
    lesion extent on the bright side whose left half is lifted by ``lift`` above the skin
    (its right half is lighter than the photo's median skin, not than the skin beside it)."""
    columns = np.linspace(0.0, 1.0, 160, dtype=np.float32)
    light = np.tile(55.0 - gradient * columns, (120, 1))
    lesion = np.zeros((120, 160), bool)
    lesion[40:80, 10:50] = True
    lifted = np.zeros_like(lesion)
    lifted[40:80, 10:30] = True
    light = light + lift * lifted
    return _photo_of_lightness(light), np.ones_like(lesion), lesion, lifted


@pytest.mark.parametrize("gradient", [0.0, 30.0])
def test_pixels_lighter_than_the_skin_around_them_are_depigmented(gradient):
    rgb, skin, lesion, lifted = _patch_scene(lift=20.0, gradient=gradient)
    before = rgb.copy()
    depigmented = depigmented_by_colour(rgb, skin, lesion, min_lift=6.0)
    assert np.array_equal(rgb, before)  # the photo is not modified
    assert not (depigmented & ~lesion).any()
    # A light gradient across the photo must not pass for depigmentation (the reference is
    # local); edge pixels of the lifted half may blur, the bulk must agree.
    agreement = (depigmented == lifted)[lesion].mean()
    assert agreement > 0.95, agreement


def test_a_lift_below_the_threshold_is_not_depigmented():
    rgb, skin, lesion, _ = _patch_scene(lift=3.0)
    assert not depigmented_by_colour(rgb, skin, lesion, min_lift=6.0).any()
    rgb, skin, lesion, _ = _patch_scene(lift=9.0)
    assert depigmented_by_colour(rgb, skin, lesion, min_lift=6.0).any()


def test_no_normal_skin_means_no_colour_answer():
    rgb, skin, lesion, _ = _patch_scene(lift=20.0)
    assert depigmented_by_colour(rgb, lesion, lesion) is None  # skin is the lesion only
    with pytest.raises(ValueError, match="differ in size"):
        depigmented_by_colour(rgb, skin[:, :10], lesion)


def test_lightness_of_a_known_colour():
    rgb = _photo_of_lightness(np.full((2, 2), 60.0, np.float32))
    assert np.allclose(rgb8_to_lab(rgb)[..., 0], 60.0, atol=0.5)


class _BackendOfMasks:
    """Skin everywhere; lesion where the scene's extent is; depigmented output nowhere."""

    def __init__(self, lesion: np.ndarray) -> None:
        self.lesion = lesion.astype(np.float32)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        tile = batch.shape[-1]
        out = np.zeros((batch.shape[0], 3, tile, tile), np.float32)
        out[:, 0] = 1.0
        h, w = self.lesion.shape
        out[:, 1, :h, :w] = self.lesion
        return out


def test_the_predictor_takes_depigmented_pixels_from_the_colour_rule_when_asked(
    tiny_model_dir,
):
    rgb, _, lesion, lifted = _patch_scene(lift=20.0)
    metadata = replace(
        load_metadata(tiny_model_dir), output_names=("skin", "lesion", "depigmented")
    )
    backend = _BackendOfMasks(lesion)
    by_model = Predictor(backend, metadata, long_side=0, tile=160)
    by_colour = Predictor(backend, metadata, long_side=0, tile=160, depigmented_source="colour")
    prediction = by_model.predict(rgb)
    skin, predicted_lesion = by_model.masks(prediction, rgb)
    assert np.array_equal(predicted_lesion, lesion)
    assert not by_model.depigmented_mask(prediction, predicted_lesion, rgb, skin).any()
    colour = by_colour.depigmented_mask(prediction, predicted_lesion, rgb, skin)
    assert (colour == lifted)[lesion].mean() > 0.95
    with pytest.raises(ValueError, match="depigmented_source"):
        Predictor(backend, metadata, depigmented_source="color")
