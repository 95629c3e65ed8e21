"""Masked-image pretraining: the mask, the loss, the exported encoder, resume."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.models import resnet18

from vitiseg.io.atomic import write_tensors_atomic
from vitiseg.models.unet import build_model
from vitiseg.training.masked_pretraining import (
    PretrainSettings,
    block_mask,
    encoder_state_dict,
    masked_l1,
    pretrain,
)


def test_block_mask_blanks_whole_blocks_at_about_the_ratio():
    generator = torch.Generator().manual_seed(0)
    mask = block_mask(64, 70, 50, block=8, ratio=0.3, generator=generator)
    assert mask.shape == (64, 1, 70, 50) and mask.dtype == torch.bool
    # Every 8x8 block (the last ones cut by the border) is all blanked or all kept.
    for top in range(0, 70, 8):
        for left in range(0, 50, 8):
            block = mask[:, :, top : top + 8, left : left + 8].flatten(1)
            assert torch.equal(block.all(dim=1), block.any(dim=1))
    share = mask[:, :, :64, :48].float().mean().item()  # whole blocks only
    assert 0.25 < share < 0.35


@pytest.mark.parametrize(("block", "ratio"), [(0, 0.5), (8, 0.0), (8, 1.0)])
def test_block_mask_refuses_bad_settings(block, ratio):
    with pytest.raises(ValueError, match="block must be"):
        block_mask(1, 8, 8, block, ratio, torch.Generator())


def test_masked_l1_counts_blanked_pixels_only():
    target = torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[..., :2, :] = True
    prediction = torch.zeros(1, 3, 4, 4)
    prediction[..., 2:, :] = 5.0  # wrong where nothing was blanked: not counted
    assert masked_l1(prediction, target, mask).item() == 0.0
    prediction[..., :2, :] = 2.0
    assert masked_l1(prediction, target, mask).item() == pytest.approx(2.0)
    assert masked_l1(prediction, target, torch.zeros_like(mask)).item() == 0.0


def test_exported_encoder_is_a_torchvision_resnet_and_loads_back(tmp_path):
    model = build_model("resnet_unet", encoder="resnet18", out_channels=3)
    state = encoder_state_dict(model)
    missing, unexpected = resnet18(weights=None).load_state_dict(state, strict=False)
    assert unexpected == [] and all(key.startswith("fc.") for key in missing)
    path = tmp_path / "encoder.pt"
    write_tensors_atomic(path, state)
    loaded = build_model("resnet_unet", encoder="resnet18", encoder_weights=str(path))
    assert torch.equal(loaded.stem[0].weight, model.stem[0].weight)
    assert torch.equal(loaded.layers[3][1].bn2.running_var, model.layers[3][1].bn2.running_var)
    fresh = build_model("resnet_unet", encoder="resnet18")
    assert not torch.equal(fresh.stem[0].weight, model.stem[0].weight)


def test_encoder_export_refuses_a_model_without_resnet_encoder():
    with pytest.raises(ValueError, match="no ResNet encoder"):
        encoder_state_dict(build_model("compact_unet"))


class _Noise(Dataset):
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(index))}


def test_pretrain_writes_the_encoder_and_resumes_where_it_stopped(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet_unet", encoder="resnet18", out_channels=3)
    start = model.stem[0].weight.detach().clone()
    dataset = _Noise()
    loader = DataLoader(dataset, batch_size=2)
    settings = PretrainSettings(max_steps=3, warmup_steps=1, block=16, checkpoint_every=1)
    result = pretrain(model, loader, settings, tmp_path)
    assert result["steps"] == 3
    assert dataset.epochs == [0, 1]  # two batches a pass: a new pass after step 2
    assert not torch.equal(model.stem[0].weight, start)  # it trained
    encoder = torch.load(tmp_path / "encoder.pt", weights_only=True)
    assert torch.equal(encoder["conv1.weight"], model.stem[0].weight)

    resumed = build_model("resnet_unet", encoder="resnet18", out_channels=3)
    longer = PretrainSettings(max_steps=4, warmup_steps=1, block=16, checkpoint_every=1)
    assert pretrain(resumed, DataLoader(_Noise(), batch_size=2), longer, tmp_path)["steps"] == 4
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["step"] == 4
