"""Networks, model folders and the tiled predictor."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from vitiseg.inference.predictor import Predictor, TorchBackend
from vitiseg.inference.tiling import gaussian_weight, predict_tiled, tile_origins
from vitiseg.models.model_folder import ModelMetadata, load_model_folder, save_model_folder
from vitiseg.models.unet import build_model


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [("compact_unet", {"width": 4}), ("resnet_unet", {"encoder": "resnet18"})],
)
@pytest.mark.parametrize("size", [(31, 45), (64, 64), (97, 130)])
def test_any_input_size_gives_two_logit_maps_of_that_size(arch, kwargs, size):
    model = build_model(arch, **kwargs).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 2, *size)


def test_a_local_torchvision_encoder_file_is_loaded_and_a_wrong_one_refused(tmp_path):
    from torchvision.models import resnet18

    encoder = resnet18(weights=None).state_dict()
    encoder_file = tmp_path / "resnet18.pth"
    torch.save({k: v for k, v in encoder.items() if not k.startswith("fc.")}, encoder_file)
    model = build_model("resnet_unet", encoder="resnet18", encoder_weights=encoder_file)
    assert torch.equal(model.stem[0].weight, encoder["conv1.weight"])
    relative = build_model(
        "resnet_unet", encoder="resnet18", encoder_weights=encoder_file, relative_colour_px=16
    )
    assert torch.equal(relative.stem[0].weight[:, :3], encoder["conv1.weight"])
    assert not relative.stem[0].weight[:, 3:].any()  # the relative inputs start silent

    renamed = tmp_path / "renamed.pth"
    torch.save({f"encoder.{k}": v for k, v in encoder.items()}, renamed)
    with pytest.raises(ValueError, match="renamed.pth: .* encoder weights missing"):
        build_model("resnet_unet", encoder="resnet18", encoder_weights=renamed)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a weights file")
    with pytest.raises(ValueError, match="garbage.pth: not a loadable resnet18 weights file"):
        build_model("resnet_unet", encoder="resnet18", encoder_weights=garbage)


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("transformer9000")


def test_model_folder_round_trip_gives_identical_outputs(tmp_path, monkeypatch):
    # Loading must not touch the network: make any socket use fail loudly.
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("network access during model loading")

    monkeypatch.setattr(socket, "socket", no_network)
    torch.manual_seed(1)
    model = build_model("compact_unet", width=4).eval()
    metadata = save_model_folder(
        tmp_path / "m",
        model,
        ModelMetadata(
            arch="compact_unet",
            model_kwargs={"width": 4},
            quality={"max_ambiguous_skin_share": 0.2},
        ),
        half=False,
    )
    loaded, loaded_meta = load_model_folder(tmp_path / "m")
    assert loaded_meta.quality == {"max_ambiguous_skin_share": 0.2}
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded_meta.model_id == metadata.model_id and metadata.model_id.startswith("compact")
    on_disk = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert on_disk["output_names"] == ["skin", "lesion"]
    assert on_disk["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert not list((tmp_path / "m").glob("*.pt")), "weights must not be pickled"


def test_a_broken_model_folder_is_refused_with_the_file_named(tmp_path):
    model = build_model("compact_unet", width=4)
    folder = tmp_path / "m"
    save_model_folder(folder, model, ModelMetadata(arch="compact_unet", model_kwargs={"width": 4}))
    metadata_json = (folder / "metadata.json").read_text()
    (folder / "metadata.json").write_text(metadata_json.replace('"width": 4', '"width": 8'))
    with pytest.raises(ValueError, match="weights.safetensors: weights do not fit"):
        load_model_folder(folder)
    (folder / "weights.safetensors").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="weights.safetensors: weights do not fit"):
        load_model_folder(folder)
    (folder / "metadata.json").write_text(metadata_json[:40])
    with pytest.raises(ValueError, match="metadata.json: not a usable vitiseg metadata.json"):
        load_model_folder(folder)
    mistyped = {**json.loads(metadata_json), "quality": {"max_ambiguous_skin_shares": 0.2}}
    (folder / "metadata.json").write_text(json.dumps(mistyped))
    with pytest.raises(ValueError, match="metadata.json: not a usable .*unknown keys"):
        load_model_folder(folder)


def test_half_precision_weights_stay_close(tmp_path):
    torch.manual_seed(2)
    model = build_model("compact_unet", width=4).eval()
    save_model_folder(tmp_path / "m", model, ModelMetadata("compact_unet", {"width": 4}))
    loaded, _ = load_model_folder(tmp_path / "m")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(torch.sigmoid(model(x)), torch.sigmoid(loaded(x)), atol=2e-2)


def test_missing_metadata_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        load_model_folder(tmp_path)


def test_tile_origins_cover_the_whole_length():
    for length in (10, 64, 65, 200, 513):
        origins = tile_origins(length, 64, 0.25)
        covered = np.zeros(max(length, 64), bool)
        for start in origins:
            covered[start : start + 64] = True
        assert covered[:length].all()
        assert origins[-1] + 64 >= length


def test_gaussian_weight_peaks_in_the_centre_and_stays_positive():
    weight = gaussian_weight(64)
    assert weight.max() == pytest.approx(1.0)
    assert weight.min() > 0
    assert weight[32, 32] > weight[0, 0]


def test_tiled_prediction_equals_whole_image_for_a_pixelwise_model():
    # A per-pixel function gives the same answer tiled or not: blending must be exact.
    image = np.random.default_rng(0).normal(size=(3, 150, 97)).astype(np.float32)

    def pixelwise(batch: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-batch[:, :2]))

    tiled = predict_tiled(image, pixelwise, tile=64, overlap=0.25)
    assert tiled.shape == (2, 150, 97)
    np.testing.assert_allclose(tiled, pixelwise(image[None])[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("long_side", [None, 0])
def test_predictor_keeps_the_photo_size(tiny_model_dir, long_side):
    predictor = Predictor.from_folder(tiny_model_dir, long_side=long_side, tta=True)
    rgb = np.random.default_rng(0).integers(0, 255, (203, 341, 3), dtype=np.uint8)
    prediction = predictor.predict(rgb)
    assert prediction.skin.shape == prediction.lesion.shape == (203, 341)
    assert prediction.uncertainty is not None and prediction.uncertainty.shape == (203, 341)
    assert prediction.lesion.min() >= 0 and prediction.lesion.max() <= 1
    skin, lesion = predictor.masks(prediction)
    assert not (lesion & ~skin).any(), "lesion must lie inside skin"


def test_torch_backend_matches_direct_model_call(tiny_model_dir):
    model, _ = load_model_folder(tiny_model_dir)
    backend = TorchBackend(model)
    batch = np.random.default_rng(1).normal(size=(2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        direct = torch.sigmoid(model(torch.from_numpy(batch))).numpy()
    np.testing.assert_allclose(backend(batch), direct, atol=1e-5)


def test_tta_uncertainty_is_the_spread_over_flips(tiny_model_dir):
    predictor = Predictor.from_folder(tiny_model_dir, long_side=0, tta=True)
    rgb = np.random.default_rng(3).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    prediction = predictor.predict(rgb)
    plain = Predictor.from_folder(tiny_model_dir, long_side=0)
    image = np.ascontiguousarray(rgb)
    runs = []
    for flip_h, flip_w in ((False, False), (False, True), (True, False), (True, True)):
        axes = tuple(a for a, f in ((0, flip_h), (1, flip_w)) if f)
        flipped = np.ascontiguousarray(np.flip(image, axes)) if axes else image
        out = plain.predict(flipped).lesion
        runs.append(np.flip(out, axes) if axes else out)
    np.testing.assert_allclose(prediction.lesion, np.mean(runs, axis=0), atol=1e-5)
    np.testing.assert_allclose(prediction.uncertainty, np.std(runs, axis=0), atol=1e-5)


def test_a_lone_small_tile_runs_at_its_own_size_and_matches_the_padded_run():
    image = np.random.default_rng(2).normal(size=(3, 70, 45)).astype(np.float32)
    shapes = []

    def pixelwise(batch: np.ndarray) -> np.ndarray:
        shapes.append(batch.shape)
        return 1 / (1 + np.exp(-batch[:, :2]))

    small = predict_tiled(image, pixelwise, tile=128, any_size_stride=32)
    full = predict_tiled(image, pixelwise, tile=128)
    assert shapes == [(1, 3, 96, 64), (1, 3, 128, 128)]
    np.testing.assert_allclose(small, full, rtol=1e-5, atol=1e-6)


def test_scales_average_the_photo_run_at_each_size(tiny_model_dir):
    rgb = np.random.default_rng(4).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    both = Predictor.from_folder(tiny_model_dir, long_side=0, scales=(0.5, 1.0)).predict(rgb)
    plain = Predictor.from_folder(tiny_model_dir, long_side=0)
    half = cv2.resize(rgb, (48, 32), interpolation=cv2.INTER_AREA)
    half_back = cv2.resize(plain.predict(half).lesion, (96, 64), interpolation=cv2.INTER_LINEAR)
    expected = (half_back + plain.predict(rgb).lesion) / 2
    np.testing.assert_allclose(both.lesion, expected, atol=1e-5)
    assert both.lesion.shape == (64, 96) and both.uncertainty is None  # no flips, no spread


def test_with_scales_the_uncertainty_is_the_flips_spread_pooled_over_sizes(tiny_model_dir):
    rgb = np.random.default_rng(5).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    predictor = Predictor.from_folder(tiny_model_dir, long_side=0, tta=True, scales=(0.5, 1.0))
    prediction = predictor.predict(rgb)
    plain = Predictor.from_folder(tiny_model_dir, long_side=0)
    variances, runs = [], []
    for image in (cv2.resize(rgb, (48, 32), interpolation=cv2.INTER_AREA), rgb):
        size_runs = []
        for axes in ((), (1,), (0,), (0, 1)):
            flipped = np.ascontiguousarray(np.flip(image, axes))
            out = np.flip(plain.predict(flipped).lesion, axes)
            size_runs.append(cv2.resize(out, (96, 64), interpolation=cv2.INTER_LINEAR))
        variances.append(np.var(size_runs, axis=0))
        runs += size_runs
    np.testing.assert_allclose(prediction.lesion, np.mean(runs, axis=0), atol=1e-5)
    np.testing.assert_allclose(prediction.uncertainty, np.sqrt(np.mean(variances, 0)), atol=1e-5)


def test_an_enlarged_pass_keeps_one_tile_when_the_backend_takes_any_size(tiny_model_dir):
    model, metadata = load_model_folder(tiny_model_dir)
    shapes = []

    class Recording(TorchBackend):
        def __call__(self, batch):
            shapes.append(batch.shape)
            return super().__call__(batch)

    backend = Recording(model)
    backend.any_size_stride = 32
    tile = metadata.preprocessing.tile
    predictor = Predictor(backend, metadata, long_side=0, tile=tile, scales=(1.5,))
    predictor.predict(np.zeros((tile, tile, 3), np.uint8))
    side = -(-round(tile * 1.5) // 32) * 32
    assert shapes == [(1, 3, side, side)]


@pytest.mark.parametrize("scales", [(), (0.0,), (1.0, 9.0)])
def test_scales_outside_a_sane_range_are_refused(tiny_model_dir, scales):
    with pytest.raises(ValueError, match="scales"):
        Predictor.from_folder(tiny_model_dir, scales=scales)
