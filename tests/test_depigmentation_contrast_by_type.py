"""scripts/depigmentation_contrast_by_type.py: how visible each skin type's depigmentation is."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_tiny_dataset
from vitiseg.synth.color import lab_to_linear, linear_to_srgb

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
_spec = importlib.util.spec_from_file_location(
    "contrast_by_type", SCRIPTS / "depigmentation_contrast_by_type.py"
)
contrast_by_type = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contrast_by_type)


def _photo_of_lightness(light: np.ndarray) -> np.ndarray:
    lab = np.stack([light, np.full_like(light, 12.0), np.full_like(light, 18.0)], axis=-1)
    return np.round(linear_to_srgb(lab_to_linear(lab.astype(np.float32))) * 255).astype(np.uint8)


@pytest.mark.parametrize("lift", [4.0, 15.0])
def test_the_lift_of_a_patch_is_measured_against_the_skin_around_it(lift):
    light = np.full((80, 100), 60.0, np.float32)
    outline = np.zeros((80, 100), bool)
    outline[20:60, 20:60] = True
    depigmented = np.zeros_like(outline)
    depigmented[25:55, 25:55] = True
    light[depigmented] += lift
    measured, dice = contrast_by_type.case_contrast(
        _photo_of_lightness(light), np.ones_like(outline), outline, depigmented
    )
    assert measured == pytest.approx(lift, abs=0.5)
    # The colour rule (6 L* above the skin) finds a 15-unit patch, not a 4-unit one.
    assert dice > 0.95 if lift > 6 else dice == 0.0


def test_every_skin_type_of_a_set_is_measured(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "set", depigmented=True)
    by_type = contrast_by_type.contrast_by_type(dataset)
    assert sorted(by_type) == [2, 3, 4, 5]  # the tiny set's types, two cases of 2 and 3
    assert [len(rows) for rows in by_type.values()] == [2, 2, 1, 1]
    for rows in by_type.values():
        for lift, dice in rows:
            assert lift > 20 and dice > 0.8  # a white patch on tan skin
