"""Weight averaging of model folders (model soups)."""

from __future__ import annotations

import pytest
import torch

from vitiseg.models.averaging import average_model_folders, average_state_dicts
from vitiseg.models.model_folder import ModelMetadata, load_model_folder, save_model_folder
from vitiseg.models.unet import build_model


def _folder(path, seed: int, width: int = 4, minutes: float = 2.0, threshold: float = 0.5):
    torch.manual_seed(seed)
    model = build_model("compact_unet", width=width)
    metadata = ModelMetadata(
        arch="compact_unet",
        model_kwargs={"width": width},
        thresholds={"skin": 0.5, "lesion": threshold},
        training={"config": {"trainer": {"seed": seed}}, "epoch": 3, "minutes": minutes},
        validation={"vitiligo-web": {"lesion": {"dice": 0.5}}},
        quality={"max_ambiguous_skin_share": 0.2},
    )
    save_model_folder(path, model, metadata)
    return path


def test_floating_tensors_are_averaged_and_counters_kept():
    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(5)}
    b = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(9)}
    averaged = average_state_dicts([a, b])
    assert torch.equal(averaged["w"], torch.tensor([2.0, 4.0]))
    assert averaged["n"].item() == 5


def test_states_with_other_layers_or_shapes_are_refused():
    with pytest.raises(ValueError, match="other layers"):
        average_state_dicts([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}])
    with pytest.raises(ValueError, match="shapes differ"):
        average_state_dicts([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}])
    with pytest.raises(ValueError, match="nothing to average"):
        average_state_dicts([])


def test_averaged_folder_holds_the_mean_weights_and_names_its_ingredients(tmp_path):
    first = _folder(tmp_path / "a", seed=1, minutes=2.0)
    second = _folder(tmp_path / "b", seed=2, minutes=3.5)
    metadata = average_model_folders([first, second], tmp_path / "soup")

    model_a, meta_a = load_model_folder(first)
    model_b, meta_b = load_model_folder(second)
    soup, loaded = load_model_folder(tmp_path / "soup")
    # weights are stored in half precision, so the mean is exact to fp16 rounding
    for name in ("head.weight", "decoders.3.convs.1.0.weight"):
        expected = (model_a.state_dict()[name] + model_b.state_dict()[name]) / 2
        torch.testing.assert_close(soup.state_dict()[name], expected, atol=2e-3, rtol=2e-3)
        assert not torch.allclose(model_a.state_dict()[name], model_b.state_dict()[name])

    assert loaded.model_id == metadata.model_id
    assert metadata.model_id not in (meta_a.model_id, meta_b.model_id)
    ingredients = loaded.training["averaged"]
    assert [item["model_id"] for item in ingredients] == [meta_a.model_id, meta_b.model_id]
    assert [item["seed"] for item in ingredients] == [1, 2]
    assert loaded.training["minutes"] == pytest.approx(5.5)
    assert loaded.validation == {}  # the ingredients' figures do not describe the mean
    assert loaded.quality == {}  # nor do thresholds chosen for one of them


def test_models_that_differ_in_more_than_weights_are_refused(tmp_path):
    first = _folder(tmp_path / "a", seed=1)
    with pytest.raises(ValueError, match="model_kwargs differs"):
        average_model_folders([first, _folder(tmp_path / "b", seed=2, width=8)], tmp_path / "x")
    with pytest.raises(ValueError, match="thresholds differs"):
        average_model_folders([first, _folder(tmp_path / "c", 2, threshold=0.4)], tmp_path / "y")
    with pytest.raises(ValueError, match="at least two"):
        average_model_folders([first], tmp_path / "z")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
