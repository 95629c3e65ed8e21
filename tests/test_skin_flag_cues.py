"""scripts/skin_flag_cues.py: colour cues of the skin a model calls normal."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))  # the script imports its sibling skin_error_distance
_spec = importlib.util.spec_from_file_location("skin_flag_cues", SCRIPTS / "skin_flag_cues.py")
skin_flag_cues = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(skin_flag_cues)


def _photo(colour_left, colour_right) -> np.ndarray:
    rgb = np.zeros((40, 80, 3), np.uint8)
    rgb[:, :40] = colour_left
    rgb[:, 40:] = colour_right
    return rgb


def test_a_grey_wall_called_skin_raises_the_grey_and_off_hue_shares():
    everything = np.ones((40, 80), bool)
    skin_only = skin_flag_cues.colour_cues(_photo((200, 150, 120), (190, 140, 110)), everything)
    with_wall = skin_flag_cues.colour_cues(_photo((200, 150, 120), (215, 215, 215)), everything)
    assert skin_only["grey_share"] == 0.0 and skin_only["off_hue_share"] == 0.0
    assert with_wall["grey_share"] == 0.5 and with_wall["off_hue_share"] == 0.5
    assert with_wall["ab_spread"] > skin_only["ab_spread"] + 5


def test_only_the_masked_pixels_count_and_tiny_masks_give_zeros():
    rgb = _photo((200, 150, 120), (215, 215, 215))
    left = np.zeros((40, 80), bool)
    left[:, :40] = True
    assert skin_flag_cues.colour_cues(rgb, left)["grey_share"] == 0.0
    tiny = np.zeros((40, 80), bool)
    tiny[0, :10] = True
    assert set(skin_flag_cues.colour_cues(rgb, tiny).values()) == {0.0}


def test_the_threshold_separates_what_the_existing_flag_missed():
    values = np.array([0.1, 0.2, 0.3, 0.8, 0.9, 0.05])
    already = np.array([False, False, False, False, False, True])
    positive = np.array([False, False, False, True, True, True])
    threshold, youden = skin_flag_cues.choose_threshold(values, already, positive)
    assert 0.3 <= threshold < 0.8
    assert youden == 1.0


def test_the_logistic_scorer_ranks_positives_above_negatives():
    rng = np.random.default_rng(0)
    positive = np.arange(200) % 2 == 0
    features = rng.normal(size=(200, 3))
    features[positive, 1] += 3.0
    score = skin_flag_cues.fit_logistic(features, positive)(features)
    assert score[positive].mean() > score[~positive].mean() + 2
