"""Batched augmentations: identity when they should be, the jitter formula is the sequential one."""
from __future__ import annotations

import torch

from modules.image_classifier.augment import center_crop, color_jitter, eval_batch, random_resized_crop, to_float


def test_full_crop_without_flip_is_identity():
    x = torch.rand(4, 3, 20, 20)
    y = random_resized_crop(x, 20, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=False)
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_crops_stay_inside_and_vary():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32).repeat(8, 1, 1, 1)
    gen = torch.Generator().manual_seed(0)
    y = random_resized_crop(x, 16, scale=(0.3, 0.6), generator=gen)
    assert y.shape == (16, 3, 16, 16)
    assert y.min() >= x.min() and y.max() <= x.max()
    assert len({round(float(v), 2) for v in y[:, 0].mean(dim=(1, 2))}) > 8  # not one crop repeated


def test_color_jitter_matches_sequential_definition():
    x = torch.rand(6, 3, 8, 8)
    s = 0.4
    f = (1 + (torch.rand(3, 6, generator=torch.Generator().manual_seed(3)) * 2 - 1) * s).view(3, 6, 1, 1, 1)
    b, c, sat = f
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    y = x * b
    m = (y * w).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    y = (y - m) * c + m
    g = (y * w).sum(1, keepdim=True)
    y = ((y - g) * sat + g).clamp(0, 1)
    torch.testing.assert_close(color_jitter(x, s, torch.Generator().manual_seed(3)), y, atol=1e-5, rtol=0)
    assert color_jitter(x, 0.0) is x


def test_eval_batch_is_center_crop_normalised():
    u8 = torch.randint(0, 256, (2, 10, 10, 3), dtype=torch.uint8)
    out = eval_batch(u8, 6, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
    ref = (center_crop(to_float(u8), 6) - 0.5) / 0.25
    torch.testing.assert_close(out, ref)
    assert out.shape == (2, 3, 6, 6)
