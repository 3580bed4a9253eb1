"""Fast feed-forward style network (Johnson et al. 2016), our own code in the layout of
pytorch/examples `fast_neural_style/neural_style/transformer_net.py`, so the `.pth`
files that repository publishes (candy, mosaic, rain_princess, udnie) load as they are.

Their network takes RGB in [0, 255] and outputs [0, 255]; `stylize` wraps that for
[0, 1] tensors. Files saved by old PyTorch versions hold InstanceNorm `running_mean` /
`running_var` keys, which the examples' own script deletes before loading: so do we.
"""
from __future__ import annotations

import re

import torch
from torch import nn
from torch.nn import functional as F


class ConvLayer(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_ch, out_ch, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, 1)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3, 1)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class UpsampleConvLayer(nn.Module):
    """Nearest upsample then conv: avoids the checkerboard of transposed convolutions."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, upsample: int | None = None) -> None:
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_ch, out_ch, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class TransformerNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvLayer(3, 32, 9, 1)
        self.in1 = nn.InstanceNorm2d(32, affine=True)
        self.conv2 = ConvLayer(32, 64, 3, 2)
        self.in2 = nn.InstanceNorm2d(64, affine=True)
        self.conv3 = ConvLayer(64, 128, 3, 2)
        self.in3 = nn.InstanceNorm2d(128, affine=True)
        self.res1 = ResidualBlock(128)
        self.res2 = ResidualBlock(128)
        self.res3 = ResidualBlock(128)
        self.res4 = ResidualBlock(128)
        self.res5 = ResidualBlock(128)
        self.deconv1 = UpsampleConvLayer(128, 64, 3, 1, upsample=2)
        self.in4 = nn.InstanceNorm2d(64, affine=True)
        self.deconv2 = UpsampleConvLayer(64, 32, 3, 1, upsample=2)
        self.in5 = nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, 9, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x`: (N,3,H,W) RGB in [0,255]; output in about [0,255] (not clamped, as upstream)."""
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


_OLD_RUNNING = re.compile(r"in\d+\.running_(mean|var)$")


def clean_state_dict(state: dict) -> dict[str, torch.Tensor]:
    """Drop the old InstanceNorm running stats (as upstream does) and a DataParallel prefix."""
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    out = {}
    for k, v in state.items():
        k = k[7:] if k.startswith("module.") else k
        if _OLD_RUNNING.search(k) or k.endswith("num_batches_tracked"):
            continue
        out[k] = v
    return out


def load_transformer_net(state: dict) -> TransformerNet:
    """A TransformerNet in eval mode with `state` (pytorch/examples layout) loaded strictly."""
    net = TransformerNet()
    net.load_state_dict(clean_state_dict(state), strict=True)
    return net.eval()


# the smallest side the network runs at: after two stride-2 convs every reflection pad
# (4 px at full size, 1 px at 1/4) needs a wider input, or torch raises a padding error
MIN_SIDE = 32


def pad_multiple(x: torch.Tensor, multiple: int = 4) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad H, W up to a multiple of 4 (so the two stride-2 stages round-trip exactly) and to at
    least MIN_SIDE (a 1x1 image or a 4 px strip), reflecting where the image is wide enough."""
    h, w = x.shape[-2:]
    ph, pw = max((-h) % multiple, MIN_SIDE - h), max((-w) % multiple, MIN_SIDE - w)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
    return x, (h, w)


def stylize(net: nn.Module, x01: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) in [0,1] -> stylised (N,3,H,W) in [0,1], any H, W."""
    xp, (h, w) = pad_multiple(x01)
    y = net(xp * 255.0)[..., :h, :w]
    return (y / 255.0).clamp(0, 1)
