"""scripts/depigmented_source_study.py: each depigmented source on the same photos."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
_spec = importlib.util.spec_from_file_location(
    "depigmented_source_study", SCRIPTS / "depigmented_source_study.py"
)
study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study)


class CountingPredictor:
    def __init__(self) -> None:
        self.calls = 0

    def predict(self, rgb):
        self.calls += 1
        return float(rgb.sum())


def test_each_distinct_photo_runs_the_network_once():
    predictor = CountingPredictor()
    study.remember_predictions(predictor)
    photo = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    first = predictor.predict(photo)
    again = predictor.predict(photo.copy())
    same_bytes_other_shape = predictor.predict(photo.reshape(4, 2, 3))
    assert first == again == same_bytes_other_shape
    assert predictor.calls == 2  # the same pixels in another shape are another photo


def test_every_source_gets_a_summary_of_the_same_cases(tiny_dataset, tiny_model_dir, monkeypatch):
    out = tiny_dataset.parent / "study"
    argv = ["study", str(tiny_dataset), "--out", str(out), "--model", str(tiny_model_dir)]
    monkeypatch.setattr(sys, "argv", [*argv, "--sources", "model", "colour", "--threads", "1"])
    assert study.main() == 0
    summaries = {
        s: json.loads((out / s / "summary.json").read_text()) for s in ("model", "colour")
    }
    ids = [[case["case_id"] for case in summaries[s]["cases"]] for s in ("model", "colour")]
    assert ids[0] == ids[1] and len(ids[0]) == 6
    assert summaries["colour"]["inference"]["depigmented_source"] == "colour"
    assert summaries["model"]["inference"]["depigmented_source"] == "model"
