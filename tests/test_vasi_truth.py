"""VASI measured from exact synthetic masks equals the generator's designed VASI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from tests.conftest import run_eval_command
from vitiseg.data.dataset_format import load_dataset
from vitiseg.evaluation.vasi_truth import generator_vasi, load_truth, vasi_agreement
from vitiseg.vasi import VasiConfig


def _synth(tmp_path, n=6):
    out = tmp_path / "synth"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "vitiseg.cli.synth",
            f"out={out}",
            f"n={n}",
            "seed=3",
            f"output={tmp_path / 'log'}",
        ],
        check=True,
        capture_output=True,
    )
    return out


def test_vasi_from_true_masks_equals_the_generators_vasi(tmp_path):
    dataset = _synth(tmp_path)
    config = VasiConfig()
    truth = load_truth(dataset)
    agreement = vasi_agreement(load_dataset(dataset), truth, config)
    assert len(agreement.case_ids) == 6
    assert agreement.generator.max() > 0
    np.testing.assert_allclose(agreement.from_true_masks, agreement.generator, atol=1e-9)


def test_generator_vasi_is_capped_at_the_region():
    config = VasiConfig()
    full = {
        "region": "face",
        "skin_px": 100,
        "patches": [{"extent_px": 100, "level": 1.0}, {"extent_px": 50, "level": 1.0}],
    }
    assert generator_vasi(full, config) == config.hand_units("face")


def test_eval_reports_model_vasi_against_truth(tmp_path, tiny_model_dir):
    dataset = _synth(tmp_path, n=4)
    out = tmp_path / "eval"
    run_eval_command(tiny_model_dir, dataset, out, "gallery=1")
    summary = json.loads((out / "summary.json").read_text())
    block = summary["vasi_vs_truth"]
    assert block["n"] == 4
    assert block["true_masks_vs_generator"]["max_abs_difference"] < 1e-9
    assert block["model_vs_generator"]["mae"] >= 0
    assert (out / "vasi_bland_altman.png").stat().st_size > 1000


def test_evaluation_hands_on_the_masks_it_scored(tmp_path, tiny_model_dir):
    from vitiseg.evaluation.evaluate import evaluate_cases
    from vitiseg.inference.predictor import Predictor
    from vitiseg.io.images import read_rgb

    dataset = _synth(tmp_path, n=3)
    cases = load_dataset(dataset)
    predictor = Predictor.from_folder(tiny_model_dir)
    seen = {}

    def record(case, skin, lesion, depigmented):
        seen[case.case_id] = (skin, lesion, depigmented)

    results = evaluate_cases(predictor, cases, on_masks=record)
    assert [r.case_id for r in results] == [c.case_id for c in cases] == list(seen)
    for case in cases:  # the masks running the model again would give
        again = predictor.segment(read_rgb(case.image_path))
        for handed, expected in zip(seen[case.case_id], again, strict=True):
            assert (handed is None and expected is None) or np.array_equal(handed, expected)


def test_vasi_agreement_takes_the_models_vasi_per_case(tmp_path):
    dataset = _synth(tmp_path, n=3)
    cases = load_dataset(dataset)
    truth = load_truth(dataset)
    model_vasi = {case.case_id: float(i) for i, case in enumerate(cases)}
    agreement = vasi_agreement(cases, truth, VasiConfig(), model_vasi)
    np.testing.assert_array_equal(agreement.from_model, [0.0, 1.0, 2.0])
    assert vasi_agreement(cases, truth, VasiConfig()).from_model is None
