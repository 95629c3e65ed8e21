"""scripts/white_balance_probe.py: averaging a model's output over re-lit copies of a photo."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from vitiseg.inference.predictor import Prediction

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "white_balance_probe.py"
_spec = importlib.util.spec_from_file_location("white_balance_probe", SCRIPT)
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


class RedReader:
    """A stand-in model: lesion probability = the photo's red channel / 255."""

    def __init__(self):
        self.seen = []

    def predict(self, rgb):
        self.seen.append(rgb.copy())
        red = rgb[..., 0].astype(np.float32) / 255
        return Prediction(skin=np.ones_like(red), lesion=red, uncertainty=None)


def test_the_probabilities_are_the_mean_over_the_relit_copies():
    model = RedReader()
    probe.average_over_gains(model, [(1.0, 1.0, 1.0), (0.5, 1.0, 1.0)])
    photo = np.full((2, 3, 3), 200, np.uint8)
    prediction = model.predict(photo)
    # Red 200 as taken and 100 halved: mean 150 / 255.
    assert prediction.lesion == pytest.approx(np.full((2, 3), 150 / 255))
    assert prediction.uncertainty is None and prediction.depigmented is None
    assert [copy[0, 0, 0] for copy in model.seen] == [200, 100]
    assert photo[0, 0, 0] == 200  # the photo itself is not changed


def test_gains_parse_as_three_positive_factors():
    assert probe.parse_gains("1.1,1,0.9") == (1.1, 1.0, 0.9)
    for bad in ("1.1,0.9", "1,1,0", "1,1,x"):
        with pytest.raises((argparse.ArgumentTypeError, ValueError)):
            probe.parse_gains(bad)
