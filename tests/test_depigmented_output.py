"""Models with a third output: the lesion outlines whole patches, ``depigmented`` the pixels
without pigment inside them. Prediction, ONNX, VASI, evaluation and scoring all carry it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import make_tiny_dataset
from vitiseg.data.dataset_format import load_dataset
from vitiseg.evaluation.calibration import (
    affected_fraction_errors,
    least_error_threshold,
    train_val_table,
)
from vitiseg.evaluation.evaluate import evaluate_case, markdown_table, summarise
from vitiseg.inference.onnx_backend import OnnxBackend, export_onnx
from vitiseg.inference.predictor import Predictor, TorchBackend
from vitiseg.io.images import read_mask
from vitiseg.models.model_folder import (
    ModelMetadata,
    Preprocessing,
    load_model_folder,
    save_model_folder,
)
from vitiseg.models.unet import build_model
from vitiseg.scoring import ScoreJob, ScoreSettings, run_score_job
from vitiseg.vasi import VasiConfig, score_region
from vitiseg.vasi.patches import patch_extents


@pytest.fixture
def three_output_model_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model("compact_unet", width=4, out_channels=3).eval()
    metadata = ModelMetadata(
        arch="compact_unet",
        model_kwargs={"width": 4, "out_channels": 3},
        preprocessing=Preprocessing(long_side=128, tile=64),
        output_names=("skin", "lesion", "depigmented"),
        thresholds={"skin": 0.5, "lesion": 0.5, "depigmented": 0.5},
    )
    folder = tmp_path / "three-outputs"
    save_model_folder(folder, model, metadata)
    return folder


class _FixedBackend:
    """Returns fixed probabilities: skin everywhere, a lesion square, depigmented in half."""

    name = "fixed"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = np.zeros((len(batch), 3, *batch.shape[2:]), np.float32)
        out[:, 0] = 0.9
        out[:, 1, 8:40, 8:40] = 0.9
        out[:, 2, 8:40, 8:24] = 0.9
        out[:, 2, 50:60, 50:60] = 0.9  # depigmented outside any outline: not a lesion
        return out


def _metadata() -> ModelMetadata:
    return ModelMetadata(
        arch="compact_unet",
        model_kwargs={"width": 4, "out_channels": 3},
        preprocessing=Preprocessing(long_side=0, tile=64),
        output_names=("skin", "lesion", "depigmented"),
    )


def test_an_outlined_patch_takes_its_level_from_the_depigmented_share():
    skin = np.ones((60, 60), bool)
    outline = np.zeros((60, 60), bool)
    outline[10:30, 10:30] = True
    depigmented = outline.copy()
    depigmented[10:30, 20:30] = False  # half of the patch keeps its pigment
    config = VasiConfig()
    alone = score_region(skin, outline, "trunk", config=config)
    split = score_region(skin, outline, "trunk", config=config, depigmented=depigmented)
    assert [p.level for p in alone.patches] == [1.0]
    assert [p.level for p in split.patches] == [0.5]
    # The extent (hand units) is the same outline either way; only the level differs.
    assert split.patches[0].area_px == alone.patches[0].area_px == 400
    assert split.lesion_px == 200 and split.vasi == pytest.approx(alone.vasi / 2)
    # Depigmented pixels outside the outline are not counted.
    outside = depigmented.copy()
    outside[40:50, 40:50] = True
    assert (
        score_region(skin, outline, "trunk", config=config, depigmented=outside).lesion_px == 200
    )
    with pytest.raises(ValueError, match="depigmented shape"):
        score_region(skin, outline, "trunk", depigmented=np.zeros((5, 5), bool))


def test_an_outline_without_depigmentation_is_no_patch():
    outline = np.zeros((40, 40), bool)
    outline[5:20, 5:20] = True
    extents = patch_extents(
        outline, np.ones_like(outline), 2.0, depigmented=np.zeros_like(outline)
    )
    assert len(extents) == 1 and extents[0].lesion_px == 0
    score = score_region(None, outline, "trunk", depigmented=np.zeros_like(outline))
    assert score.patches == () and score.dropped_faint == 1


def test_predictor_returns_the_depigmented_output_inside_the_lesion():
    predictor = Predictor(_FixedBackend(), _metadata(), long_side=0)
    rgb = np.zeros((64, 64, 3), np.uint8)
    prediction = predictor.predict(rgb)
    assert prediction.depigmented is not None and prediction.depigmented.shape == (64, 64)
    skin, lesion = predictor.masks(prediction, rgb)
    depigmented = predictor.depigmented_mask(prediction, lesion, rgb, skin)
    assert depigmented.sum() == 32 * 16 and not (depigmented & ~lesion).any()
    # This backend ignores its input, so TTA averages its output flipped back four ways.
    with_tta = Predictor(_FixedBackend(), _metadata(), long_side=0, tta=True).predict(rgb)
    flips = [np.flip(prediction.depigmented, axes) for axes in ((), (1,), (0,), (0, 1))]
    np.testing.assert_allclose(with_tta.depigmented, np.mean(flips, axis=0), atol=1e-6)


def test_a_hysteresis_seed_drops_depigmented_patches_without_a_confident_pixel():
    rgb = np.zeros((64, 64, 3), np.uint8)
    metadata = _metadata()
    predictor = Predictor(_FixedBackend(), metadata, long_side=0)
    prediction = predictor.predict(rgb)
    skin, lesion = predictor.masks(prediction, rgb)
    plain = predictor.depigmented_mask(prediction, lesion, rgb, skin)
    metadata.thresholds["depigmented_seed"] = 0.85  # the patch's 0.9 pixels seed it
    np.testing.assert_array_equal(predictor.depigmented_mask(prediction, lesion, rgb, skin), plain)
    metadata.thresholds["depigmented_seed"] = 0.95  # no pixel that sure: the patch goes
    assert plain.any() and not predictor.depigmented_mask(prediction, lesion, rgb, skin).any()


def test_a_two_output_model_has_no_depigmented_mask(tiny_model_dir):
    predictor = Predictor.from_folder(tiny_model_dir)
    rgb = np.full((40, 50, 3), 128, np.uint8)
    prediction = predictor.predict(rgb)
    skin, lesion = predictor.masks(prediction, rgb)
    assert prediction.depigmented is None
    assert predictor.depigmented_mask(prediction, lesion, rgb, skin) is None


def test_onnx_export_of_a_three_output_model_equals_pytorch(three_output_model_dir):
    backend = OnnxBackend(export_onnx(three_output_model_dir), threads=1)
    batch = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    model, _ = load_model_folder(three_output_model_dir)
    expected = TorchBackend(model)(batch)
    got = backend(batch)
    assert got.shape == (2, 3, 64, 64)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_evaluation_scores_the_depigmented_output_against_its_own_masks(
    tmp_path, three_output_model_dir
):
    dataset = make_tiny_dataset(tmp_path / "both", n_cases=2, depigmented=True)
    predictor = Predictor.from_folder(three_output_model_dir)
    results = [evaluate_case(predictor, case) for case in load_dataset(dataset)]
    assert all(r.depigmented is not None for r in results)
    summary = summarise(results)
    assert "depigmented" in summary["mean"] and "depigmented" in summary["cases"][0]
    dice = [b["depigmented"]["dice"] for b in summary["strata"].values()]  # 2 Fitzpatrick types
    assert summary["depigmented_dice_gap_between_strata"] == pytest.approx(max(dice) - min(dice))
    header = markdown_table(summary).splitlines()[0]
    assert header.endswith("| depigmented Dice |")
    # The affected fraction's truth is the depigmented mask, not the outline.
    case = load_dataset(dataset)[0]
    skin, depigmented = read_mask(case.skin_mask_path), read_mask(case.depigmented_mask_path)
    assert results[0].affected_fraction_true == pytest.approx(depigmented.sum() / skin.sum())
    assert depigmented.sum() < read_mask(case.lesion_mask_path).sum()


def test_scoring_writes_the_depigmented_mask(tmp_path, three_output_model_dir):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.full((80, 90, 3), (70, 100, 150), np.uint8))
    out = tmp_path / "out"
    settings = ScoreSettings(overlay_long_side=128, thumbnail_long_side=64, default_region="trunk")
    job = ScoreJob(output=out, input=photos, progress=False)
    run_score_job(job, Predictor.from_folder(three_output_model_dir), settings)
    with open(out / "scores.csv", newline="", encoding="utf-8") as stream:
        (row,) = list(csv.DictReader(stream))
    assert row["status"] == "ok" and row["mask_depigmented"]
    assert (out / row["mask_depigmented"]).is_file()


def test_the_threshold_with_the_least_affected_fraction_error_is_chosen():
    truth = [0.10, 0.0, 0.30]
    predicted = {0.5: [0.14, 0.03, 0.34], 0.6: [0.11, 0.01, 0.30], 0.7: [0.06, 0.0, 0.25]}
    table = affected_fraction_errors(truth, predicted)
    assert table[0.5] == pytest.approx({"mae": 0.11 / 3, "bias": 0.11 / 3})
    assert table[0.7]["bias"] == pytest.approx(-0.09 / 3)
    assert least_error_threshold(table) == 0.6
    # A tie keeps the threshold nearest the default (the lowest), not the last one tried.
    assert least_error_threshold({0.6: {"mae": 0.02}, 0.5: {"mae": 0.02}}) == 0.5
    with pytest.raises(ValueError, match="threshold 0.5: 2 predictions for 3 photos"):
        affected_fraction_errors(truth, {0.5: [0.1, 0.2]})
    with pytest.raises(ValueError, match="no thresholds"):
        least_error_threshold({})


def test_threshold_study_scores_every_threshold_from_one_prediction(
    tmp_path, three_output_model_dir
):
    dataset = make_tiny_dataset(tmp_path / "both", n_cases=4, depigmented=True)
    out = tmp_path / "study.json"
    script = Path(__file__).resolve().parents[1] / "scripts" / "depigmented_threshold_study.py"
    done = subprocess.run(
        [sys.executable, str(script), "--checkpoint", str(three_output_model_dir),
         "--dataset", str(dataset), "--limit", "3", "--json", str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"{dataset}: 3 photos" in done.stdout
    record = json.loads(out.read_text())
    table = record["tables"]["all"]
    assert list(table) == ["0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8"]
    assert record["chosen"] == least_error_threshold({float(t): v for t, v in table.items()})
    # A higher threshold keeps fewer depigmented pixels: the bias can only fall.
    biases = [row["bias"] for row in table.values()]
    assert (np.diff(biases) <= 1e-12).all()
    seeded = tmp_path / "seeds.json"
    subprocess.run(
        [sys.executable, str(script), "--checkpoint", str(three_output_model_dir),
         "--dataset", str(dataset), "--limit", "3", "--seeds", "0.7", "0.9",
         "--json", str(seeded)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    record = json.loads(seeded.read_text())
    assert record["kind"] == "hysteresis seed"
    # The model's own threshold (no seed) is the first row, and seeds only drop patches.
    assert list(record["tables"]["all"]) == ["0.5", "0.7", "0.9"]
    assert record["tables"]["all"]["0.5"] == table["0.5"]
    biases = [row["bias"] for row in record["tables"]["all"].values()]
    assert (np.diff(biases) <= 1e-12).all()


def test_train_val_table_shows_each_setting_with_both_figures():
    rows = [
        ("plain", {"threshold": 0.5, "train_dice": 0.61234, "val_dice": 0.5}),
        ("best on train", {"threshold": 0.4, "train_dice": 0.7, "val_dice": 0.55556}),
    ]

    lines = train_val_table(rows, "skin Dice").splitlines()

    assert lines[0] == "| setting | train skin Dice | val skin Dice |"
    assert lines[2] == '| plain: {"threshold": 0.5} | 0.6123 | 0.5000 |'
    assert lines[3] == '| best on train: {"threshold": 0.4} | 0.7000 | 0.5556 |'
