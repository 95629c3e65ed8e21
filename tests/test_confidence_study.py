"""scripts/confidence_study.py: the per-photo measures taken from the model's output alone."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))  # the script imports its sibling white_balance_probe
_spec = importlib.util.spec_from_file_location("confidence_study", SCRIPTS / "confidence_study.py")
confidence_study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(confidence_study)


class GreenThresholdSegmenter:
    """Lesion = green level above 150: blind to a colour cast (green is fixed), not to
    exposure."""

    def predict(self, rgb):
        return rgb

    def masks(self, prediction, rgb):
        return np.ones(rgb.shape[:2], bool), rgb[..., 1] > 150


def photo_with_patch(patch_level: int) -> np.ndarray:
    rgb = np.full((40, 40, 3), 100, np.uint8)
    rgb[10:30, 10:30] = patch_level
    return rgb


def test_relit_agreement_is_full_for_a_patch_every_copy_still_finds():
    # 220 * 0.85 = 187: still above the threshold in the darker copy.
    assert (
        confidence_study.relit_agreement(GreenThresholdSegmenter(), photo_with_patch(220)) == 1.0
    )


def test_relit_agreement_halves_when_the_darker_copy_loses_the_patch():
    # 160 * 0.85 = 136: the darker copy finds nothing (Dice 0), the cooler copy all (Dice 1).
    agreement = confidence_study.relit_agreement(GreenThresholdSegmenter(), photo_with_patch(160))
    assert agreement == pytest.approx(0.5)


def test_relit_agreement_of_a_photo_without_lesion_anywhere_is_full():
    assert (
        confidence_study.relit_agreement(GreenThresholdSegmenter(), photo_with_patch(120)) == 1.0
    )


def test_expected_dice_rewards_a_mask_where_the_probability_lies():
    region = np.ones((4, 4), bool)
    probability = np.zeros((4, 4), np.float32)
    probability[:2] = 1.0
    on_target = np.zeros((4, 4), bool)
    on_target[:2] = True
    assert confidence_study.expected_dice(probability, on_target, region) == pytest.approx(1.0)
    assert confidence_study.expected_dice(probability, ~on_target, region) == pytest.approx(0.0)
    assert confidence_study.expected_dice(np.zeros_like(probability), ~region, region) == 1.0
