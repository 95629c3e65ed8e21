"""Holding a follow-up's probabilities to its baseline's where they barely moved."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_align import MOVES, visit_pair
from tests.test_compare import EXACT
from vitiseg.compare import compare_photos
from vitiseg.compare.change import ChangeClass
from vitiseg.inference.paired import (
    HoldingSegmenter,
    held_prediction,
    held_where_unchanged,
    pixels_key,
)
from vitiseg.inference.predictor import Prediction


class GreenPredictor:
    """A stand-in for a confident network: lesion probability rises steeply with the green
    level about 186 (pale patches), skin is any pixel brighter than the warp's black border;
    counts its passes. (A softer model moves less across a real change, so holding keeps
    less of it: what scripts/retest_probe.py --healed measures on the real one.)"""

    metadata = None
    lesion_threshold = 0.5

    def __init__(self) -> None:
        self.passes = 0

    def predict(self, rgb: np.ndarray) -> Prediction:
        self.passes += 1
        skin = (rgb.max(axis=-1) > 30).astype(np.float32)
        lesion = 1 / (1 + np.exp(-(rgb[..., 1].astype(np.float32) - 186) / 4))
        return Prediction(skin=skin, lesion=lesion)

    def segmentation(self, prediction: Prediction, rgb: np.ndarray) -> tuple:
        skin = prediction.skin >= 0.5
        return skin, prediction.lesion > self.lesion_threshold, None

    def segment(self, rgb: np.ndarray) -> tuple:
        return self.segmentation(self.predict(rgb), rgb)


def test_held_where_unchanged_keeps_only_moves_of_at_least_within():
    baseline = np.array([[0.30, 0.50, 0.90, 0.20]], np.float32)
    followup = np.array([[0.45, 0.69, 0.10, 0.40]], np.float32)
    held = held_where_unchanged(baseline, followup, 0.2)
    # Moves 0.15 and 0.19 are held; 0.80 and 0.20 (not below within) are kept.
    np.testing.assert_allclose(held, [[0.30, 0.50, 0.10, 0.40]])
    assert held.dtype == np.float32
    np.testing.assert_array_equal(held_where_unchanged(baseline, followup, 0.0), followup)
    assert held_where_unchanged(None, followup, 0.2) is followup
    assert held_where_unchanged(baseline, None, 0.2) is None
    with pytest.raises(ValueError, match="differ"):
        held_where_unchanged(baseline, followup[:, :3], 0.2)
    with pytest.raises(ValueError, match=">= 0"):
        held_where_unchanged(baseline, followup, -0.1)


def test_held_prediction_holds_every_output_and_keeps_its_own_uncertainty():
    ones = np.ones((2, 2), np.float32)
    baseline = Prediction(skin=ones * 0.6, lesion=ones * 0.3, depigmented=ones * 0.5)
    followup = Prediction(
        skin=ones * 0.7, lesion=ones * 0.9, uncertainty=ones * 0.05, depigmented=ones * 0.45
    )
    held = held_prediction(baseline, followup, 0.2)
    np.testing.assert_allclose(held.skin, 0.6)  # moved 0.1: held
    np.testing.assert_allclose(held.lesion, 0.9)  # moved 0.6: kept
    np.testing.assert_allclose(held.depigmented, 0.5)
    assert held.uncertainty is followup.uncertainty


def flickering_pair() -> tuple[np.ndarray, np.ndarray]:
    """The same skin twice: one patch's green straddles the threshold, 185 then 187 (lesion
    probability 0.44 then 0.56), as a re-take's light and angle move it; another patch
    truly repigments, 230 then 120."""
    baseline = np.full((60, 80, 3), 120, np.uint8)
    followup = baseline.copy()
    baseline[10:30, 10:30, 1], followup[10:30, 10:30, 1] = 185, 187
    baseline[35:55, 45:75, 1], followup[35:55, 45:75, 1] = 230, 120
    return baseline, followup


def test_holding_removes_threshold_flicker_and_keeps_real_change():
    baseline, followup = flickering_pair()
    predictor = GreenPredictor()
    _, as_seen, _ = predictor.segment(followup)
    assert as_seen[10:30, 10:30].all()  # without holding the flicker reads as a new lesion
    _, held, _ = HoldingSegmenter(predictor, 0.2)(baseline, followup)
    assert not held[10:30, 10:30].any()  # moved 0.12: the baseline's call (no lesion)
    assert not held[35:55, 45:75].any()  # moved 1.0: the follow-up's own call (repigmented)
    with pytest.raises(ValueError, match="baseline frame"):
        HoldingSegmenter(predictor, 0.2)(baseline, followup[:40])
    with pytest.raises(ValueError, match="between 0 and 1"):
        HoldingSegmenter(predictor, 1.5)


def test_a_photo_is_keyed_by_its_pixels_and_shape():
    baseline, followup = flickering_pair()
    assert pixels_key(baseline) == pixels_key(baseline.copy())
    assert pixels_key(baseline) != pixels_key(followup)
    assert pixels_key(baseline) != pixels_key(baseline.reshape(80, 60, 3))


def test_the_baseline_is_predicted_once_per_pair():
    baseline, followup = flickering_pair()
    predictor = GreenPredictor()
    holding = HoldingSegmenter(predictor, 0.2)
    holding.segment(baseline)
    holding(baseline, followup)
    holding(baseline, np.ascontiguousarray(followup[..., ::-1]))  # e.g. a re-balanced pass
    assert predictor.passes == 3  # baseline once, each follow-up once
    holding(followup, baseline)  # another baseline: predicted (and kept) anew
    assert predictor.passes == 5


def test_a_held_comparison_measures_a_real_change_under_a_camera_move():
    pair = visit_pair(move=MOVES["rotate-scale-shift-tilt"])
    predictor = GreenPredictor()
    holding = HoldingSegmenter(predictor, 0.2)

    def compare(**options):
        return compare_photos(
            pair["baseline"],
            pair["followup"],
            predictor.segment,
            "face",
            config=EXACT,
            segment_aligned=True,
            **options,
        ).comparison

    plain = compare()
    for held in (
        compare(segment_followup=holding),
        compare(segment_followup=holding, hold_levels_within=0.05),
    ):
        assert held.alignment.reliable
        # The lesions truly shrank to 0.6 of their size: holding keeps that change.
        assert held.response.improvement > 0.5
        assert held.response.improvement == pytest.approx(plain.response.improvement, abs=0.02)
        repigmented = held.labels == ChangeClass.REPIGMENTED
        expected = plain.labels == ChangeClass.REPIGMENTED
        assert np.count_nonzero(repigmented & expected) / np.count_nonzero(expected) > 0.9


def test_no_change_reads_as_none_when_held():
    baseline, followup = flickering_pair()
    followup[35:55, 45:75, 1] = 230  # the second patch unchanged too
    predictor = GreenPredictor()

    def improvement(**options):
        return compare_photos(
            baseline,
            followup,
            predictor.segment,
            "face",
            align_method="none",
            config=EXACT,
            segment_aligned=True,
            **options,
        ).comparison.response.improvement

    assert improvement() < -0.5  # the flickering patch reads as spreading lesion
    assert improvement(segment_followup=HoldingSegmenter(predictor, 0.2)) == 0
