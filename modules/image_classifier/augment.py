"""Batched tensor augmentations and normalisation (no torchvision needed).

Everything works on a whole batch on the training device: one `affine_grid` +
`grid_sample` does random-resized-crop, horizontal/vertical flips and resizing in one
pass, and colour jitter is a few vectorised ops. Input is the cached uint8 batch
[B, base, base, 3]; output is the normalised float batch [B, 3, size, size].
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def to_float(batch_u8: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1]."""
    return batch_u8.permute(0, 3, 1, 2).float().div_(255.0)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre crop NCHW to size x size (what evaluation and prediction see)."""
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def normalize(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def random_resized_crop(x: torch.Tensor, size: int, scale: tuple[float, float] = (0.6, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), hflip: bool = True, vflip: bool = False,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-sample crop of a random area fraction and aspect ratio, resized to size x size,
    with random flips, all in one grid_sample."""
    b, dev = x.shape[0], x.device
    rand = lambda *s: torch.rand(*s, generator=generator).to(dev)  # noqa: E731 - CPU RNG: reproducible
    area = scale[0] + (scale[1] - scale[0]) * rand(b)
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * rand(b)
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)  # fractions of the full width / height
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (rand(b) * 2 - 1) * (1 - w)  # centre so the crop stays inside the image
    cy = (rand(b) * 2 - 1) * (1 - h)
    sx = torch.where(rand(b) < 0.5, -w, w) if hflip else w
    sy = torch.where(rand(b) < 0.5, -h, h) if vflip else h
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = sx, cx
    theta[:, 1, 1], theta[:, 1, 2] = sy, cy
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color_jitter(x: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, contrast and saturation factors in [1 - s, 1 + s] per sample.

    Brightness b, then contrast c around the image's mean luminance m, then saturation s
    around each pixel's luminance g, folded into one expression (3 passes over the batch
    instead of ~12): out = s*b*c*x + (1-s)*b*c*g + b*m*(1-c).
    """
    if strength <= 0:
        return x
    b_, dev = x.shape[0], x.device
    f = (1 + (torch.rand(3, b_, generator=generator) * 2 - 1) * strength).to(dev, x.dtype).view(3, b_, 1, 1, 1)
    bright, contrast, sat = f[0], f[1], f[2]
    weights = torch.tensor([0.299, 0.587, 0.114], device=dev, dtype=x.dtype).view(1, 3, 1, 1)
    gray = (x * weights).sum(dim=1, keepdim=True)
    mean = gray.mean(dim=(2, 3), keepdim=True)
    bc = bright * contrast
    out = x * (sat * bc)
    out.add_(gray * ((1 - sat) * bc)).add_(bright * mean * (1 - contrast))
    return out.clamp_(0.0, 1.0)


def train_batch(batch_u8: torch.Tensor, size: int, mean: list[float], std: list[float], augment: bool,
                crop_scale_min: float, hflip: bool, vflip: bool, jitter: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    x = to_float(batch_u8)
    if augment:
        x = random_resized_crop(x, size, (crop_scale_min, 1.0), hflip=hflip, vflip=vflip, generator=generator)
        x = color_jitter(x, jitter, generator)
    else:
        x = center_crop(x, size)
    return normalize(x, mean, std)


def eval_batch(batch_u8: torch.Tensor, size: int, mean: list[float], std: list[float]) -> torch.Tensor:
    return normalize(center_crop(to_float(batch_u8), size), mean, std)
