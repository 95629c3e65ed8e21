"""vitiseg.data.box_edits: boxes of healthy skin, and lightening them as a hard negative."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from vitiseg.data.augment import AugmentSettings
from vitiseg.data.box_edits import Box, blend, box_weight, lighten_healthy_patch, pick_box
from vitiseg.data.torch_dataset import LoadedCase, SegmentationDataset, targets_from_masks


def test_the_box_lies_in_the_allowed_area_or_is_not_found():
    skin = np.zeros((100, 120), bool)
    skin[:, 60:] = True
    rng = np.random.default_rng(1)
    for _ in range(20):
        box = pick_box(skin, rng)
        assert box is not None and box.view(skin).mean() >= 0.9
        assert box.top + box.height <= 100 and box.left + box.width <= 120
    assert pick_box(np.zeros((100, 120), bool), rng) is None


def test_the_box_never_touches_a_forbidden_pixel():
    allowed = np.ones((100, 120), bool)
    forbidden = np.zeros_like(allowed)
    forbidden[40:60, 50:70] = True
    rng = np.random.default_rng(2)
    boxes = [pick_box(allowed, rng, forbidden=forbidden) for _ in range(30)]
    assert all(box is not None and not box.view(forbidden).any() for box in boxes)
    assert pick_box(allowed, rng, forbidden=np.ones_like(allowed)) is None


def test_the_ellipse_weight_is_full_at_the_centre_and_empty_outside_the_box():
    box = Box(10, 20, 40, 60)
    square = box_weight((80, 100), box, ellipse=False)
    ellipse = box_weight((80, 100), box, ellipse=True)
    assert square.sum() == 40 * 60 and square[box.top, box.left] == 1
    assert ellipse[30, 50] == pytest.approx(1.0, abs=0.01)
    assert ellipse[box.top, box.left] < 0.01
    outside = np.ones((80, 100), bool)
    box.view(outside)[:] = False
    assert not ellipse[outside].any()
    assert 0.7 < ellipse.sum() / square.sum() < 0.85  # about pi/4


def test_blend_mixes_by_weight():
    photo = np.full((4, 4, 3), 100, np.uint8)
    edited = np.full((4, 4, 3), 200.0, np.float32)
    weight = np.zeros((4, 4), np.float32)
    weight[0, 0], weight[1, 1] = 1.0, 0.5
    out = blend(photo, edited, weight)
    assert out.dtype == np.uint8
    assert out[0, 0, 0] == 200 and out[1, 1, 0] == 150 and out[2, 2, 0] == 100


def _case_with_lesion(skin_annotated: bool = True) -> LoadedCase:
    rng = np.random.default_rng(0)
    image = rng.integers(70, 150, (96, 128, 3), dtype=np.uint8)
    skin = np.zeros((96, 128), bool)
    skin[8:90, 10:120] = True
    lesion = np.zeros_like(skin)
    lesion[30:50, 40:70] = True
    targets, valid = targets_from_masks(skin if skin_annotated else None, lesion, skin.shape)
    return LoadedCase(None, "t", image, targets, valid)


@pytest.mark.parametrize("skin_annotated", [True, False])
def test_lightening_touches_only_healthy_skin_and_keeps_the_input(skin_annotated):
    case = _case_with_lesion(skin_annotated)
    before = case.image.copy()
    changed_any = False
    for seed in range(10):
        out = lighten_healthy_patch(
            case.image, case.targets, case.valid, np.random.default_rng(seed)
        )
        assert np.array_equal(case.image, before)
        changed = np.any(out != case.image, axis=2)
        assert not (changed & (case.targets[1] > 0)).any()
        if skin_annotated:
            assert changed.sum() == 0 or (case.targets[0] > 0)[changed].mean() >= 0.9
        # A gain lightens and keeps the hue: the red/green ratio holds where nothing clipped.
        assert (out[changed].astype(int) >= case.image[changed].astype(int)).all()
        ratio_in = case.image[changed][:, 0] / case.image[changed][:, 1]
        ratio_out = out[changed][:, 0] / out[changed][:, 1].astype(float)
        unclipped = out[changed].max(axis=1) < 255
        assert np.allclose(ratio_in[unclipped], ratio_out[unclipped], atol=0.05)
        changed_any |= bool(changed.any())
    assert changed_any


def test_lightening_leaves_a_photo_without_healthy_skin_as_it_was():
    case = _case_with_lesion()
    case.targets[1][:] = case.targets[0]  # lesion everywhere there is skin
    out = lighten_healthy_patch(case.image, case.targets, case.valid, np.random.default_rng(0))
    assert out is case.image


def test_the_dataset_lightens_images_only_and_keeps_random_streams_when_off():
    case = _case_with_lesion()
    identity = A.Compose([])
    lit = SegmentationDataset([case], identity, lighter_patch=1.0)[0]
    plain = SegmentationDataset([case], identity)[0]
    off = SegmentationDataset([case], identity, lighter_patch=0.0)[0]
    assert torch.equal(lit["targets"], plain["targets"])
    assert torch.equal(lit["valid"], plain["valid"])
    assert not torch.equal(lit["image"], plain["image"])
    assert torch.equal(off["image"], plain["image"])
    with pytest.raises(ValueError, match="lighter_patch"):
        AugmentSettings(lighter_patch=-0.1)
