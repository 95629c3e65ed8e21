"""Loss with missing annotations, grouped splits, augmentation invariants, training runs."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from tests.conftest import make_tiny_dataset, run_eval_command
from vitiseg.data.augment import (
    AugmentSettings,
    PaleSkinTone,
    pale_tone,
    relit_transform,
    swap_background,
    training_transform,
    unlit_transform,
    untaught_by_relit,
)
from vitiseg.data.dataset_format import load_dataset
from vitiseg.data.resize import resize_long_side
from vitiseg.data.splits import load_split, patient_folds, patients_overlap, split_by_patient
from vitiseg.data.torch_dataset import (
    LoadedCase,
    SegmentationDataset,
    load_case,
    outline_band,
    targets_from_masks,
)
from vitiseg.models.model_folder import (
    load_model_folder,
    load_start_weights,
    widen_head,
    widen_stem,
)
from vitiseg.models.unet import build_model
from vitiseg.training.loss import masked_bce_dice
from vitiseg.training.settings import DatasetSpec, TrainSettings
from vitiseg.training.trainer import (
    _stop_reason,
    checkpoint_weights,
    freeze_parameters,
    keep_frozen_in_eval,
    train,
)


# ---------------------------------------------------------------- loss
def test_unannotated_output_adds_nothing_and_gets_no_gradient():
    logits = torch.randn(2, 2, 8, 8, requires_grad=True)
    targets = torch.randint(0, 2, (2, 2, 8, 8)).float()
    valid = torch.ones_like(targets)
    valid[:, 0] = 0  # skin not annotated anywhere
    loss, parts = masked_bce_dice(logits, targets, valid)
    loss.backward()
    assert parts["bce0"] == 0 and parts["dice0"] == 0
    assert torch.count_nonzero(logits.grad[:, 0]) == 0
    assert torch.count_nonzero(logits.grad[:, 1]) > 0


def test_loss_ignores_whatever_the_unannotated_targets_say():
    logits = torch.randn(1, 2, 8, 8)
    valid = torch.zeros(1, 2, 8, 8)
    valid[:, 1, :4] = 1
    a = torch.zeros(1, 2, 8, 8)
    b = a.clone()
    b[:, 1, 4:] = 1  # differs only where not annotated
    b[:, 0] = 1
    loss_a, loss_b = masked_bce_dice(logits, a, valid)[0], masked_bce_dice(logits, b, valid)[0]
    assert loss_a == pytest.approx(loss_b)


def test_per_image_dice_weighs_a_missed_small_lesion_like_a_missed_large_one():
    targets = torch.zeros(2, 1, 16, 16)
    targets[0, 0, :12, :12] = 1  # a large lesion, found
    targets[1, 0, :2, :2] = 1  # a small one, missed
    logits = torch.where(targets.bool(), 20.0, -20.0)
    logits[1] = -20.0  # the small lesion is missed
    valid = torch.ones_like(targets)
    args = dict(dice_weight=1.0, output_weights=(1.0,))
    batch = masked_bce_dice(logits, targets, valid, **args)[1]["dice0"]
    per_image = masked_bce_dice(logits, targets, valid, dice_per_image=True, **args)[1]["dice0"]
    # Batch Dice barely notices the 4 missed pixels; per photo, the miss costs half (the
    # smoothing term of 1 leaves the missed photo at 1 - 1/5).
    assert batch < 0.05 and per_image == pytest.approx((0 + (1 - 1 / 5)) / 2, abs=1e-3)
    # A photo with no annotated pixel for the output does not enter the average.
    valid[0] = 0
    alone = masked_bce_dice(logits, targets, valid, dice_per_image=True, **args)[1]["dice0"]
    assert alone == pytest.approx(1 - 1 / 5, abs=1e-3)


def test_lovasz_hinge_at_unit_margins_is_twice_the_photo_iou_loss():
    from vitiseg.training.loss import lovasz_hinge_per_photo

    truth = torch.zeros(2, 6, 6)
    truth[0, 1:4, 1:4] = 1  # 9 px
    truth[1, 2:5, 2:5] = 1
    predicted = torch.zeros(2, 6, 6)
    predicted[0, 1:4, 2:5] = 1  # 6 of 12 in the union overlap: IoU 0.5
    predicted[1] = truth[1]  # IoU 1
    logits = 2 * predicted - 1  # errors 0 where right, 2 where wrong
    valid = torch.ones_like(truth)
    # The Lovasz extension is exact at these corners and scales with the margin.
    loss = lovasz_hinge_per_photo(logits, truth, valid)
    assert loss.item() == pytest.approx((2 * (1 - 6 / 12) + 0.0) / 2)
    # Pixels outside the annotation count for nothing; a photo with none is left out.
    valid[0, :, 4:] = 0  # the one false column of photo 0: IoU 6/9
    valid[1] = 0
    assert lovasz_hinge_per_photo(logits, truth, valid).item() == pytest.approx(2 * (1 - 6 / 9))


def test_lovasz_replaces_only_the_named_outputs_dice_term():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 8, 8)
    targets = torch.randint(0, 2, (2, 2, 8, 8)).float()
    valid = torch.ones_like(targets)
    plain = masked_bce_dice(logits, targets, valid)[1]
    mixed = masked_bce_dice(logits, targets, valid, lovasz=(False, True))[1]
    assert mixed["dice0"] == pytest.approx(plain["dice0"])
    assert mixed["bce1"] == pytest.approx(plain["bce1"])
    assert mixed["dice1"] != pytest.approx(plain["dice1"])
    with pytest.raises(ValueError, match="lovasz: 1 flags for 2 outputs"):
        masked_bce_dice(logits, targets, valid, lovasz=(True,))


def test_empty_photos_keep_a_dice_gradient_against_the_batch_area():
    targets = torch.zeros(2, 1, 16, 16)
    targets[0, 0, :8, :8] = 1  # a 64-pixel lesion, found
    logits = torch.where(targets.bool(), 20.0, -20.0)
    logits[1, 0, :10, :10] = 0.0  # a photo annotated as empty, with 100 pixels of false area
    valid = torch.ones_like(targets)
    args = dict(dice_weight=1.0, output_weights=(1.0,), dice_per_image=True)

    def empty_photo_dice_gradient(reference: str) -> float:
        grads = []
        for dice_weight in (1.0, 0.0):  # the difference is the Dice term's gradient alone
            leaf = logits.clone().requires_grad_(True)
            settings = {**args, "dice_weight": dice_weight}
            loss = masked_bce_dice(
                leaf, targets, valid, empty_photo_reference=reference, **settings
            )
            loss[0].backward()
            grads.append(leaf.grad[1])
        return float((grads[0] - grads[1]).abs().sum())

    smooth = masked_bce_dice(logits, targets, valid, **args)[1]["dice0"]
    against_area = masked_bce_dice(
        logits, targets, valid, empty_photo_reference="batch_area", **args
    )[1]["dice0"]
    mass = 100 * 0.5
    # The plain soft Dice of the empty photo is close to its ceiling of 1; against the
    # batch's mean true area (64 px) it is mass / (mass + 64).
    assert smooth == pytest.approx((0 + 1 - 1 / (mass + 1)) / 2, abs=1e-3)
    assert against_area == pytest.approx((0 + mass / (mass + 64)) / 2, abs=1e-3)
    # Only the Dice term differs, and the saturated one barely pushes the false area down.
    assert empty_photo_dice_gradient("batch_area") > 5 * empty_photo_dice_gradient("smooth")
    # Photos with truth score the same either way.
    valid[1] = 0
    assert masked_bce_dice(logits, targets, valid, **args)[1]["dice0"] == pytest.approx(
        masked_bce_dice(logits, targets, valid, empty_photo_reference="batch_area", **args)[1][
            "dice0"
        ]
    )
    with pytest.raises(ValueError, match="empty_photo_reference must be one of"):
        masked_bce_dice(logits, targets, valid, empty_photo_reference="zero", **args)


def test_per_image_dice_can_be_chosen_per_output():
    from vitiseg.training.loss import output_flags

    targets = torch.zeros(2, 2, 16, 16)
    targets[0, :, :12, :12] = 1  # a large lesion, found, in both outputs
    targets[1, :, :2, :2] = 1  # a small one, missed
    logits = torch.where(targets.bool(), 20.0, -20.0)
    logits[1] = -20.0
    valid = torch.ones_like(targets)
    flags = output_flags(("lesion",), ("skin", "lesion"), "dice_per_image")
    assert flags == (False, True)
    parts = masked_bce_dice(logits, targets, valid, dice_per_image=flags)[1]
    # Output 0 keeps the pooled Dice (barely notices the miss), output 1 averages per photo.
    assert parts["dice0"] < 0.05 and parts["dice1"] == pytest.approx(0.4, abs=1e-3)
    assert output_flags(True, ("skin", "lesion"), "dice_per_image") is True
    with pytest.raises(ValueError, match=r"names \['depigmented'\], not outputs"):
        output_flags(("depigmented",), ("skin", "lesion"), "dice_per_image")
    with pytest.raises(ValueError, match="1 flags for 2 outputs"):
        masked_bce_dice(logits, targets, valid, dice_per_image=(True,))


def test_a_batch_without_any_annotation_back_propagates_zero_gradients():
    logits = torch.randn(2, 2, 8, 8, requires_grad=True)
    nothing_annotated = torch.zeros(2, 2, 8, 8)
    loss, _ = masked_bce_dice(logits, nothing_annotated, nothing_annotated)
    loss.backward()
    assert float(loss.detach()) == 0 and torch.count_nonzero(logits.grad) == 0


def test_perfect_prediction_has_lower_loss_than_inverted():
    targets = torch.zeros(1, 2, 16, 16)
    targets[:, :, 4:12, 4:12] = 1
    valid = torch.ones_like(targets)
    good = (targets * 2 - 1) * 10
    assert masked_bce_dice(good, targets, valid)[0] < 0.01
    assert masked_bce_dice(-good, targets, valid)[0] > 5


def test_targets_from_partial_masks():
    lesion = np.zeros((4, 4), bool)
    lesion[1:3, 1:3] = True
    skin = np.zeros((4, 4), bool)
    skin[:, :3] = True
    # lesion only: lesion pixels are known skin, nothing else about skin is known
    targets, valid = targets_from_masks(None, lesion, (4, 4))
    assert valid[1].all() and (valid[0] == lesion).all() and (targets[0] == lesion).all()
    # skin only: outside skin is known non-lesion, inside skin lesion is unknown
    targets, valid = targets_from_masks(skin, None, (4, 4))
    assert valid[0].all() and (valid[1] == ~skin).all() and not targets[1].any()
    # neither
    _, valid = targets_from_masks(None, None, (4, 4))
    assert not valid.any()


def test_targets_with_a_depigmented_mask_and_outlined_lesions():
    outline = np.zeros((6, 6), bool)
    outline[1:5, 1:5] = True
    depigmented = outline.copy()
    depigmented[2, 2] = False  # a pigment island inside the outlined patch
    skin = np.zeros((6, 6), bool)
    skin[:, :5] = True
    targets, valid = targets_from_masks(skin, outline, (6, 6), depigmented)
    assert valid.all()
    assert (targets[1] == outline).all() and (targets[2] == depigmented).all()
    # Real photos (outlines only): depigmented is unknown inside the outline, 0 outside.
    targets, valid = targets_from_masks(None, outline, (6, 6))
    assert (valid[2] == ~outline).all() and not targets[2].any()
    # Exact pixels only: they are known lesion and skin; the rest of the lesion is unknown.
    targets, valid = targets_from_masks(None, None, (6, 6), depigmented)
    assert (valid[1] == depigmented).all() and (targets[1] == depigmented).all()
    assert (valid[0] == depigmented).all() and valid[2].all()
    # Skin only: outside skin nothing is depigmented.
    _, valid = targets_from_masks(skin, None, (6, 6))
    assert (valid[2] == ~skin).all()


def test_outline_band_lies_astride_the_edge_only():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    band = outline_band(mask, 3)
    assert band[10, 20] and band[8, 20] and band[12, 20]  # on, outside and inside the edge
    assert not band[20, 20] and not band[2, 20]  # deep inside and far outside
    assert not outline_band(mask, 0).any()


def test_an_outline_band_unlabels_the_lesion_edge_and_nothing_else(tmp_path):
    case = load_dataset(make_tiny_dataset(tmp_path / "d"))[0]
    exact = load_case(case, "d", 96)
    banded = load_case(case, "d", 96, outline_band_px=3)
    assert (banded.targets == exact.targets).all() and (banded.image == exact.image).all()
    band = outline_band(exact.targets[1], 3)
    assert band.any() and not banded.valid[1][band].any()
    assert (banded.valid[1][~band] == exact.valid[1][~band]).all()
    assert (banded.valid[[0, 2]] == exact.valid[[0, 2]]).all()


def test_an_outline_band_for_a_misspelt_dataset_is_refused(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    with pytest.raises(ValueError, match="outline_band_px names no dataset"):
        train(
            _settings(outline_band_px={"vitiligo_web": 4}), [DatasetSpec(dataset)], tmp_path / "r"
        )
    misspelt_unlit = AugmentSettings(
        crop=48, white_balance=0.5, white_balance_skip_datasets=("x",)
    )
    with pytest.raises(ValueError, match="white_balance_skip_datasets names no dataset"):
        train(_settings(augment=misspelt_unlit), [DatasetSpec(dataset)], tmp_path / "r2")


def test_per_image_dice_for_an_output_the_model_lacks_is_refused_before_training(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    with pytest.raises(ValueError, match="not outputs of this model"):
        train(_settings(dice_per_image=("depigmented",)), [DatasetSpec(dataset)], tmp_path / "r")
    assert not (tmp_path / "r" / "split.json").exists()


def test_lovasz_for_an_output_the_model_lacks_is_refused_and_a_named_one_trains(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    with pytest.raises(ValueError, match="loss.lovasz names"):
        train(_settings(lovasz=("depigmented",)), [DatasetSpec(dataset)], tmp_path / "bad")
    train(_settings(lovasz=("lesion",), max_epochs=1), [DatasetSpec(dataset)], tmp_path / "r")
    assert math.isfinite(float(_metrics_rows(tmp_path / "r")[0]["train_loss"]))


def test_widening_a_two_output_start_copies_the_lesion_output():
    narrow = build_model("compact_unet", width=4)
    wide = build_model("compact_unet", width=4, out_channels=3)
    state = widen_head(narrow.state_dict(), wide.state_dict())
    wide.load_state_dict(state)
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        narrow.eval(), wide.eval()
        a, b = narrow(image), wide(image)
    assert torch.equal(b[:, :2], a) and torch.equal(b[:, 2], a[:, 1])
    with pytest.raises(ValueError, match="cannot widen"):
        widen_head(wide.state_dict(), narrow.state_dict())


def test_a_three_output_model_trains_on_outlines_and_depigmented_masks(tmp_path):
    painted = make_tiny_dataset(tmp_path / "painted", depigmented=True, seed=3)
    real = make_tiny_dataset(tmp_path / "real", skin=False, seed=4)
    start = tmp_path / "start"
    train(_settings(max_epochs=1), [DatasetSpec(real)], start)
    sample = SegmentationDataset([load_case(load_dataset(painted)[0], "p", 64)], None)[0]
    assert sample["targets"].shape[0] == 3 and sample["valid"][2].all()
    out = tmp_path / "run"
    settings = _settings(
        model_kwargs={"width": 4, "out_channels": 3}, init_weights=start / "model"
    )
    train(settings, [DatasetSpec(painted), DatasetSpec(real)], out)
    model, metadata = load_model_folder(out / "model")
    assert metadata.output_names == ("skin", "lesion", "depigmented")
    assert metadata.thresholds["depigmented"] == 0.5
    rows = _metrics_rows(out)
    assert "val/painted/depigmented/dice" in rows[0]
    assert "val/real/depigmented/dice" not in rows[0]  # real photos have no exact truth
    assert model(torch.rand(1, 3, 40, 40)).shape == (1, 3, 40, 40)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"branch_outputs": 1},
        {"skin_branch": True},
        {"skin_branch": True, "branch_outputs": 1},
        {"detail_channels": 4},
    ],
)
def test_a_part_added_to_a_start_first_gives_the_starts_outputs(tmp_path, kwargs):
    start = tmp_path / "start"
    train(_resnet_settings(max_epochs=1), [DatasetSpec(make_tiny_dataset(tmp_path / "d"))], start)
    start_model, _ = load_model_folder(start / "model")
    split = build_model("resnet_unet", **_TINY_RESNET, **kwargs)
    load_start_weights(split, start / "model")
    assert not set(split.state_dict()) <= set(start_model.state_dict())  # a new part
    image = torch.rand(1, 3, 45, 61)
    with torch.no_grad():
        assert torch.equal(split.eval()(image), start_model(image))


def test_relative_colour_inputs_start_silent_and_no_channel_gain_moves_them(tmp_path):
    start = tmp_path / "start"
    train(_resnet_settings(max_epochs=1), [DatasetSpec(make_tiny_dataset(tmp_path / "d"))], start)
    start_model, _ = load_model_folder(start / "model")
    model = build_model("resnet_unet", **_TINY_RESNET, relative_colour_px=16)
    load_start_weights(model, start / "model")
    assert model.stem[0].weight.shape[1] == 6 and not model.stem[0].weight[:, 3:].any()
    image = torch.rand(1, 3, 45, 61)
    with torch.no_grad():
        assert torch.equal(model.eval()(image), start_model(image))
    # A white-balance and exposure gain on whole channels leaves the new inputs as they were.
    mean, std = model.relative_colour.mean, model.relative_colour.std
    rgb = torch.rand(1, 3, 40, 56) * 0.6 + 0.2
    gain = torch.tensor([1.2, 0.9, 0.7]).view(1, 3, 1, 1)
    as_taken = model.relative_colour((rgb - mean) / std)
    relit = model.relative_colour((rgb * gain - mean) / std)
    torch.testing.assert_close(relit, as_taken, atol=1e-5, rtol=0)
    assert as_taken.abs().mean() > 0.05  # not a constant: the colour relative to its surroundings
    model(image).square().mean().backward()
    assert model.stem[0].weight.grad[:, 3:].abs().sum() > 0  # the first step moves them


def test_relative_colour_needs_a_window_and_a_start_that_fits():
    with pytest.raises(ValueError, match="relative_colour_px=4"):
        build_model("resnet_unet", **_TINY_RESNET, relative_colour_px=4)
    wide = build_model("resnet_unet", **_TINY_RESNET, relative_colour_px=16).state_dict()
    narrow = build_model("resnet_unet", **_TINY_RESNET).state_dict()
    assert widen_stem(narrow, narrow) is narrow  # nothing to widen
    with pytest.raises(ValueError, match="start weights do not fit: stem.0.weight"):
        widen_stem(wide, narrow)


def test_the_detail_path_starts_silent_but_learns():
    model = build_model("resnet_unet", **_TINY_RESNET, detail_channels=4)
    image = torch.rand(2, 3, 33, 47)
    model(image).square().mean().backward()
    fuse = model.detail.fuse[-1]
    assert not fuse.weight.any()  # zero at the start: the outputs are the decoder's alone
    assert fuse.weight.grad.abs().sum() > 0  # yet the first step moves it


@pytest.mark.parametrize(
    ("own_decoder", "output", "prefix", "kept"),
    [
        ({"branch_outputs": 1}, "depigmented", "branch_", slice(0, 2)),
        ({"skin_branch": True}, "skin", "skin_", slice(1, 3)),
    ],
)
def test_freezing_the_trunk_trains_a_decoder_of_its_own_and_nothing_else(
    tmp_path, own_decoder, output, prefix, kept
):
    painted = make_tiny_dataset(tmp_path / "painted", depigmented=True, seed=3)
    start = tmp_path / "start"
    train(_resnet_settings(max_epochs=1), [DatasetSpec(painted)], start)
    out = tmp_path / "own"
    settings = _resnet_settings(
        model_kwargs={**_TINY_RESNET, **own_decoder},
        init_weights=start / "model",
        freeze=("stem", "layers", "decoders", "head"),
        select_output=output,
        lr=1e-2,
    )
    train(settings, [DatasetSpec(painted)], out)
    before, _ = load_model_folder(start / "model")
    after, metadata = load_model_folder(out / "model")
    assert metadata.output_names == ("skin", "lesion", "depigmented")
    old, new = before.state_dict(), after.state_dict()
    # Weights and batch-norm statistics of the frozen parts are the start's, bit for bit.
    assert all(
        torch.equal(new[name], tensor) for name, tensor in old.items() if "head" not in name
    )
    assert torch.equal(new["head.weight"], old["head.weight"][kept])
    # The own decoder started as a copy of the shared one and has moved away from it.
    first_conv = "decoders.0.convs.0.0.weight"
    assert not torch.equal(new[f"{prefix}{first_conv}"], old[first_conv])
    image = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        assert torch.equal(after(image)[:, kept], before(image)[:, kept])
        assert not torch.equal(after(image), before(image))
    rows = _metrics_rows(out)
    assert rows[0]["select_metric"] == rows[0][f"val/painted/{output}/dice"]


def test_a_model_needs_an_output_on_its_shared_decoder():
    with pytest.raises(ValueError, match="shared decoder"):
        build_model(
            "resnet_unet",
            **{**_TINY_RESNET, "out_channels": 2},
            skin_branch=True,
            branch_outputs=1,
        )


def test_freezing_a_misspelt_part_is_refused(tmp_path):
    model = build_model("resnet_unet", **_TINY_RESNET, branch_outputs=1)
    with pytest.raises(ValueError, match="decoder"):
        freeze_parameters(model, ("stem", "decoder"))
    with pytest.raises(ValueError, match="nothing to train"):
        freeze_parameters(
            model, ("stem", "layers", "decoders", "head", "branch_decoders", "branch_head")
        )


@pytest.mark.parametrize(
    ("own_decoder", "frozen", "trained"),
    [({"skin_branch": True}, [1, 2], 0), ({"branch_outputs": 1}, [0, 1], 2)],
)
def test_training_skips_only_outputs_no_loss_can_move_and_gets_the_same_gradients(
    own_decoder, frozen, trained
):
    model = build_model("resnet_unet", **_TINY_RESNET, **own_decoder)
    freeze_parameters(model, ("stem", "layers"))
    assert model.frozen_outputs() == ()  # the shared decoder still trains
    freeze_parameters(model, ("stem", "layers", "decoders", "head"))
    assert list(model.frozen_outputs()) == frozen
    keep_frozen_in_eval(model.train(), ("stem", "layers", "decoders", "head"))
    # Channels-last, as the CPU trainer runs: the logits must keep their layout, or the
    # loss would sum them in another order.
    model = model.to(memory_format=torch.channels_last)
    image = torch.rand(2, 3, 45, 61).contiguous(memory_format=torch.channels_last)

    def trained_output_gradients() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        logits = model(image)
        logits[:, trained].sigmoid().mean().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        return logits.detach(), grads

    full, full_grads = trained_output_gradients()
    model.skip_frozen_outputs = True
    skipped, skipped_grads = trained_output_gradients()
    assert full[:, frozen].abs().sum() > 0 and not skipped[:, frozen].any()
    assert torch.equal(skipped[:, trained], full[:, trained])
    assert skipped.stride() == full.stride()
    assert all(torch.equal(a, b) for a, b in zip(skipped_grads, full_grads, strict=True))
    with torch.no_grad():  # inference computes every output, skipping or not
        evaluated = model.eval()(image)
    assert torch.equal(evaluated[:, frozen], full[:, frozen])


# ---------------------------------------------------------------- splits
def test_patients_never_in_two_folds(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d", n_cases=20)
    cases = load_dataset(dataset)
    for seed in range(5):
        split = split_by_patient(cases, 0.3, seed)
        assert not patients_overlap(cases, split)
        assert split["val"] and split["train"]
        assert sorted(split["train"] + split["val"]) == sorted(c.case_id for c in cases)


def test_split_is_repeatable_and_respects_the_split_column(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d", n_cases=12)
    cases = load_dataset(dataset)
    assert split_by_patient(cases, 0.25, 3) == split_by_patient(cases, 0.25, 3)
    from dataclasses import replace

    fixed = [replace(c, split="val") if c.patient_id == "p0" else c for c in cases]
    split = split_by_patient(fixed, 0.0, 0)
    assert set(split["val"]) == {"case00", "case01"}


def test_cross_validation_folds_validate_every_patient_exactly_once(tmp_path):
    cases = load_dataset(make_tiny_dataset(tmp_path / "d", n_cases=20))  # 10 patients
    folds = patient_folds(cases, 3, seed=1)
    assert len(folds) == 3
    validated = [case for fold in folds for case in fold["val"]]
    assert sorted(validated) == sorted(c.case_id for c in cases)
    patients = {c.case_id: c.patient_id for c in cases}
    sizes = [len({patients[i] for i in fold["val"]}) for fold in folds]
    assert sorted(sizes) == [3, 3, 4]
    for fold in folds:
        assert not patients_overlap(cases, fold)
        assert sorted(fold["train"] + fold["val"]) == sorted(patients)
    assert patient_folds(cases, 3, seed=1) == folds
    assert patient_folds(cases, 3, seed=2) != folds
    with pytest.raises(ValueError, match="number of patients"):
        patient_folds(cases, 11, seed=0)


# ---------------------------------------------------------------- augmentation
def _augmented_samples(dataset_dir: Path, epoch: int, seed: int = 0):
    cases = [load_case(c, "tiny", 96) for c in load_dataset(dataset_dir)]
    data = SegmentationDataset(cases, training_transform(AugmentSettings(crop=48)), seed=seed)
    data.set_epoch(epoch)
    return [data[i] for i in range(len(data))]


def test_a_shrunk_mask_takes_each_blocks_centre_like_the_area_averaged_photo():
    mask = np.zeros((10, 10), np.uint8)
    mask[:2] = 1  # 40 % of the first 5-row block: plain nearest would keep it
    assert not resize_long_side(mask, 2, nearest=True).any()
    mask[:3] = 1  # 60 %
    assert resize_long_side(mask, 2, nearest=True)[:, 0].tolist() == [1, 0]


def test_augmentation_keeps_masks_binary_and_lesion_inside_skin(tiny_dataset, tmp_path):
    with_depigmented = make_tiny_dataset(tmp_path / "both", depigmented=True)
    samples = _augmented_samples(tiny_dataset, 0) + _augmented_samples(with_depigmented, 0)
    assert any(s["targets"][2].any() for s in samples)  # depigmented pixels survive crops
    for sample in samples:
        for key in ("targets", "valid"):
            assert set(torch.unique(sample[key]).tolist()) <= {0.0, 1.0}
        skin, lesion, depigmented = sample["targets"].bool()
        assert not (lesion & ~skin).any() and not (depigmented & ~lesion).any()
        assert sample["image"].shape == (3, 48, 48)


def test_background_swap_repaints_only_known_background(tmp_path):
    annotated = load_case(load_dataset(make_tiny_dataset(tmp_path / "a"))[0], "a", 96)
    no_skin_masks = make_tiny_dataset(tmp_path / "b", skin=False)
    lesion_only = load_case(load_dataset(no_skin_masks)[0], "b", 96)
    skin = annotated.targets[0] > 0
    # Feathering touches 2 px either side of the skin edge; beyond that it is exact.
    inside = cv2.erode(skin.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    outside = cv2.erode((~skin).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    swapped = swap_background(annotated.image, annotated.targets[0], np.random.default_rng(0))
    assert np.array_equal(swapped[inside], annotated.image[inside])
    assert swapped[outside].mean() > 130 > annotated.image[outside].mean()
    # A hole enclosed by skin keeps its pixels.
    holed = annotated.targets[0].copy()
    centre = tuple(int(v) for v in np.argwhere(inside).mean(axis=0))
    holed[centre[0] - 3 : centre[0] + 4, centre[1] - 3 : centre[1] + 4] = 0
    repainted = swap_background(annotated.image, holed, np.random.default_rng(0))
    assert np.array_equal(repainted[inside], annotated.image[inside])

    identity = A.Compose([])
    for case, changes in ((annotated, True), (lesion_only, False)):
        sample = SegmentationDataset([case], identity, background_swap=1.0)[0]
        plain = SegmentationDataset([case], identity, background_swap=0.0)[0]
        assert torch.equal(sample["targets"], plain["targets"])
        assert torch.equal(sample["valid"], plain["valid"])
        assert torch.equal(sample["image"], plain["image"]) is not changes
    with pytest.raises(ValueError, match="background_swap"):
        AugmentSettings(background_swap=1.5)


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)


def test_pale_tone_lightens_brown_skin_more_than_white_patches_and_keeps_the_mask():
    photo = np.zeros((8, 16, 3), np.uint8)
    photo[:, :8] = (140, 95, 70)  # brown skin, L* about 45
    photo[:, 8:] = (225, 205, 195)  # depigmented patch, L* about 84
    before, after = _lab(photo), _lab(pale_tone(photo, 0.6, 0.7))
    lift_skin = after[0, 0, 0] - before[0, 0, 0]
    lift_patch = after[0, 15, 0] - before[0, 15, 0]
    assert lift_skin > 10 and 0 < lift_patch < lift_skin / 2
    assert abs(after[0, 0, 2]) < abs(before[0, 0, 2])  # less yellow: paler skin
    assert np.abs(pale_tone(photo, 1.0, 1.0).astype(int) - photo).max() <= 1

    # Image-only: the masks come through the whole pipeline untouched.
    transform = training_transform(AugmentSettings(crop=16, pale_skin=1.0, colour=0))
    assert any(isinstance(t, PaleSkinTone) and t.p == 1.0 for t in transform.transforms)
    masks = np.random.default_rng(0).integers(0, 2, (8, 16)).astype(np.uint8)
    transform = A.Compose([PaleSkinTone(p=1.0)])
    out = transform(image=photo, mask=masks)
    assert np.array_equal(out["mask"], masks) and not np.array_equal(out["image"], photo)
    with pytest.raises(ValueError, match="pale_skin"):
        AugmentSettings(pale_skin=-0.1)


def test_white_balance_relights_red_against_blue_keeps_masks_and_is_absent_when_off():
    photo = np.full((32, 32, 3), 128, np.uint8)
    masks = np.random.default_rng(0).integers(0, 2, (32, 32)).astype(np.uint8)
    settings = dict(crop=32, colour=0, noise_blur=0, scale=(1.0, 1.0), rotate_deg=0)
    on = training_transform(AugmentSettings(white_balance=1.0, **settings))
    on.set_random_seed(0)
    red_over_blue = []
    for _ in range(20):
        out = on(image=photo, mask=masks)
        assert set(np.unique(out["mask"])) <= {0, 1}
        centre = out["image"][16, 16].astype(float)  # clear of any sheared-in border
        assert abs(centre[1] - 128) <= 1  # green is the reference channel
        red_over_blue.append(centre[0] / centre[2])
    # Warm and cool illuminants both drawn, within 5000-9000 K (red/blue 1.47 to 0.72).
    assert min(red_over_blue) < 0.95 and max(red_over_blue) > 1.05
    assert min(red_over_blue) > 0.7 and max(red_over_blue) < 1.5
    # Masks are untouched by the re-lighting itself.
    relit = A.Compose([A.PlanckianJitter(mode="blackbody", temperature_limit=(5000, 6000), p=1)])
    out = relit(image=photo, mask=masks)
    assert np.array_equal(out["mask"], masks) and out["image"][0, 0, 0] > out["image"][0, 0, 2]
    # Off leaves the pipeline as before, so older recipes draw the same random stream.
    off = training_transform(AugmentSettings(**settings))
    assert not any(isinstance(t, A.PlanckianJitter) for t in off.transforms)
    with pytest.raises(ValueError, match="white_balance"):
        AugmentSettings(white_balance=1.5)
    with pytest.raises(ValueError, match="white_balance_kelvin"):
        AugmentSettings(white_balance_kelvin=(7000, 9000))  # PlanckianJitter needs 6000 K inside
    wide = training_transform(
        AugmentSettings(white_balance=0.8, white_balance_kelvin=(4500, 10000))
    )
    jitter = [t for t in wide.transforms if isinstance(t, A.PlanckianJitter)]
    assert len(jitter) == 1 and jitter[0].p == 0.8
    assert tuple(jitter[0].temperature_limit) == (4500, 10000)


def test_white_balance_exposure_scales_a_relit_photo_and_changes_nothing_when_unset():
    photo = np.full((32, 32, 3), 128, np.uint8)
    masks = np.random.default_rng(0).integers(0, 2, (32, 32)).astype(np.uint8)
    settings = dict(crop=32, colour=0, noise_blur=0, scale=(1.0, 1.0), rotate_deg=0)

    def greens(exposure: tuple[float, float]) -> list[float]:
        transform = training_transform(
            AugmentSettings(white_balance=1.0, white_balance_exposure=exposure, **settings)
        )
        transform.set_random_seed(0)
        values = []
        for _ in range(20):
            out = transform(image=photo, mask=masks)
            assert set(np.unique(out["mask"])) <= {0, 1}
            values.append(float(out["image"][16, 16, 1]))  # green: the illuminant's reference
        return values

    assert max(abs(g - 0.7 * 128) for g in greens((0.7, 0.7))) <= 1
    spread = greens((0.7, 1.3))
    assert min(spread) < 115 and max(spread) > 141
    # Unset, the pipeline is the plain re-lighting, so older recipes draw the same stream.
    plain = training_transform(AugmentSettings(white_balance=0.7, **settings))
    assert any(isinstance(t, A.PlanckianJitter) and t.p == 0.7 for t in plain.transforms)
    assert not any(isinstance(t, A.Sequential) for t in plain.transforms)
    with pytest.raises(ValueError, match="white_balance_exposure"):
        AugmentSettings(white_balance_exposure=(1.3, 1.1))


# Augmentation without geometry, colour or noise: only re-lighting changes a photo.
_ONLY_RELIGHTING = dict(crop=48, colour=0, noise_blur=0, scale=(1.0, 1.0), rotate_deg=0)


def _square_lesion_case(dataset: str, seed: int, *, exact: bool) -> LoadedCase:
    """A 48-px photo with a square lesion; ``exact``: its depigmented mask is given too."""
    photo = np.random.default_rng(seed).integers(60, 200, (48, 48, 3)).astype(np.uint8)
    lesion = np.zeros((48, 48), bool)
    lesion[10:30, 10:30] = True
    depigmented = lesion if exact else None
    return LoadedCase(
        None, dataset, photo, *targets_from_masks(None, lesion, (48, 48), depigmented)
    )


def test_white_balance_can_spare_photos_with_depigmented_truth():
    painted = _square_lesion_case("painted", 0, exact=True)
    real = _square_lesion_case("real", 0, exact=False)
    photo, lesion = painted.image, painted.targets[1].astype(bool)
    settings = _ONLY_RELIGHTING
    spared = AugmentSettings(
        white_balance=1.0, white_balance_spares_depigmented_truth=True, **settings
    )
    relit_all = AugmentSettings(white_balance=1.0, **settings)
    assert unlit_transform(relit_all) is None
    assert unlit_transform(AugmentSettings(white_balance_spares_depigmented_truth=True)) is None

    def images(augment: AugmentSettings, case: LoadedCase) -> list[torch.Tensor]:
        data = SegmentationDataset(
            [case] * 6,
            training_transform(augment),
            unlit_transform=unlit_transform(augment),
            unlit_depigmented_truth=augment.white_balance_spares_depigmented_truth,
            unlit_datasets=augment.white_balance_skip_datasets,
        )
        return [data[i]["image"] for i in range(6)]

    unlit = images(AugmentSettings(**settings), painted)
    # Painted photos draw the same stream as without re-lighting; other photos are re-lit.
    assert all(torch.equal(a, b) for a, b in zip(images(spared, painted), unlit, strict=True))
    assert not any(
        torch.equal(a, b) for a, b in zip(images(relit_all, painted), unlit, strict=True)
    )
    real_unlit = images(AugmentSettings(**settings), real)
    assert not any(
        torch.equal(a, b) for a, b in zip(images(spared, real), real_unlit, strict=True)
    )
    # Skin photos without vitiligo: the empty lesion mask makes "no depigmentation" exact.
    skin_only = LoadedCase(
        None, "skin", photo, *targets_from_masks(lesion, np.zeros_like(lesion), (48, 48))
    )
    skin_unlit = images(AugmentSettings(**settings), skin_only)
    assert all(
        torch.equal(a, b) for a, b in zip(images(spared, skin_only), skin_unlit, strict=True)
    )


def test_relit_photos_can_leave_the_depigmented_output_untaught():
    painted = _square_lesion_case("painted", 2, exact=True)
    settings = _ONLY_RELIGHTING
    assert relit_transform(AugmentSettings(white_balance=0.5, **settings)) is None

    def samples(share: float, skip: tuple[str, ...] = ()) -> list[dict[str, torch.Tensor]]:
        augment = AugmentSettings(
            white_balance=1.0,
            white_balance_teaches=("skin", "lesion"),
            white_balance_skip_datasets=skip,
            **settings,
        )
        data = SegmentationDataset(
            [painted] * 8,
            training_transform(AugmentSettings(**settings)),
            unlit_transform=unlit_transform(augment),
            unlit_datasets=skip,
            relit_transform=relit_transform(augment),
            relit_share=share,  # 0: the same random stream, never re-lit
            relit_untaught=untaught_by_relit(augment),
        )
        return [data[i] for i in range(8)]

    unlit = [s["image"] for s in samples(0.0)]
    relit = samples(1.0)
    # Every photo re-lit, none teaching the depigmented output; lesion and skin still taught.
    assert not any(torch.equal(s["image"], u) for s, u in zip(relit, unlit, strict=True))
    assert all(not s["valid"][2].any() and s["valid"][1].any() for s in relit)
    assert painted.valid[2].all()  # the case in memory is untouched
    # About half re-lit at 0.5: exactly those lose the depigmented mask.
    half = samples(0.5)
    hidden = [not s["valid"][2].any() for s in half]
    changed = [not torch.equal(s["image"], u) for s, u in zip(half, unlit, strict=True)]
    assert hidden == changed and 0 < sum(hidden) < 8
    # A set spared from re-lighting keeps its colours and its depigmented mask.
    spared = samples(1.0, skip=("painted",))
    plain = SegmentationDataset([painted] * 8, training_transform(AugmentSettings(**settings)))
    for sample, reference in zip(spared, (plain[i] for i in range(8)), strict=True):
        assert torch.equal(sample["image"], reference["image"])
        assert sample["valid"][2].any() and torch.equal(sample["valid"], reference["valid"])


def test_relit_photos_teach_only_the_outputs_named():
    square = _square_lesion_case("p", 3, exact=True)
    lesion = square.targets[1].astype(bool)
    skin = np.ones((48, 48), bool)
    case = LoadedCase(None, "p", square.image, *targets_from_masks(skin, lesion, (48, 48), lesion))
    settings = _ONLY_RELIGHTING
    augment = AugmentSettings(white_balance=1.0, white_balance_teaches=("lesion",), **settings)
    assert untaught_by_relit(augment) == (0, 2)
    data = SegmentationDataset(
        [case] * 4,
        training_transform(AugmentSettings(**settings)),
        relit_transform=relit_transform(augment),
        relit_share=1.0,
        relit_untaught=untaught_by_relit(augment),
    )
    for i in range(4):
        valid = data[i]["valid"]
        assert not valid[0].any() and valid[1].any() and not valid[2].any()
    with pytest.raises(ValueError, match="unknown outputs"):
        AugmentSettings(white_balance_teaches=("lesions",))


def test_white_balance_can_skip_named_datasets():
    photo = np.random.default_rng(1).integers(60, 200, (48, 48, 3)).astype(np.uint8)
    skin = np.zeros((48, 48), bool)
    skin[5:40, 5:40] = True
    settings = _ONLY_RELIGHTING
    skip_painted = AugmentSettings(
        white_balance=1.0, white_balance_skip_datasets=("painted",), **settings
    )
    assert unlit_transform(skip_painted) is not None

    def images(augment: AugmentSettings, dataset: str) -> list[torch.Tensor]:
        case = LoadedCase(None, dataset, photo, *targets_from_masks(skin, None, (48, 48)))
        data = SegmentationDataset(
            [case] * 6,
            training_transform(augment),
            unlit_transform=unlit_transform(augment),
            unlit_datasets=augment.white_balance_skip_datasets,
        )
        return [data[i]["image"] for i in range(6)]

    unlit = images(AugmentSettings(**settings), "painted")
    assert all(
        torch.equal(a, b) for a, b in zip(images(skip_painted, "painted"), unlit, strict=True)
    )
    # The same photo in a set not named is re-lit.
    assert not any(
        torch.equal(a, b) for a, b in zip(images(skip_painted, "skin"), unlit, strict=True)
    )


def test_augmentation_differs_across_epochs_and_samples_but_repeats_per_seed(tiny_dataset):
    first = _augmented_samples(tiny_dataset, epoch=0)
    again = _augmented_samples(tiny_dataset, epoch=0)
    later = _augmented_samples(tiny_dataset, epoch=1)
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a["image"], b["image"]) for a, b in zip(first, later, strict=True))
    assert not torch.equal(first[0]["image"], first[1]["image"])


def test_a_case_drawn_twice_in_an_epoch_is_augmented_twice_differently(tiny_dataset):
    cases = [load_case(c, "tiny", 96) for c in load_dataset(tiny_dataset)]
    augmented = SegmentationDataset(cases, training_transform(AugmentSettings(crop=48)))
    augmented.set_epoch(0, [1, 1, 0])
    assert len(augmented) == 3
    assert not torch.equal(augmented[0]["image"], augmented[1]["image"])
    # The draws name the cases: without augmentation draw k is case draws[k] itself.
    plain = SegmentationDataset(cases, A.Compose([]))
    photos = [plain[i]["image"] for i in range(len(cases))]
    plain.set_epoch(0, [1, 1, 0])
    assert [torch.equal(plain[k]["image"], photos[c]) for k, c in enumerate([1, 1, 0])] == [
        True
    ] * 3


def test_augmentation_streams_differ_across_dataloader_workers(tiny_dataset):
    cases = [load_case(c, "tiny", 96) for c in load_dataset(tiny_dataset)]
    # Same photo at every index: any difference comes from the random stream.
    data = SegmentationDataset([cases[0]] * 4, training_transform(AugmentSettings(crop=48)))
    loader = torch.utils.data.DataLoader(data, batch_size=1, num_workers=2)
    images = [batch["image"][0] for batch in loader]
    assert len({tuple(image.flatten()[:200].tolist()) for image in images}) == 4


# ---------------------------------------------------------------- training
def _metrics_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as stream:
        return list(csv.DictReader(stream))


_TINY_RESNET = {"decoder_channels": [16, 8, 8, 8, 8], "out_channels": 3}


def _resnet_settings(**overrides) -> TrainSettings:
    return _settings(**{"arch": "resnet_unet", "model_kwargs": _TINY_RESNET, **overrides})


def _settings(**overrides) -> TrainSettings:
    base = dict(
        arch="compact_unet",
        model_kwargs={"width": 4},
        long_side=64,
        tile=64,
        augment=AugmentSettings(crop=48),
        batch_size=2,
        samples_per_epoch=4,
        max_epochs=2,
        warmup_steps=1,
        val_max_cases=4,
        threads=1,
    )
    base.update(overrides)
    return TrainSettings(**base)


def test_training_writes_model_folder_metrics_and_split(tmp_path):
    lesion_only = make_tiny_dataset(tmp_path / "lesion", skin=False, seed=1)
    skin_only = make_tiny_dataset(tmp_path / "skin", lesion=False, seed=2)
    out = tmp_path / "run"
    specs = [DatasetSpec(lesion_only, 0.7, "lesion"), DatasetSpec(skin_only, 0.3, "skin")]
    result = train(_settings(), specs, out)
    assert (out / "model" / "weights.safetensors").is_file()
    assert (out / "split.json").is_file() and (out / "checkpoints" / "last.pt").is_file()
    rows = _metrics_rows(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert "val/lesion/lesion/dice" in rows[0] and "val/skin/skin/dice" in rows[0]
    assert result.epochs_run == 2
    checkpoint = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["state"]["epoch"] == 2


def test_resume_continues_from_the_last_epoch(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    out = tmp_path / "run"
    train(_settings(max_epochs=1), [DatasetSpec(dataset)], out)
    first = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    result = train(_settings(max_epochs=3), [DatasetSpec(dataset)], out)
    resumed = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    rows = _metrics_rows(out)
    assert result.epochs_run == 3 and [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert resumed["state"]["step"] == first["state"]["step"] + 2 * 2
    assert float(rows[0]["train_loss"]) == pytest.approx(
        float(first["state"]["history"][0]["train_loss"])
    )


def test_time_budget_ends_the_run_and_resuming_a_finished_run_trains_no_more(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    out = tmp_path / "run"
    budget = _settings(max_epochs=5, max_minutes=1e-6)  # spent within the first epoch
    assert train(budget, [DatasetSpec(dataset)], out).epochs_run == 1
    finished = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert train(budget, [DatasetSpec(dataset)], out).epochs_run == 1
    again = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert again["state"]["step"] == finished["state"]["step"]
    assert [int(r["epoch"]) for r in _metrics_rows(out)] == [1]


def test_validating_every_few_epochs_trains_the_same_weights_and_measures_the_last(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    weights = {}
    for every in (1, 2):
        out = tmp_path / f"every{every}"
        train(
            _settings(max_epochs=3, ema_decay=0.5, validate_every=every),
            [DatasetSpec(dataset)],
            out,
        )
        weights[every] = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
        rows = _metrics_rows(out)
        assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
        measured = [int(r["epoch"]) for r in rows if r["select_metric"]]
        assert measured == ([1, 2, 3] if every == 1 else [2, 3])  # the last epoch always
        assert all(r["train_loss"] for r in rows)
    for part in ("model", "ema"):
        for name, tensor in weights[1][part].items():
            assert torch.equal(tensor, weights[2][part][name]), (part, name)


def test_a_run_stopped_by_its_time_budget_validates_its_last_epoch(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    out = tmp_path / "run"
    budget = _settings(max_epochs=5, max_minutes=1e-6, validate_every=10)
    assert train(budget, [DatasetSpec(dataset)], out).epochs_run == 1
    assert _metrics_rows(out)[0]["select_metric"]
    assert (out / "model" / "weights.safetensors").is_file()


def test_validate_every_below_one_is_refused(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    with pytest.raises(ValueError, match="validate_every must be 1 or more, not 0"):
        train(_settings(validate_every=0), [DatasetSpec(dataset)], tmp_path / "run")


def test_an_epoch_smaller_than_a_batch_still_takes_its_step(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    result = train(
        _settings(samples_per_epoch=1, batch_size=2, max_epochs=1),
        [DatasetSpec(dataset)],
        tmp_path / "run",
    )
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert result.epochs_run == 1 and checkpoint["state"]["step"] == 1


def test_stop_reasons_patience_and_time_budget():
    fresh = {"stale": 0, "elapsed": 0.0}
    assert _stop_reason(fresh, _settings(early_stop_patience=2), math.inf) is None
    stale = {"stale": 2, "elapsed": 0.0}
    assert "no improvement in 2 validations" in _stop_reason(
        stale, _settings(early_stop_patience=2), 60
    )
    assert _stop_reason(stale, _settings(early_stop_patience=0), 60) is None  # 0 = off
    spent = {"stale": 0, "elapsed": 61.0}
    assert "time budget of 1.0 min" in _stop_reason(spent, _settings(max_minutes=1.0), 60)


def test_datasets_sharing_a_folder_name_or_a_misspelt_select_dataset_are_refused(tmp_path):
    first = make_tiny_dataset(tmp_path / "a" / "train")
    second = make_tiny_dataset(tmp_path / "b" / "train", seed=3)
    with pytest.raises(ValueError, match="share the folder name 'train'"):
        train(_settings(), [DatasetSpec(first), DatasetSpec(second)], tmp_path / "run")
    with pytest.raises(ValueError, match="select_dataset 'trian' names no dataset"):
        train(_settings(select_dataset="trian"), [DatasetSpec(first)], tmp_path / "run")
    with pytest.raises(ValueError, match="select_output 'depigmentd' names no output"):
        train(_settings(select_output="depigmentd"), [DatasetSpec(first)], tmp_path / "run")


def test_the_model_folder_does_not_point_at_the_encoder_file_it_started_from(tmp_path):
    from torchvision.models import resnet18

    encoder_file = tmp_path / "resnet18.pth"
    torch.save(resnet18(weights=None).state_dict(), encoder_file)
    kwargs = {"encoder": "resnet18", "decoder_channels": [8, 8, 8, 8, 8]}
    settings = _settings(
        arch="resnet_unet",
        model_kwargs={**kwargs, "encoder_weights": str(encoder_file)},
        max_epochs=1,
    )
    out = tmp_path / "run"
    train(settings, [DatasetSpec(make_tiny_dataset(tmp_path / "d"))], out)
    encoder_file.unlink()  # another machine: the folder must load without it
    model, metadata = load_model_folder(out / "model")
    assert metadata.model_kwargs["encoder_weights"] is None
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 2, 32, 32)


def test_fine_tuning_reuses_the_starting_runs_split_whatever_its_seed(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    first = tmp_path / "first"
    train(_settings(max_epochs=1, seed=0, val_fraction=0.3), [DatasetSpec(dataset)], first)
    # Seed 2 alone would hold out other patients, so the reuse is what keeps the split.
    cases = load_dataset(dataset)
    assert split_by_patient(cases, 0.3, 2) != split_by_patient(cases, 0.3, 0)
    tuned = tmp_path / "tuned"
    settings = _settings(
        max_epochs=1,
        seed=2,
        val_fraction=0.3,
        init_weights=first / "model",
        split_file=first / "split.json",
    )
    train(settings, [DatasetSpec(dataset)], tuned)
    assert (tuned / "split.json").read_text() == (first / "split.json").read_text()


def test_split_written_before_training_is_the_one_training_draws(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    script = Path(__file__).parents[1] / "scripts" / "make_split.py"
    made = tmp_path / "split.json"
    subprocess.run(
        [sys.executable, str(script), str(dataset), "--seed", "3", "--val-fraction", "0.3"]
        + ["--out", str(made)],
        check=True,
        capture_output=True,
    )
    run = tmp_path / "run"
    train(_settings(max_epochs=1, seed=3, val_fraction=0.3), [DatasetSpec(dataset)], run)
    assert load_split(made) == load_split(run / "split.json")
    assert load_split(made)["d"]["val"]


def test_a_split_file_naming_unknown_cases_is_refused(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    split_file = tmp_path / "split.json"
    split_file.write_text('{"d": {"train": ["case00", "ghost"], "val": ["case01"]}}')
    with pytest.raises(ValueError, match="ghost"):
        train(_settings(split_file=split_file), [DatasetSpec(dataset)], tmp_path / "run")


def test_exported_model_is_the_weight_average_and_resume_keeps_it(tmp_path):

    dataset = make_tiny_dataset(tmp_path / "d")
    out = tmp_path / "run"
    settings = _settings(max_epochs=1, ema_decay=0.5, channels_last=True, amp=True)
    train(settings, [DatasetSpec(dataset)], out)
    checkpoint = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    averaged = {k.removeprefix("module."): v for k, v in checkpoint["ema"].items()}
    raw = checkpoint["model"]
    differs = [
        k for k in raw if raw[k].is_floating_point() and not torch.equal(raw[k], averaged[k])
    ]
    assert differs, "with decay 0.5 the average must differ from the last weights"
    exported, _ = load_model_folder(out / "model")
    for key, value in exported.state_dict().items():
        # The folder stores fp16: compare at that precision.
        assert torch.allclose(value.float(), averaged[key].float().half().float()), key
    train(_settings(max_epochs=2, ema_decay=0.5), [DatasetSpec(dataset)], out)
    resumed = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert int(resumed["ema"]["n_averaged"]) == int(checkpoint["ema"]["n_averaged"]) + 2


def test_checkpoint_weights_are_the_validated_average(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    out = tmp_path / "run"
    # One epoch: the exported model is that epoch's, so both must hold the same weights.
    train(_settings(max_epochs=1, ema_decay=0.5), [DatasetSpec(dataset)], out)
    weights = checkpoint_weights(out / "checkpoints" / "last.pt")
    exported, _ = load_model_folder(out / "model")
    assert set(weights) == set(exported.state_dict())
    for key, value in exported.state_dict().items():
        assert torch.allclose(value.float(), weights[key].float().half().float()), key


def test_cross_validation_script_pools_every_folds_last_epoch(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d", n_cases=8)  # 4 patients
    # The first patient's two cases become one photo annotated twice.
    images = sorted((dataset / "images").glob("*.png"))
    shutil.copyfile(images[0], images[1])
    script = Path(__file__).parents[1] / "scripts" / "cross_validate.py"
    folds = tmp_path / "folds"
    subprocess.run(
        [sys.executable, str(script), "folds", "--dataset", str(dataset), "--k", "2"]
        + ["--out", str(folds)],
        check=True,
        capture_output=True,
    )
    runs = [tmp_path / f"fold-{i}" for i in range(2)]
    for index, run in enumerate(runs):
        settings = _settings(max_epochs=2, split_file=folds / f"fold-{index}.json")
        train(settings, [DatasetSpec(dataset)], run)
    pooled_file = tmp_path / "cv.json"
    done = subprocess.run(
        [sys.executable, str(script), "evaluate", *map(str, runs), "--dataset", str(dataset)]
        + ["--out", str(pooled_file)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    pooled = json.loads(pooled_file.read_text())
    assert sorted(c["case_id"] for c in pooled["cases"]) == [f"case{i:02d}" for i in range(8)]
    assert pooled["mean"]["n_patients"] == 4
    assert "ci95_by_patient" in pooled["mean"]
    # The photo annotated twice: both copies scored by the fold that never saw them.
    repeated = pooled["annotator_agreement"]["lesion"]
    assert repeated["per_photo"][0]["case_ids"] == ["case00", "case01"]
    dice = {c["case_id"]: c["lesion"]["dice"] for c in pooled["cases"]}
    assert repeated["model_dice"] == pytest.approx((dice["case00"] + dice["case01"]) / 2)
    # The same folds scored with another lesion clean-up; a bad one is refused by name.
    evaluate = [
        sys.executable,
        str(script),
        "evaluate",
        *map(str, runs),
        "--dataset",
        str(dataset),
    ]
    refined_file = tmp_path / "cv-colour.json"
    colour = '{"colour_iterations": 2, "colour_long_side": 0}'
    done = subprocess.run(
        evaluate + ["--out", str(refined_file), "--lesion-postprocess", colour],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(refined_file.read_text())["lesion_postprocess"] == json.loads(colour)
    done = subprocess.run(
        evaluate + ["--lesion-postprocess", '{"colour_iterations": -1}'],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "colour_iterations" in done.stderr
    done = subprocess.run(
        [sys.executable, str(script), "summary", *map(str, runs), "--dataset", "d"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "all (2 folds, case-weighted) | 8 |" in done.stdout


def test_nested_early_stopping_never_looks_at_the_scored_fold(tmp_path):
    import importlib.util

    path = Path(__file__).parents[1] / "scripts" / "cross_validate.py"
    spec = importlib.util.spec_from_file_location("cross_validate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Fold 0 peaks at epoch 0 but the others at epoch 1; the longer curve is cut to 2.
    curves = [[0.9, 0.1], [0.1, 0.9, 0.95], [0.1, 0.9]]
    assert module.epochs_chosen_on_other_folds(curves) == [1, 0, 0]
    # An epoch not validated (trainer.validate_every) is read as NaN and never chosen.
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch,select_metric\n1,\n2,0.5\n3,\n4,0.25\n")
    curve = module.validation_curve(run)
    assert math.isnan(curve[0]) and math.isnan(curve[2]) and curve[1::2] == [0.5, 0.25]
    assert module.epochs_chosen_on_other_folds([curve, curve]) == [1, 1]


def test_training_command_end_to_end(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d")
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "vitiseg.cli.train",
        f"dataset={dataset}",
        "debug=tiny",
        f"output={out}",
    ]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    evaluation = tmp_path / "eval"
    run_eval_command(out / "model", dataset, evaluation, "gallery=2", cwd=tmp_path)
    summary = json.loads((evaluation / "summary.json").read_text())
    assert len(summary["cases"]) == 6
    assert set(summary["mean"]) >= {"lesion", "skin"}
    assert 0 <= summary["mean"]["lesion"]["dice"] <= 1
    low, high = summary["mean"]["ci95_by_patient"]["lesion_dice"]
    assert low <= summary["mean"]["lesion"]["dice"] <= high
    assert summary["mean"]["n_patients"] == 3
    assert summary["inference"]["tta"] is True  # the shipped default, recorded with the figures
    assert all(isinstance(case["quality_flags"], list) for case in summary["cases"])
    raised = {flag for case in summary["cases"] for flag in case["quality_flags"]}
    assert set(summary["by_quality_flag"]) == raised
    assert "[" in (evaluation / "summary.md").read_text()
    assert (evaluation / "worst_cases" / "index.html").is_file()
    with open(evaluation / "cases.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [r["case_id"] for r in rows] == [c["case_id"] for c in summary["cases"]]
    for row, case in zip(rows, summary["cases"], strict=True):
        assert float(row["lesion_dice"]) == pytest.approx(case["lesion"]["dice"])
        assert row["depigmented_dice"] == ""  # a two-output model: not scored, left blank
        assert row["quality_flags"] == ";".join(case["quality_flags"])


def test_ddp_two_processes_on_cpu_with_gloo(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "d", n_cases=8)
    out = tmp_path / "run"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "vitiseg.cli.train",
        "trainer=ddp",
        "trainer.device=cpu",
        "trainer.amp=false",
        "trainer.num_workers=0",
        f"dataset={dataset}",
        "debug=tiny",
        # A time budget that does not bind: the ranks still agree on the schedule and the stop.
        "trainer.max_minutes=60",
        f"output={out}",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _metrics_rows(out)
    assert len(rows) == 2
    # Each of the 2 ranks takes half of every epoch's samples: 4 samples / (2 per batch * 2).
    assert int(rows[-1]["step"]) == 2
    assert (out / "model" / "metadata.json").is_file()


def test_a_split_file_that_is_not_json_is_refused_with_its_name(tmp_path):
    split_file = tmp_path / "split.json"
    split_file.write_text("{not json")
    with pytest.raises(ValueError, match="split.json: not a split.json"):
        load_split(split_file)


def test_dataset_weights_keyed_by_an_unknown_folder_are_refused(tmp_path):
    from omegaconf import OmegaConf

    from vitiseg.cli.train import dataset_specs

    real = make_tiny_dataset(tmp_path / "real")
    painted = make_tiny_dataset(tmp_path / "painted-train", seed=1)

    def specs(folders, weights):
        cfg = {"dataset": [str(f) for f in folders], "dataset_weights": weights}
        return dataset_specs(OmegaConf.create(cfg))

    weights = {"real": 0.85, "painted-train": 0.15}
    assert [spec.weight for spec in specs([real, painted], weights)] == [0.85, 0.15]
    # An experiment may weight a set this run leaves out; one set alone needs no share.
    assert [spec.weight for spec in specs([real], weights)] == [0.85]
    assert [spec.weight for spec in specs([painted], {"real": 1.0})] == [1.0]
    # "painted" names no folder: without the check painted-train would train at weight 1.0.
    with pytest.raises(ValueError, match=r"\['painted-train'\].*\['painted'\]"):
        specs([real, painted], {"real": 0.85, "painted": 0.15})
    assert [spec.weight for spec in specs([real, painted], [0.7, 0.3])] == [0.7, 0.3]
    with pytest.raises(ValueError, match="lists 1 weights for 2 dataset folders"):
        specs([real, painted], [0.7])


@pytest.mark.parametrize(
    ("experiment", "folders", "budget"),
    [
        ("default_model_pretrain", ["painted-train-split"], (15, 200)),
        ("default_model", ["vitiligo-web", "skin-photos"], (30, 200)),
        (
            "default_model_refine",
            ["vitiligo-web", "skin-photos", "painted-train-split"],
            (10, 200),
        ),
        # Stage 4 counts epochs: a busy CPU must not shorten its schedule.
        (
            "default_model_painted",
            ["vitiligo-web", "skin-photos", "painted-train-split"],
            (None, 17),
        ),
        (
            "default_model_depigmented",
            ["vitiligo-web", "skin-photos", "painted-train-split"],
            (None, 17),
        ),
        (
            "default_model_depigmented_dice_per_image",
            ["vitiligo-web", "skin-photos", "painted-train-split"],
            (None, 17),
        ),
        (
            "default_model_depigmented_lesion_dice_per_image",
            ["vitiligo-web", "skin-photos", "painted-train-split"],
            (None, 17),
        ),
        (
            "default_model_depigmented_lesion_lovasz",
            ["vitiligo-web", "skin-photos", "painted-train-split"],
            (None, 17),
        ),
        (
            "default_model_relit_lesion",
            ["vitiligo-web", "skin-photos", "painted-train-split", "painted-light-train"],
            (None, 10),
        ),
        (
            "default_model_skin_branch",
            ["vitiligo-web", "skin-photos", "skin-scenes", "painted-train-split"],
            (None, 40),
        ),
    ],
)
def test_default_recipe_configs_weight_the_folders_their_commands_name(
    tmp_path, experiment, folders, budget
):
    from hydra import compose, initialize_config_dir

    from vitiseg.cli.train import dataset_specs, settings_from_config
    from vitiseg.paths import config_dir

    paths = [make_tiny_dataset(tmp_path / name) for name in folders]
    overrides = [f"experiment={experiment}", f"dataset=[{','.join(map(str, paths))}]"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides + [f"output={tmp_path}"])
    specs = dataset_specs(cfg)
    if len(specs) > 1:  # every folder the recipe's command names has its own share
        assert all(spec.label in cfg.dataset_weights for spec in specs)
    settings = settings_from_config(cfg)
    assert (settings.max_minutes, settings.max_epochs) == budget
    if budget[0] is None:  # their last epoch ships: validating it alone keeps the weights
        assert settings.validate_every == settings.max_epochs


def test_a_budget_scale_stretches_time_budgeted_stages_only(tmp_path):
    from hydra import compose, initialize_config_dir

    from vitiseg.cli.train import settings_from_config
    from vitiseg.paths import config_dir
    from vitiseg.training.settings import scaled_budget

    dataset = make_tiny_dataset(tmp_path / "vitiligo-web")

    def settings(experiment, *extra):
        overrides = [f"dataset={dataset}", f"experiment={experiment}", *extra]
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return settings_from_config(compose(config_name="train", overrides=overrides))

    # Stage 2 (30 min) on a CPU four times slower gets 120 min; stage 4 runs by epochs.
    assert settings("default_model").max_minutes == 30
    assert settings("default_model", "trainer.budget_scale=4").max_minutes == 120
    assert settings("default_model_painted", "trainer.budget_scale=4").max_minutes is None
    with pytest.raises(ValueError, match="budget_scale must be a positive number, got 0"):
        scaled_budget(30, 0)


def test_the_coarse_label_options_reach_the_settings(tmp_path):
    from hydra import compose, initialize_config_dir

    from vitiseg.cli.train import settings_from_config
    from vitiseg.paths import config_dir

    dataset = make_tiny_dataset(tmp_path / "vitiligo-web")
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        plain = compose(config_name="train", overrides=[f"dataset={dataset}"])
        banded = compose(
            config_name="train",
            overrides=[f"dataset={dataset}", "data.outline_band_px={vitiligo-web:5}"],
        )
        per_image = compose(
            config_name="train",
            overrides=[
                f"dataset={dataset}",
                "experiment=default_model_depigmented_dice_per_image",
            ],
        )
        lesion_only = compose(
            config_name="train",
            overrides=[
                f"dataset={dataset}",
                "experiment=default_model_depigmented_lesion_dice_per_image",
            ],
        )
        lovasz = compose(
            config_name="train",
            overrides=[f"dataset={dataset}", "experiment=default_model_depigmented_lesion_lovasz"],
        )
    assert settings_from_config(plain).outline_band_px == {}
    assert settings_from_config(banded).outline_band_px == {"vitiligo-web": 5}
    assert settings_from_config(plain).dice_per_image is False
    assert settings_from_config(per_image).dice_per_image is True
    assert settings_from_config(lesion_only).dice_per_image == ("lesion",)
    assert settings_from_config(plain).lovasz is False
    assert settings_from_config(lovasz).lovasz == ("lesion",)
    assert settings_from_config(lovasz).dice_per_image == ("lesion",)


def test_the_relit_recipe_relights_all_but_skin_photos_for_the_lesion_output_only(tmp_path):
    from hydra import compose, initialize_config_dir

    from vitiseg.cli.train import settings_from_config
    from vitiseg.paths import config_dir

    dataset = make_tiny_dataset(tmp_path / "vitiligo-web")
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        relit = compose(
            config_name="train",
            overrides=[f"dataset={dataset}", "experiment=default_model_relit_lesion"],
        )
    augment = settings_from_config(relit).augment
    assert augment.white_balance == 0.7
    assert augment.white_balance_teaches == ("lesion",)
    assert augment.white_balance_skip_datasets == ("skin-photos",)
    assert settings_from_config(relit).lr == 3e-4


def test_evaluation_table_gives_the_affected_fraction_error_in_percentage_points():
    from vitiseg.evaluation.evaluate import CaseResult, markdown_table, summarise
    from vitiseg.metrics.segmentation import score_masks

    truth = np.zeros((10, 10), bool)
    # True affected fraction 0.20, predicted 0.25 and 0.10: errors 5 and 10 pp, mean 7.5.
    results = [
        CaseResult(
            f"c{i}", f"p{i}", score_masks(truth, truth), None, 0.2, predicted, "ita_tan", 20.0
        )
        for i, predicted in enumerate([0.25, 0.10])
    ]
    all_row = markdown_table(summarise(results)).splitlines()[2]
    assert all_row.startswith("| all |") and all_row.endswith("| 7.5 |")


def test_evaluation_summary_has_a_block_per_body_region_when_regions_are_recorded():
    from vitiseg.evaluation.evaluate import CaseResult, case_rows, markdown_table, summarise
    from vitiseg.metrics.segmentation import score_masks

    truth = np.zeros((10, 10), bool)
    truth[2:8, 2:8] = True
    miss = np.zeros((10, 10), bool)

    def result(case_id, region, prediction):
        scores = score_masks(prediction, truth)
        return CaseResult(
            case_id, case_id, scores, None, None, 0.0, "ita_tan", 20.0, region=region
        )

    results = [result("f1", "face", truth), result("h1", "hands", miss), result("x", "", truth)]
    summary = summarise(results)
    assert set(summary["by_region"]) == {"face", "hands", "not recorded"}
    assert summary["by_region"]["hands"]["lesion"]["dice"] == 0.0
    assert summary["by_region"]["face"]["lesion"]["dice"] == 1.0
    table = markdown_table(summary)
    assert "| region hands | 1 (1) | 0.000" in table and "| region face | 1 (1) | 1.000" in table
    assert [row["region"] for row in case_rows(results)] == ["face", "hands", ""]
    # One region (or none recorded) adds nothing beyond the overall mean.
    assert summarise(results[:1])["by_region"] == {}


def test_evaluation_summary_compares_flagged_with_unflagged_cases():
    from vitiseg.evaluation.evaluate import CaseResult, markdown_table, summarise
    from vitiseg.metrics.segmentation import score_masks

    truth = np.zeros((20, 20), bool)
    truth[5:15, 5:15] = True
    half = truth.copy()
    half[5:10] = False  # Dice 2/3
    results = [
        CaseResult(
            f"c{i}", f"p{i}", score_masks(pred, truth), None, None, 0.1, "ita_tan", 20.0, flags
        )
        for i, (pred, flags) in enumerate(
            [(truth, ()), (truth, ()), (half, ("light_skin",)), (~truth, ("light_skin", "blur"))]
        )
    ]
    summary = summarise(results)
    assert set(summary["by_quality_flag"]) == {"light_skin", "blur"}
    light = summary["by_quality_flag"]["light_skin"]
    assert light["flagged"]["n_cases"] == 2 and light["not_flagged"]["n_cases"] == 2
    assert light["flagged"]["lesion"]["dice"] == pytest.approx((2 / 3 + 0) / 2)
    assert light["not_flagged"]["lesion"]["dice"] == pytest.approx(1.0)
    assert summary["by_quality_flag"]["blur"]["flagged"]["n_cases"] == 1
    table = markdown_table(summary)
    assert (
        "| flag light_skin | 2 (2) | 0.333" in table and "| no light_skin | 2 (2) | 1.000" in table
    )
    assert summary["cases"][2]["quality_flags"] == ["light_skin"]
    assert "affected-fraction MAE, pp |" in table.splitlines()[0]
    assert "| – |" in table  # no affected-fraction truth here: shown as missing, not as 0


def _cross_validate_module():
    import importlib.util

    path = Path(__file__).parents[1] / "scripts" / "cross_validate.py"
    spec = importlib.util.spec_from_file_location("cross_validate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pooled_fold_summaries_weigh_every_case_and_join_repeated_photos(tmp_path):
    pool_summaries = _cross_validate_module().pool_summaries

    def case(case_id, patient, dice, truth_px=100):
        lesion = {"dice": dice, "truth_px": truth_px} if dice is not None else {}
        return {"case_id": case_id, "patient_id": patient, "lesion": lesion}

    def photo(ids, annotators, model):
        return {"case_ids": ids, "annotator_dice": annotators, "model_dice": model}

    fold0 = {
        "cases": [case("a1", "a", 0.8), case("a2", "a", 0.6), case("b1", "b", 0.1)],
        "annotator_agreement": {"lesion": {"per_photo": [photo(["a1", "a2"], 0.9, 0.7)]}},
    }
    # d: not annotated; e: annotated without vitiligo, predicted empty (Dice 1 by policy)
    fold1 = {"cases": [case("c1", "c", 0.5), case("d1", "d", None), case("e1", "e", 1.0, 0)]}
    pooled = pool_summaries({"f0": fold0, "f1": fold1})
    mean = pooled["mean"]
    assert (mean["n_cases"], mean["n_patients"]) == (6, 5)
    assert [(fold["summary"], fold["n_cases"]) for fold in pooled["folds"]] == [
        ("f0", 3),
        ("f1", 3),
    ]
    assert mean["lesion"]["dice"] == pytest.approx((0.8 + 0.6 + 0.1 + 0.5 + 1.0) / 5)
    assert mean["lesion_nonempty"]["dice"] == pytest.approx((0.8 + 0.6 + 0.1 + 0.5) / 4)
    low, high = mean["ci95_by_patient"]["lesion_nonempty_dice"]
    assert low < mean["lesion_nonempty"]["dice"] < high
    block = pooled["annotator_agreement"]["lesion"]
    assert (block["photos"], block["cases"]) == (1, 2)
    assert block["model_minus_annotator"] == pytest.approx(-0.2)
    with pytest.raises(ValueError, match="case 'c1' is also in f1"):
        pool_summaries({"f1": fold1, "f2": {"cases": [case("c1", "c", 0.5)]}})


def test_a_fold_run_later_joins_an_earlier_pool_as_if_pooled_together():
    pool_summaries = _cross_validate_module().pool_summaries

    def case(case_id, patient, dice):
        lesion = {"dice": dice, "truth_px": 100, "hd95_px": 3.0}
        return {"case_id": case_id, "patient_id": patient, "lesion": lesion}

    fold0 = {"cases": [case("a1", "a", 0.8), case("b1", "b", 0.2)]}
    fold1 = {"cases": [case("c1", "c", 0.5), case("c2", "c", 0.7)]}
    fold2 = {"cases": [case("d1", "d", 0.4), case("e1", "e", 0.9)]}
    at_once = pool_summaries({"f0": fold0, "f1": fold1, "f2": fold2})
    later = pool_summaries({"f2": fold2}, earlier=pool_summaries({"f0": fold0, "f1": fold1}))

    assert later["mean"] == at_once["mean"]
    assert [fold["summary"] for fold in later["folds"]] == ["f0", "f1", "f2"]
    assert later["cases"][0] == {
        "case_id": "a1",
        "patient_id": "a",
        "lesion": {"dice": 0.8, "truth_px": 100},
    }
    with pytest.raises(ValueError, match="case 'c1' is also in the earlier pool"):
        pool_summaries({"f1": fold1}, earlier=at_once)

    # A pool that kept no cases (session 77 and earlier) joins by its means: exact for the
    # mean, but with no case-level values there is no patient-bootstrap interval.
    legacy = {k: v for k, v in pool_summaries({"f0": fold0, "f1": fold1}).items() if k != "cases"}
    joined = pool_summaries({"f2": fold2}, earlier=legacy)
    assert joined["mean"]["lesion_nonempty"]["dice"] == pytest.approx(
        at_once["mean"]["lesion_nonempty"]["dice"]
    )
    assert (joined["mean"]["n_cases"], joined["mean"]["n_patients"]) == (6, 5)
    assert joined["mean"]["ci95_by_patient"]["lesion_nonempty_dice"] is None
    assert "cases" not in joined
    assert len(joined["folds"]) == 3


def test_train_step_benchmark_times_each_layout_and_refuses_an_unknown_mode(tiny_model_dir):
    script = Path(__file__).resolve().parents[1] / "scripts" / "train_step_benchmark.py"
    base = [sys.executable, str(script), "--checkpoint", str(tiny_model_dir), "--threads", "1"]
    small = ["--batch-size", "2", "--crop", "64", "--steps", "1"]
    done = subprocess.run(
        [*base, *small, "--modes", "channels_last,nchw"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    timed = [line for line in done.stdout.splitlines() if "s per step" in line]
    assert [line.split(":")[0].strip() for line in timed] == ["channels_last", "nchw"]
    refused = subprocess.run([*base, "--modes", "nhwc"], capture_output=True, text=True)
    assert refused.returncode != 0 and "unknown mode(s) nhwc" in refused.stderr
