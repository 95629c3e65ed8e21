"""ONNX export and the ONNX Runtime backends: same outputs as PyTorch, chosen by name."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vitiseg.data.resize import resize_long_side
from vitiseg.inference.factory import predictor_from_config
from vitiseg.inference.onnx_backend import (
    EXPORT_LOCK_NAME,
    ONNX_INFO_NAME,
    ONNX_INT8_NAME,
    ONNX_NAME,
    OnnxBackend,
    ensure_onnx,
    export_onnx,
    make_backend,
    quantize_onnx,
)
from vitiseg.inference.predictor import Predictor, TorchBackend
from vitiseg.models.model_folder import (
    ModelMetadata,
    Preprocessing,
    load_metadata,
    load_model_folder,
    save_model_folder,
)
from vitiseg.models.unet import build_model

TILE = 64
MODELS = {
    "compact": ("compact_unet", {"width": 4}),
    "resnet18": ("resnet_unet", {"encoder": "resnet18", "decoder_channels": [32, 16, 16, 8, 8]}),
    "relative-colour": (
        "resnet_unet",
        {"decoder_channels": [16, 8, 8, 8, 8], "relative_colour_px": 24},
    ),
    # The shipped model's shape since session 63: three outputs, the skin on a decoder of its own.
    "skin-branch": (
        "resnet_unet",
        {"decoder_channels": [16, 8, 8, 8, 8], "out_channels": 3, "skin_branch": True},
    ),
}


def _save(folder: Path, arch: str, kwargs: dict, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = build_model(arch, **kwargs).eval()
    metadata = ModelMetadata(
        arch=arch, model_kwargs=kwargs, preprocessing=Preprocessing(long_side=128, tile=TILE)
    )
    save_model_folder(folder, model, metadata)
    return folder


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx-models")
    return {name: _save(root / name, *spec) for name, spec in MODELS.items()}


def _torch_probabilities(folder: Path, batch: np.ndarray) -> np.ndarray:
    model, _ = load_model_folder(folder)
    with torch.inference_mode():
        return torch.sigmoid(model(torch.from_numpy(batch))).numpy()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_exported_graph_equals_pytorch(model_dirs, name):
    folder = model_dirs[name]
    path = export_onnx(folder)
    assert path == folder / ONNX_NAME
    info = json.loads((folder / ONNX_INFO_NAME).read_text())
    assert info["model_id"] == load_metadata(folder).model_id and info["tile"] == TILE
    backend = OnnxBackend(path, threads=1)
    # Exported with batch 1; the batch axis is dynamic.
    batch = np.random.default_rng(1).standard_normal((3, 3, TILE, TILE)).astype(np.float32)
    got = backend(batch)
    outputs = MODELS[name][1].get("out_channels", 2)
    assert got.shape == (3, outputs, TILE, TILE) and got.dtype == np.float32
    np.testing.assert_allclose(got, _torch_probabilities(folder, batch), atol=1e-4, rtol=0)


def test_onnx_backend_refuses_other_tile_sizes(model_dirs):
    backend = OnnxBackend(export_onnx(model_dirs["compact"]))
    with pytest.raises(ValueError, match=f"exported for {TILE} px tiles"):
        backend(np.zeros((1, 3, TILE + 16, TILE), np.float32))


@pytest.mark.parametrize(("name", "stride"), [("compact", 16), ("relative-colour", 32)])
def test_dynamic_size_export_pads_to_the_stride_like_the_model(tmp_path, name, stride):
    folder = _save(tmp_path / "m", *MODELS[name])
    path = export_onnx(folder, dynamic_hw=True)
    backend = OnnxBackend(path)
    assert backend.tile is None and backend.stride == stride
    batch = np.random.default_rng(2).standard_normal((2, 3, 45, 70)).astype(np.float32)
    got = backend(batch)
    assert got.shape == (2, 2, 45, 70)
    np.testing.assert_allclose(got, _torch_probabilities(folder, batch), atol=1e-4, rtol=0)


def test_predictor_with_onnx_gives_the_torch_masks(model_dirs):
    folder = model_dirs["resnet18"]
    metadata = load_metadata(folder)
    model, _ = load_model_folder(folder)
    # Odd size, larger than the working side: resize, several overlapping tiles, resize back.
    rgb = np.random.default_rng(3).integers(0, 256, (150, 203, 3), dtype=np.uint8)
    by_torch = Predictor(TorchBackend(model), metadata, batch_size=3)
    by_onnx = Predictor(OnnxBackend(export_onnx(folder)), metadata, batch_size=3)
    torch_prediction, onnx_prediction = by_torch.predict(rgb), by_onnx.predict(rgb)
    np.testing.assert_allclose(onnx_prediction.lesion, torch_prediction.lesion, atol=1e-4)
    np.testing.assert_allclose(onnx_prediction.skin, torch_prediction.skin, atol=1e-4)
    # Masks agree wherever the probability is not within rounding of the threshold.
    decided = np.abs(torch_prediction.lesion - metadata.thresholds["lesion"]) > 1e-4
    assert decided.mean() > 0.99
    torch_masks, onnx_masks = by_torch.masks(torch_prediction), by_onnx.masks(onnx_prediction)
    assert np.array_equal(torch_masks[1][decided], onnx_masks[1][decided])
    assert torch_masks[0].shape == onnx_masks[0].shape == (150, 203)


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_photo_smaller_than_a_tile_gets_the_torch_answer(model_dirs, backend):
    # One tile at the stride-padded size, as PyTorch runs it; a static graph would pad to
    # the whole tile and change the answer (0.045 lesion Dice on real photos, once).
    folder = model_dirs["resnet18"]
    metadata = load_metadata(folder)
    rgb = np.random.default_rng(5).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    by_torch = Predictor(make_backend(folder, "torch"), metadata).predict(rgb)
    by_onnx = Predictor(make_backend(folder, backend, threads=1), metadata).predict(rgb)
    tolerance = 1e-4 if backend == "onnx" else 0.05
    np.testing.assert_allclose(by_onnx.lesion, by_torch.lesion, atol=tolerance)
    np.testing.assert_allclose(by_onnx.skin, by_torch.skin, atol=tolerance)


def test_torch_pads_a_small_photo_to_the_models_own_stride_like_onnx(model_dirs):
    folder = model_dirs["compact"]  # stride 16, not the ResNet's 32
    metadata = load_metadata(folder)
    torch_backend = make_backend(folder, "torch")
    assert torch_backend.any_size_stride == make_backend(folder, "onnx").any_size_stride == 16
    network_inputs = []
    torch_backend.model.register_forward_pre_hook(
        lambda _, args: network_inputs.append(tuple(args[0].shape))
    )
    rgb = np.random.default_rng(7).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    by_torch = Predictor(torch_backend, metadata).predict(rgb)
    assert network_inputs == [(1, 3, 48, 64)]  # 37x53 padded to 16s, not to 64x64
    by_onnx = Predictor(make_backend(folder, "onnx", threads=1), metadata).predict(rgb)
    np.testing.assert_allclose(by_onnx.lesion, by_torch.lesion, atol=1e-4)
    np.testing.assert_allclose(by_onnx.skin, by_torch.skin, atol=1e-4)


def test_backend_is_chosen_by_name_and_exports_once(tmp_path):
    folder = _save(tmp_path / "m", *MODELS["compact"])
    assert make_backend(folder, "torch").name == "torch"
    assert make_backend(folder, "torch-bf16").name == "torch-bf16"
    backend = make_backend(folder, "onnx", threads=1)
    assert isinstance(backend, OnnxBackend) and backend.path == folder / ONNX_NAME
    assert backend.name == "onnx"
    assert backend.model_id == load_metadata(folder).model_id
    first_export = (folder / ONNX_NAME).stat().st_mtime_ns
    make_backend(folder, "onnx")
    assert (folder / ONNX_NAME).stat().st_mtime_ns == first_export, "current export re-made"
    # The graph takes any height and width: another tile size needs no new export.
    other_tile = make_backend(folder, "onnx", tile=96)
    assert other_tile.tile is None and other_tile.any_size_stride == 16  # compact stride
    assert (folder / ONNX_NAME).stat().st_mtime_ns == first_export
    with pytest.raises(ValueError, match="choose from torch, torch-bf16, onnx, onnx-int8"):
        make_backend(folder, "tensorrt")
    with pytest.raises(ValueError, match="CPU only"):
        make_backend(folder, "onnx", device="cuda")


def test_ensure_onnx_exports_once_under_its_lock_and_keeps_the_int8_file(tmp_path):
    folder = _save(tmp_path / "m", *MODELS["compact"])
    path = ensure_onnx(folder)
    assert path == folder / ONNX_NAME and (folder / EXPORT_LOCK_NAME).is_file()
    exported = path.stat().st_mtime_ns
    assert ensure_onnx(folder) == path and path.stat().st_mtime_ns == exported
    int8_path = ensure_onnx(folder, int8=True)  # the lock file left behind blocks nothing
    assert int8_path == folder / ONNX_INT8_NAME and path.stat().st_mtime_ns == exported
    # A later fp32 request must not export again, which would delete the int8 file.
    assert ensure_onnx(folder) == path and int8_path.is_file()
    assert ensure_onnx(folder, int8=True) == int8_path


def test_new_weights_make_the_old_export_stale(tmp_path):
    folder = _save(tmp_path / "m", *MODELS["compact"], seed=0)
    old_id = make_backend(folder, "onnx").model_id
    _save(folder, *MODELS["compact"], seed=1)  # retrained weights, same folder
    backend = make_backend(folder, "onnx")
    assert backend.model_id == load_metadata(folder).model_id != old_id
    batch = np.random.default_rng(4).standard_normal((1, 3, TILE, TILE)).astype(np.float32)
    np.testing.assert_allclose(backend(batch), _torch_probabilities(folder, batch), atol=1e-4)


def test_read_only_model_folder_exports_to_the_cache(tmp_path, monkeypatch):
    folder = _save(tmp_path / "shipped", *MODELS["compact"])
    monkeypatch.setenv("VITISEG_CACHE", str(tmp_path / "cache"))
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode, **kw: Path(path) != folder and real_access(path, mode)
    )
    backend = make_backend(folder, "onnx")
    assert backend.path.is_relative_to(tmp_path / "cache")
    assert not (folder / ONNX_NAME).exists()


def test_int8_model_runs_and_stays_close(tmp_path):
    folder = _save(tmp_path / "m", *MODELS["resnet18"])
    path = quantize_onnx(folder, n_calibration=4)
    assert path == folder / ONNX_INT8_NAME
    info = json.loads((folder / ONNX_INFO_NAME).read_text())
    assert info["int8"]["calibration_tiles"] == 4
    assert "synthetic" in info["int8"]["calibration_source"]
    int8_backend = make_backend(folder, "onnx-int8")
    assert isinstance(int8_backend, OnnxBackend) and int8_backend.name == "onnx-int8"
    assert OnnxBackend(path).name == "onnx-int8"  # named by its file when built directly
    batch = np.random.default_rng(5).standard_normal((2, 3, TILE, TILE)).astype(np.float32)
    got = OnnxBackend(path)(batch)
    expected = _torch_probabilities(folder, batch)
    assert got.shape == expected.shape
    assert np.abs(got - expected).mean() < 0.02
    assert np.abs(got - expected).max() < 0.15


def test_bf16_torch_backend_stays_close_to_fp32(tmp_path):
    from vitiseg.inference.predictor import TorchBackend

    folder = _save(tmp_path / "m", *MODELS["resnet18"])
    backend = make_backend(folder, "torch-bf16")
    assert isinstance(backend, TorchBackend) and backend.bf16
    batch = np.random.default_rng(6).standard_normal((2, 3, TILE, TILE)).astype(np.float32)
    got = backend(batch)
    expected = _torch_probabilities(folder, batch)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got - expected).mean() < 0.02
    assert np.abs(got - expected).max() < 0.15


def test_factory_builds_an_onnx_predictor_from_settings(tmp_path):
    folder = _save(tmp_path / "m", *MODELS["compact"])
    infer = {
        "device": "cpu",
        "backend": "onnx",
        "long_side": None,
        "tile": None,
        "batch_size": 2,
        "tta": False,
        "threads": 1,
    }
    predictor, resolved = predictor_from_config(folder, infer)
    assert isinstance(predictor.backend, OnnxBackend) and resolved == folder.resolve()
    prediction = predictor.predict(np.full((70, 90, 3), 128, np.uint8))
    assert prediction.lesion.shape == (70, 90)
    # The memory arena is off unless asked for (peak memory at 12 MP, docs/performance.md).
    assert not predictor.backend.session.get_session_options().enable_cpu_mem_arena
    with_arena = predictor_from_config(folder, {**infer, "onnx_memory_arena": True})[0]
    assert with_arena.backend.session.get_session_options().enable_cpu_mem_arena
    # Settings written before the backend option still give the PyTorch predictor.
    del infer["backend"]
    assert isinstance(predictor_from_config(folder, infer)[0].backend, TorchBackend)


def _benchmark_module():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
    spec = importlib.util.spec_from_file_location("vitiseg_benchmark_script", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_benchmark_results_file_keeps_one_latest_block_and_a_history(tmp_path):
    benchmark = _benchmark_module()
    results = tmp_path / "docs" / "benchmark_results.md"
    benchmark.update_results(results, "first table", "| run 1 |")
    benchmark.update_results(results, "second table", "| run 2 |")
    text = results.read_text()
    assert "second table" in text and "first table" not in text
    assert text.index("| run 1 |") < text.index("| run 2 |") < text.index("history:end")
    assert text.count(benchmark.HISTORY_HEADER.splitlines()[0]) == 1
    results.write_text("hand-written notes without markers\n")
    with pytest.raises(SystemExit, match="marker"):
        benchmark.update_results(results, "table", "| run 3 |")


def test_benchmark_timer_runs_the_path_vitiseg_score_runs(model_dirs):
    # The timing wrapper must not hide the one-tile shortcut, and counts the pixels the
    # network really saw (for its FLOP figures).
    benchmark = _benchmark_module()
    folder = model_dirs["resnet18"]
    metadata = load_metadata(folder)
    rgb = np.random.default_rng(6).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    timer = benchmark.TimedBackend(make_backend(folder, "torch"))
    assert timer.any_size_stride == 32
    timed = Predictor(timer, metadata).predict(rgb)
    direct = Predictor(make_backend(folder, "torch"), metadata).predict(rgb)
    np.testing.assert_allclose(timed.lesion, direct.lesion, atol=1e-6)
    height, width = resize_long_side(rgb, metadata.preprocessing.long_side).shape[:2]
    assert timer.tiles == 1
    assert timer.tile_pixels == (-(-height // 32) * 32) * (-(-width // 32) * 32)


def test_benchmark_synthetic_photos_have_the_asked_size(tmp_path):
    benchmark = _benchmark_module()
    paths = benchmark.write_photos(tmp_path, (160, 90), 2, seed=0)
    import cv2

    assert [cv2.imread(str(p)).shape for p in paths] == [(90, 160, 3)] * 2
    assert benchmark.parse_size("4000x3000") == (4000, 3000)


@pytest.mark.slow
def test_benchmark_script_runs_end_to_end_at_tiny_size(tmp_path, tiny_dataset):
    import subprocess

    folder = _save(tmp_path / "m", *MODELS["compact"])
    results = tmp_path / "results.md"
    script = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
    command = [
        sys.executable, str(script), "--checkpoint", str(folder), "--backend", "torch,onnx",
        "--sizes", "96x64", "--n-images", "1", "--no-peer", "--threads", "1",
        "--val-dataset", str(tiny_dataset), "--workdir", str(tmp_path / "work"),
        "--results", str(results), "--pipeline", "shared",
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    text = results.read_text()
    for label in ("vitiseg-torch", "vitiseg-onnx", "vitiseg-onnx-fullres"):
        assert f"| {label} | 96x64 |" in text
    assert "lesion Dice on tiny" in text and "matmul peak measured in this run" in text
    assert "memory arena off (the default)" in text  # as vitiseg-score runs ONNX Runtime


def test_onnx_scoring_path_does_not_import_torch():
    # Importing torch costs about half a gigabyte; the ONNX path must not need it.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from vitiseg.inference.factory import predictor_from_config\n"
        "from vitiseg.inference.onnx_backend import OnnxBackend\n"
        "from vitiseg.scoring import runner\n"
        "runner.environment_summary()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
