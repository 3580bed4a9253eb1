"""RIFE IFNet (Practical-RIFE 4.x family), our own code, state-dict compatible.

Two published layouts are supported, both with an arbitrary timestep:

* ``"4.6"``  - four IFBlocks (192/128/96/64 channels), no feature encoder, the mask is
  accumulated over the blocks, scale list ``[8, 4, 2, 1]``. (4.0-4.3 use plain conv
  blocks and 4.5 a 20-channel lastconv: different keys/shapes, refused by the loader.)
* ``"4.25"`` - a small feature encoder (``encode.cnn0..cnn3``) and five IFBlocks
  (192/128/96/64/32), each block also carries an 8-channel feature map to the next; the
  mask is replaced (not accumulated); scale list ``[16, 8, 4, 2, 1]``. 4.25 and 4.26 share
  this layout (and Practical-RIFE's current ``train_log`` code, whose encoder is 16 wide).

Parameter names follow the published modules exactly (``block0.conv0.0.0.weight``,
``block0.convblock.3.beta``, ``block0.lastconv.0.weight``, ``encode.cnn3.bias``), so a
``flownet.pkl`` (after stripping ``module.``) loads with ``strict=True``. Channel widths are
configurable so tests can run tiny real networks through the same code.

Differences from the published forward, none changing fp32 results:
* ``warp`` always samples in float32 (grid and input), so fp16 inference does not lose
  sub-pixel precision in the normalised grid at 1080p/4K;
* the encoder output of a frame can be passed in (``feats``), so a frame shared by two
  consecutive pairs (or many timesteps of one pair) is encoded once;
* block inputs are resized part by part before being concatenated at low resolution,
  and the features are not warped after the last level (nothing reads them);
* several timesteps of one pair run as one batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

VARIANTS = ("4.6", "4.25")


@dataclass(frozen=True)
class IFNetConfig:
    variant: str = "4.25"
    block_channels: tuple[int, ...] = (192, 128, 96, 64, 32)
    head_hidden: int = 16  # encoder width (4.25 only)
    head_out: int = 4  # encoder output channels per frame (4.25: 4, train_log HEAD: 16)

    @property
    def has_head(self) -> bool:
        return self.variant == "4.25"

    @property
    def block_out(self) -> int:
        """Channels after PixelShuffle: 4 flow + 1 mask (+1 unused in 4.6 / +8 features in 4.25)."""
        return 13 if self.has_head else 6

    @property
    def feat_channels(self) -> int:
        return self.block_out - 5 if self.has_head else 0

    def base_scales(self) -> list[float]:
        n = len(self.block_channels)
        return [float(2 ** (n - 1 - i)) for i in range(n)]

    def multiple(self, scale: float = 1.0) -> int:
        """Input sides must be a multiple of this: block0 sees H / (max_scale / scale) / 4."""
        base = int(4 * 2 ** (len(self.block_channels) - 1))
        return max(base, int(round(base / scale)))

    def in_channels(self, index: int) -> int:
        enc = 2 * self.head_out if self.has_head else 0
        if index == 0:
            return 3 + 3 + 1 + enc  # img0, img1, timestep (+ both encodings)
        # warped img0/img1, timestep, mask, flow (+ warped encodings + carried features)
        return 3 + 3 + 1 + 1 + 4 + enc + self.feat_channels

    @staticmethod
    def full(variant: str) -> "IFNetConfig":
        if variant == "4.6":
            return IFNetConfig("4.6", (192, 128, 96, 64))
        if variant == "4.25":
            return IFNetConfig("4.25", (192, 128, 96, 64, 32), 16, 4)
        raise ValueError(variant)


_GRIDS: dict[tuple, torch.Tensor] = {}


def flow_grid(flow: torch.Tensor) -> torch.Tensor:
    """The float32 sampling grid (N,H,W,2) of a (N,2,H,W) flow in pixels (RIFE's warplayer).

    Built once per flow and shared by everything that moves with it (image and features).
    """
    _, _, h, w = flow.shape
    key = (str(flow.device), h, w)
    base = _GRIDS.get(key)
    if base is None:
        xs = torch.linspace(-1.0, 1.0, w, device=flow.device).view(1, 1, 1, w).expand(1, 1, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=flow.device).view(1, 1, h, 1).expand(1, 1, h, w)
        base = torch.cat([xs, ys], 1)
        if len(_GRIDS) > 16:  # many resolutions in one process: keep the cache small
            _GRIDS.clear()
        _GRIDS[key] = base
    flow = flow.float()
    norm = torch.cat([flow[:, 0:1] / ((w - 1.0) / 2.0), flow[:, 1:2] / ((h - 1.0) / 2.0)], 1)
    return (base + norm).permute(0, 2, 3, 1)


def sample(img: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear, border-padded sampling in float32 whatever `img`'s dtype (see module doc)."""
    out = F.grid_sample(img.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(img.dtype)


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp `img` by `flow` (pixels), like RIFE's ``warplayer.warp``."""
    return sample(img, flow_grid(flow))


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), nn.LeakyReLU(0.2, True))


class ResConv(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, c, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    """Estimates a flow/mask (and features) update at 1/scale resolution."""

    def __init__(self, cin: int, c: int, out: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(cin, c // 2, 2), _conv(c // 2, c, 2))
        self.convblock = nn.Sequential(*[ResConv(c) for _ in range(8)])
        # ConvTranspose to 4*out channels then PixelShuffle(2): the published layout
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * out, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, parts: list[torch.Tensor], flow: torch.Tensor | None,
                scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """`parts` are the published block's input channels in order, at full resolution;
        (B,1,1,1) entries (the timestep) are constant maps. Returns (flow in pixels, rest).

        Same numbers as "cat, then resize": bilinear resizing is per channel, so each part
        is resized on its own and only the small tensors are concatenated (the published
        full-resolution cat of ~25 channels was a quarter of the CPU time at 720p). A
        resize by 1 is the identity and is skipped.
        """
        def down(x: torch.Tensor) -> torch.Tensor:
            return x if scale == 1 else F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear",
                                                      align_corners=False)

        full = next(p for p in parts if p.shape[-1] > 1)
        small = [down(p) if p.shape[-1] > 1 else p for p in parts]
        h, w = next(p for p in small if p.shape[-1] > 1).shape[-2:]
        xs = [p.expand(full.shape[0], -1, h, w) if p.shape[-1] == 1 else p for p in small]
        if flow is not None:
            xs.append(down(flow) * (1.0 / scale))
        tmp = self.lastconv(self.convblock(self.conv0(torch.cat(xs, 1))))
        if scale != 1:
            tmp = F.interpolate(tmp, scale_factor=scale, mode="bilinear", align_corners=False)
        return tmp[:, :4] * scale, tmp[:, 4:]


class Head(nn.Module):
    """The 4.25 feature encoder: a full-resolution `head_out`-channel map per frame."""

    def __init__(self, hidden: int, out: int) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, hidden, 3, 2, 1)
        self.cnn1 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn2 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(hidden, out, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


class IFNet(nn.Module):
    def __init__(self, config: IFNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or IFNetConfig.full("4.25")
        for i, c in enumerate(cfg.block_channels):
            self.add_module(f"block{i}", IFBlock(cfg.in_channels(i), c, cfg.block_out))
        if cfg.has_head:
            self.encode = Head(cfg.head_hidden, cfg.head_out)

    @property
    def blocks(self) -> list[IFBlock]:
        return [getattr(self, f"block{i}") for i in range(len(self.config.block_channels))]

    def encode_frame(self, img: torch.Tensor) -> torch.Tensor | None:
        """Encoder features of a (N,3,H,W) frame, or None for variants without an encoder."""
        return self.encode(img[:, :3]) if self.config.has_head else None

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep: float | torch.Tensor = 0.5,
                scale: float = 1.0, feats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Interpolate between (1|B,3,H,W) frames; `timestep` a float or a (B,1,1,1) tensor.

        H and W must be multiples of `config.multiple(scale)`. Returns (B,3,H,W), unclamped.
        """
        batch = timestep.shape[0] if torch.is_tensor(timestep) else max(img0.shape[0], img1.shape[0])
        img0, img1 = img0[:, :3].expand(batch, -1, -1, -1), img1[:, :3].expand(batch, -1, -1, -1)
        if torch.is_tensor(timestep):
            t = timestep.to(img0.dtype).reshape(batch, 1, 1, 1)
        else:
            t = img0.new_full((batch, 1, 1, 1), float(timestep))
        scales = [s / scale for s in self.config.base_scales()]
        head = self.config.has_head
        if head:
            f0, f1 = feats if feats is not None else (self.encode_frame(img0), self.encode_frame(img1))
            f0, f1 = f0.expand(batch, -1, -1, -1), f1.expand(batch, -1, -1, -1)
        flow = mask = feat = None
        warped0, warped1 = img0, img1
        for i, block in enumerate(self.blocks):
            if flow is None:
                parts = [img0, img1, f0, f1, t] if head else [img0, img1, t]
                flow, rest = block(parts, None, scales[i])
                mask = rest[:, :1]
            else:
                if head:
                    parts = [warped0, warped1, wf0, wf1, t, mask, feat]
                else:
                    parts = [warped0, warped1, t, mask]
                delta, rest = block(parts, flow, scales[i])
                flow = flow + delta
                # 4.25 replaces the mask at each level, 4.6 accumulates it
                mask = rest[:, :1] if head else mask + rest[:, :1]
            g0, g1 = flow_grid(flow[:, :2]), flow_grid(flow[:, 2:4])
            warped0, warped1 = sample(img0, g0), sample(img1, g1)
            if head and i < len(self.blocks) - 1:  # the last level needs no warped features
                feat = rest[:, 1:]
                wf0, wf1 = sample(f0, g0), sample(f1, g1)
        m = torch.sigmoid(mask)
        return warped0 * m + warped1 * (1 - m)
