"""U-Nets with two per-pixel outputs, skin and depigmented skin, returning logits.

Two families, both for any input height and width (padded to a multiple of the
network stride, then cropped back):

- :class:`CompactUNet`: a plain U-Net with few channels, fast on a laptop CPU.
- :class:`ResNetUNet`: a torchvision ResNet encoder (random init or a local weights
  file; never a download) with a light U-Net decoder.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18, resnet34

from vitiseg.models.metadata import Preprocessing


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class _DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            _conv_bn_relu(in_channels, out_channels), _conv_bn_relu(out_channels, out_channels)
        )


class _UpBlock(nn.Module):
    """Upsample x2, concatenate the skip connection, two 3x3 convolutions."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convs = _DoubleConv(in_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        size = skip.shape[-2:] if skip is not None else (x.shape[-2] * 2, x.shape[-1] * 2)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.convs(x)


class _DetailPath(nn.Module):
    """Full-resolution features of the photo, added to the decoder's last output.

    The decoder's finest skip is the stem at half resolution, so specks a few pixels
    across (VASI levels 10 and 90 %) reach the head blurred; this path sees the pixels.
    The fusing convolution starts at zero, so a network fine-tuned from a model without
    the path first gives exactly that model's outputs.
    """

    def __init__(self, in_channels: int, detail_channels: int, decoder_channels: int) -> None:
        super().__init__()
        self.features = _DoubleConv(in_channels, detail_channels)
        self.fuse = nn.Sequential(
            _conv_bn_relu(decoder_channels + detail_channels, decoder_channels),
            nn.Conv2d(decoder_channels, decoder_channels, 3, padding=1),
        )
        nn.init.zeros_(self.fuse[-1].weight)
        nn.init.zeros_(self.fuse[-1].bias)

    def forward(self, image: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        return decoded + self.fuse(torch.cat([decoded, self.features(image)], dim=1))


class _RelativeColour(nn.Module):
    """Three channels that a gain on a whole colour channel does not change.

    The lesion output reads lightness, so a colour cast or a darker exposure moves it
    (docs/model_history.md, sessions 48 and 52). ``log(rgb)`` minus its mean over a window of
    ``window_px`` pixels cancels any such gain (white balance, exposure) and leaves each
    pixel's colour relative to the skin around it. Computed inside the network, so scoring,
    tiling and ONNX export need nothing new; the window is fixed in pixels (not a share of
    the photo) so the exported graph has no shape-dependent constants.
    """

    coarse = 8  # the local mean is taken on an 8x smaller copy: cheap for large windows

    def __init__(self, window_px: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        if window_px < 2 * self.coarse:
            raise ValueError(
                f"relative_colour_px={window_px}: use 0 (off) or >= {2 * self.coarse}"
            )
        self.kernel = (window_px // self.coarse) | 1  # odd, so the window is centred
        # Not saved with the weights: they restate the model folder's preprocessing.
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 1/255: a black pixel gets the log of the darkest non-zero value, not -inf.
        log_rgb = torch.log((x * self.std + self.mean).clamp(min=1 / 255))
        local = F.avg_pool2d(log_rgb, self.coarse, ceil_mode=True)
        local = F.avg_pool2d(
            local, self.kernel, stride=1, padding=self.kernel // 2, count_include_pad=False
        )
        local = F.interpolate(local, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return log_rgb - local


class _PadToStride(nn.Module):
    """Mixin-like helper: pad the input to a multiple of ``stride`` and crop logits back."""

    stride = 32

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        height, width = x.shape[-2:]
        pad_h = (-height) % self.stride
        pad_w = (-width) % self.stride
        if pad_h or pad_w:
            mode = "reflect" if height > pad_h and width > pad_w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        return x, height, width


class CompactUNet(_PadToStride):
    """Plain 5-level U-Net. ``width`` sets the first level's channels (doubling per level)."""

    def __init__(self, width: int = 16, in_channels: int = 3, out_channels: int = 2) -> None:
        super().__init__()
        channels = [width * 2**i for i in range(5)]
        self.stride = 16
        self.encoders = nn.ModuleList()
        previous = in_channels
        for channel in channels:
            self.encoders.append(_DoubleConv(previous, channel))
            previous = channel
        self.decoders = nn.ModuleList(
            _UpBlock(channels[i + 1], channels[i], channels[i]) for i in reversed(range(4))
        )
        self.head = nn.Conv2d(channels[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, height, width = self._pad(x)
        skips = []
        for index, encoder in enumerate(self.encoders):
            if index:
                x = F.max_pool2d(x, 2)
            x = encoder(x)
            skips.append(x)
        x = skips.pop()
        for decoder in self.decoders:
            x = decoder(x, skips.pop())
        return self.head(x)[..., :height, :width]


_RESNETS = {"resnet18": resnet18, "resnet34": resnet34}


def _load_encoder_weights(backbone: nn.Module, path: Path, encoder: str) -> None:
    """A local torchvision state_dict into the backbone; its classifier may be absent."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as error:
        raise ValueError(f"{path}: not a loadable {encoder} weights file ({error})") from error
    state = {key.removeprefix("module."): value for key, value in state.items()}
    missing, _ = backbone.load_state_dict(state, strict=False)
    # A file of another layout would otherwise load nothing and train from random weights.
    missing = [key for key in missing if not key.startswith("fc.")]
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} {encoder} encoder weights missing (for example "
            f"{missing[:3]}); expected a torchvision {encoder} state_dict"
        )


class ResNetUNet(_PadToStride):
    """ResNet encoder (torchvision, random init) + U-Net decoder, output at full resolution.

    ``branch_outputs`` > 0 gives the last that many outputs a decoder and head of their own
    (``branch_decoders``, ``branch_head``) beside the shared ones, so they can be trained
    with everything else frozen: the depigmented output then learns exact painted truth
    for as long as it needs without moving the skin and lesion outputs. ``skin_branch``
    does the same for the first output, skin (``skin_decoders``, ``skin_head``), so skin
    can learn from skin-only photos without moving the lesion outputs. ``detail_channels``
    > 0 adds a full-resolution path from the photo to the shared decoder's output
    (:class:`_DetailPath`). ``relative_colour_px`` > 0 gives the encoder three more input
    channels, the photo's colour relative to its surroundings (:class:`_RelativeColour`);
    fine-tuned from a model without them, their first weights start at zero.
    """

    def __init__(
        self,
        encoder: str = "resnet18",
        decoder_channels: tuple[int, ...] = (128, 64, 48, 32, 16),
        encoder_weights: str | Path | None = None,
        in_channels: int = 3,
        out_channels: int = 2,
        branch_outputs: int = 0,
        skin_branch: bool = False,
        detail_channels: int = 0,
        relative_colour_px: int = 0,
    ) -> None:
        super().__init__()
        if encoder not in _RESNETS:
            raise ValueError(f"unknown encoder {encoder!r}; choose from {sorted(_RESNETS)}")
        shared_outputs = out_channels - branch_outputs - int(skin_branch)
        if branch_outputs < 0 or shared_outputs < 1:
            raise ValueError(
                f"branch_outputs={branch_outputs} and skin_branch={skin_branch} leave "
                f"{shared_outputs} of {out_channels} outputs to the shared decoder; it needs one"
            )
        backbone = _RESNETS[encoder](weights=None)
        if encoder_weights:
            _load_encoder_weights(backbone, Path(encoder_weights), encoder)
        self.relative_colour = (
            _RelativeColour(relative_colour_px, Preprocessing.mean, Preprocessing.std)
            if relative_colour_px
            else None
        )
        encoder_inputs = in_channels + (3 if relative_colour_px else 0)
        if encoder_inputs != 3:
            pretrained = backbone.conv1.weight.detach() if encoder_weights else None
            backbone.conv1 = nn.Conv2d(encoder_inputs, 64, 7, stride=2, padding=3, bias=False)
            if pretrained is not None and in_channels == 3:
                # Keep the pretrained RGB filters; the relative inputs start silent.
                with torch.no_grad():
                    backbone.conv1.weight.zero_()
                    backbone.conv1.weight[:, :3] = pretrained
        self.stem = nn.Sequential(backbone.conv1, backbone.bn1, backbone.relu)  # /2, 64
        self.pool = backbone.maxpool
        self.layers = nn.ModuleList(
            [backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4]
        )  # /4 64, /8 128, /16 256, /32 512
        self.decoders = _resnet_decoder(decoder_channels)
        self.head = nn.Conv2d(decoder_channels[-1], shared_outputs, 3, padding=1)
        self.branch_outputs = branch_outputs
        if branch_outputs:
            self.branch_decoders = _resnet_decoder(decoder_channels)
            self.branch_head = nn.Conv2d(decoder_channels[-1], branch_outputs, 3, padding=1)
        self.skin_branch = skin_branch
        if skin_branch:
            self.skin_decoders = _resnet_decoder(decoder_channels)
            self.skin_head = nn.Conv2d(decoder_channels[-1], 1, 3, padding=1)
        self.detail = (
            _DetailPath(in_channels, detail_channels, decoder_channels[-1])
            if detail_channels
            else None
        )
        # Set by training when parts are frozen (stage 7 trains the skin decoder alone): the
        # frozen decoders' forward pass costs a fifth of a step and moves no weight.
        self.skip_frozen_outputs = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, height, width = self._pad(x)
        encoder_input = x
        if self.relative_colour is not None:
            encoder_input = torch.cat([x, self.relative_colour(x)], dim=1)
        stem = self.stem(encoder_input)
        features = [stem]
        y = self.pool(stem)
        for layer in self.layers:
            y = layer(y)
            features.append(y)
        skipped = self._skipped_groups()

        def zeros(count: int) -> torch.Tensor:
            # In the features' memory layout, as a head's output would be: the concatenated
            # logits then keep their layout, and so the loss its summation order.
            layout = (
                torch.channels_last
                if stem.is_contiguous(memory_format=torch.channels_last)
                else torch.contiguous_format
            )
            return stem.new_zeros(stem.shape[0], count, *x.shape[-2:]).contiguous(
                memory_format=layout
            )

        logits = []
        if self.skin_branch:
            logits.append(
                zeros(1)
                if "skin" in skipped
                else self.skin_head(_decode(self.skin_decoders, features))
            )
        if "shared" in skipped:
            logits.append(zeros(self.head.out_channels))
        else:
            decoded = _decode(self.decoders, features)
            if self.detail is not None:
                decoded = self.detail(x, decoded)
            logits.append(self.head(decoded))
        if self.branch_outputs:
            logits.append(
                zeros(self.branch_outputs)
                if "branch" in skipped
                else self.branch_head(_decode(self.branch_decoders, features))
            )
        return torch.cat(logits, 1)[..., :height, :width]

    def _output_groups(self) -> list[tuple[str, range, list[nn.Module | None]]]:
        """Each decoder's name, output channels and modules, in output order."""
        first = int(self.skin_branch)
        shared = self.head.out_channels
        groups: list[tuple[str, range, list[nn.Module | None]]] = []
        if self.skin_branch:
            groups.append(("skin", range(0, 1), [self.skin_decoders, self.skin_head]))
        groups.append(
            ("shared", range(first, first + shared), [self.decoders, self.head, self.detail])
        )
        if self.branch_outputs:
            channels = range(first + shared, first + shared + self.branch_outputs)
            groups.append(("branch", channels, [self.branch_decoders, self.branch_head]))
        return groups

    def _frozen_groups(self) -> set[str]:
        """Decoders that, like the encoder, have no weight left to train."""
        if _trains([self.stem, self.layers, self.relative_colour]):
            return set()  # their losses still reach the encoder
        return {name for name, _, modules in self._output_groups() if not _trains(modules)}

    def _skipped_groups(self) -> set[str]:
        # Only in training, and only when asked: inference always computes every output.
        if self.training and self.skip_frozen_outputs:
            return self._frozen_groups()
        return set()

    def frozen_outputs(self) -> tuple[int, ...]:
        """Output channels whose every weight, encoder included, is frozen: their loss can
        move nothing, so training may skip them (``skip_frozen_outputs``; zeros instead)."""
        frozen = self._frozen_groups()
        return tuple(
            channel
            for name, channels, _ in self._output_groups()
            if name in frozen
            for channel in channels
        )


def _trains(modules: list[nn.Module | None]) -> bool:
    return any(p.requires_grad for m in modules if m is not None for p in m.parameters())


def _resnet_decoder(decoder_channels: tuple[int, ...]) -> nn.ModuleList:
    skip_channels = [256, 128, 64, 64, 0]
    blocks = []
    previous = 512
    for skip, channel in zip(skip_channels, decoder_channels, strict=True):
        blocks.append(_UpBlock(previous, skip, channel))
        previous = channel
    return nn.ModuleList(blocks)


def _decode(decoders: nn.ModuleList, features: list[torch.Tensor]) -> torch.Tensor:
    """Run a decoder up the encoder's features (stem first, deepest last)."""
    skips = features[:-1]
    y = features[-1]  # deepest, /32
    for decoder in decoders:
        y = decoder(y, skips.pop() if skips else None)
    return y


def build_model(arch: str, **kwargs: object) -> nn.Module:
    """Build a network by architecture name: ``compact_unet`` or ``resnet_unet``."""
    if arch == "compact_unet":
        return CompactUNet(**kwargs)  # type: ignore[arg-type]
    if arch == "resnet_unet":
        if "decoder_channels" in kwargs:
            kwargs["decoder_channels"] = tuple(kwargs["decoder_channels"])  # type: ignore[arg-type]
        return ResNetUNet(**kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown architecture {arch!r}; choose compact_unet or resnet_unet")
