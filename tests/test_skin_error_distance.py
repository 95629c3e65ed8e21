"""scripts/skin_error_distance.py: skin errors binned by their distance from the other mask."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "skin_error_distance.py"
_spec = importlib.util.spec_from_file_location("skin_error_distance", SCRIPT)
skin_error_distance = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(skin_error_distance)


def test_edge_errors_and_far_regions_fall_in_their_own_bins():
    truth = np.zeros((100, 200), bool)
    truth[20:60, 20:60] = True
    predicted = truth.copy()
    predicted[20:60, 60] = True  # one column of false skin on the edge: 1 px = 0.5 % of 200
    predicted[80:90, 150:160] = True  # a far patch of false skin (a wall taken for skin)
    predicted[20:60, 20] = False  # one column missed on the edge
    false_positive, false_negative = skin_error_distance.error_pixels_by_distance(
        predicted, truth, edges=(0.005, 0.05, np.inf)
    )
    assert false_positive.tolist() == [40, 0, 100]
    assert false_negative.tolist() == [40, 0, 0]


def test_a_photo_without_true_skin_puts_every_false_pixel_in_the_last_bin():
    predicted = np.zeros((10, 10), bool)
    predicted[:2] = True
    false_positive, false_negative = skin_error_distance.error_pixels_by_distance(
        predicted, np.zeros_like(predicted), edges=(0.1, np.inf)
    )
    assert false_positive.tolist() == [0, 20] and false_negative.tolist() == [0, 0]
