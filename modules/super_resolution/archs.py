"""Super-resolution networks, written here, state-dict compatible with the published weights.

- `RRDBNet`: ESRGAN's Residual-in-Residual Dense Block network with the parameter names of
  BasicSR / Real-ESRGAN (`conv_first`, `body.N.rdbK.convJ`, `conv_body`, `conv_upN`,
  `conv_hr`, `conv_last`). Old-ESRGAN files (`model.N...`) are renamed to these keys by
  `detect.py`, so one class runs both. Any power-of-two network scale (x1 to x8 upconv
  stages) and the pixel-unshuffle front end Real-ESRGAN uses for its x2 (and x1) models.
- `SRVGGNetCompact`: Real-ESRGAN's compact VGG-style network (realesr-animevideov3,
  realesr-general-x4v3): convs + PReLU at low resolution, one pixel shuffle, plus the
  nearest-upsampled input as a residual.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; the last one is scaled by 0.2 and added back."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.leaky_relu(self.conv1(x), 0.2)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), 0.2)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), 0.2)
        x4 = F.leaky_relu(self.conv4(torch.cat((x, x1, x2, x3), 1)), 0.2)
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN generator.

    `num_upsample` nearest-x2 + conv stages give the network scale 2**num_upsample;
    `unshuffle` (1, 2 or 4) folds the input first, so the image scale is that divided by
    `unshuffle` (Real-ESRGAN x2plus: unshuffle 2 and two upsample stages = x2).
    """

    def __init__(self, in_ch: int = 3, out_ch: int = 3, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32, num_upsample: int = 2, unshuffle: int = 1) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.unshuffle, self.num_upsample = in_ch, out_ch, unshuffle, num_upsample
        self.scale = 2 ** num_upsample // unshuffle
        self.conv_first = nn.Conv2d(in_ch * unshuffle * unshuffle, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        for i in range(1, num_upsample + 1):  # conv_up1, conv_up2, ... as in BasicSR
            self.add_module(f"conv_up{i}", nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.unshuffle > 1:
            f = self.unshuffle
            # reflect-pad to a multiple of the fold, crop after (what Real-ESRGAN does too)
            ph, pw = (-h) % f, (-w) % f
            if ph or pw:
                x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
            x = F.pixel_unshuffle(x, f)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for i in range(1, self.num_upsample + 1):
            up = getattr(self, f"conv_up{i}")
            feat = F.leaky_relu(up(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        out = self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))
        if self.unshuffle > 1:
            out = out[..., : h * self.scale, : w * self.scale]
        return out


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN compact network; `body` indices match the published files (PReLU only)."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, num_feat: int = 64, num_conv: int = 16,
                 upscale: int = 4) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.scale = in_ch, out_ch, upscale
        layers: list[nn.Module] = [nn.Conv2d(in_ch, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        layers.append(nn.Conv2d(num_feat, out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        base = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        if base.shape[1] != out.shape[1]:  # 1-channel in, 3 out (never in published files)
            base = base.mean(1, keepdim=True).expand_as(out)
        return out + base
