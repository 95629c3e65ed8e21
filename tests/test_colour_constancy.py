"""Per-photo colour constancy: a white balance or exposure gain does not reach the network."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import make_tiny_dataset
from vitiseg.data.colour_constancy import REFERENCE_RGB, channel_gains
from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.torch_dataset import load_case
from vitiseg.inference.predictor import Predictor
from vitiseg.models.model_folder import Preprocessing, load_metadata
from vitiseg.training.settings import DatasetSpec, TrainSettings
from vitiseg.training.trainer import train

CAST = np.array([0.9, 1.0, 1.1])


def _photo(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((48, 64, 3)) * 150 + 50).astype(np.uint8)  # no clipping under CAST


def _relit(rgb: np.ndarray, gains) -> np.ndarray:
    return np.clip(np.round(rgb * np.asarray(gains)), 0, 255).astype(np.uint8)


def test_gain_cancels_a_colour_cast_and_an_exposure_change():
    rgb = _photo()
    rescaled = rgb / 255 * channel_gains(rgb, "gain")
    for gains in (CAST, (0.85, 0.85, 0.85)):
        relit = _relit(rgb, gains)
        # Exact but for the rounding of the re-lit photo to 8 bits.
        np.testing.assert_allclose(relit / 255 * channel_gains(relit, "gain"), rescaled, atol=4e-3)
    np.testing.assert_allclose(rescaled.reshape(-1, 3).mean(0), REFERENCE_RGB, atol=1e-4)


def test_white_balance_evens_the_channels_but_keeps_the_level():
    rgb = _photo()
    balanced = rgb / 255 * channel_gains(rgb, "white_balance")
    darker = _relit(rgb, (0.8, 0.8, 0.8))
    means = balanced.reshape(-1, 3).mean(0)
    np.testing.assert_allclose(
        means / means.mean(), np.divide(REFERENCE_RGB, np.mean(REFERENCE_RGB)), atol=1e-4
    )
    assert means.mean() == pytest.approx((rgb / 255).mean(), abs=1e-4)  # the level kept
    darker_balanced = darker / 255 * channel_gains(darker, "white_balance")
    assert darker_balanced.mean() == pytest.approx(0.8 * balanced.mean(), abs=2e-3)


def test_none_changes_nothing_and_an_unknown_mode_is_refused():
    assert channel_gains(_photo(), "none") is None
    with pytest.raises(ValueError, match="colour_constancy='grey'"):
        channel_gains(_photo(), "grey")


def test_a_model_trained_with_it_scores_a_cast_photo_as_the_photo(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    settings = TrainSettings(
        arch="compact_unet",
        model_kwargs={"width": 4},
        long_side=64,
        tile=64,
        batch_size=2,
        samples_per_epoch=4,
        max_epochs=1,
        colour_constancy="gain",
    )
    train(settings, [DatasetSpec(dataset)], tmp_path / "run")
    folder = tmp_path / "run" / "model"
    assert load_metadata(folder).preprocessing.colour_constancy == "gain"
    # Training photos carry the whole photo's gains, as the predictor takes them.
    case = load_case(load_dataset(dataset)[0], "d", 64, colour_constancy="gain")
    np.testing.assert_array_equal(case.gains, channel_gains(case.image, "gain"))

    predictor = Predictor.from_folder(folder)
    rgb = _photo(1)
    cooler = _relit(rgb, CAST)
    moved = np.abs(predictor.predict(cooler).lesion - predictor.predict(rgb).lesion).max()
    plain = Predictor.from_folder(folder)
    plain.metadata = replace(plain.metadata, preprocessing=Preprocessing())
    moved_plain = np.abs(plain.predict(cooler).lesion - plain.predict(rgb).lesion).max()
    # Without the rescaling the same network's output moves; with it, 8-bit rounding only.
    assert moved < 0.1 * moved_plain


def test_a_model_folder_with_an_unknown_mode_is_refused_on_loading(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    settings = TrainSettings(
        arch="compact_unet", model_kwargs={"width": 4}, long_side=64, tile=64, max_epochs=1
    )
    train(
        replace(settings, batch_size=2, samples_per_epoch=2),
        [DatasetSpec(dataset)],
        tmp_path / "run",
    )
    path = tmp_path / "run" / "model" / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["preprocessing"]["colour_constancy"] = "grey"
    path.write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match=r"metadata\.json.*colour_constancy='grey'"):
        load_metadata(path.parent)
