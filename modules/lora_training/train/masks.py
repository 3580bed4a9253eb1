"""Loss masks at latent size (kohya's masked loss).

A mask image (white = learn, black = ignore, grey = partial weight) gets exactly the
geometry of its training image - the same cover-resize and centre crop to the item's
target size as `dataset.load_pixels` - then is averaged down to the latent grid (area
interpolation, factor 8). The latent cache stores it with the image's latent distribution.
"""
from __future__ import annotations

from typing import Any

from modules.lora_training.train.dataset import Item, _center_crop_geometry

LATENT_FACTOR = 8


def load_mask(item: Item):
    """(1, H/8, W/8) float tensor in [0, 1] for an item with a mask."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from core.media import load_image

    im = load_image(item.mask, "L")
    th, tw = item.target_hw
    if im.size != (tw, th):
        scale, top, left = _center_crop_geometry(im.width, im.height, tw, th)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BILINEAR)
        im = im.crop((left, top, left + tw, top + th))
    arr = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)[None, None]
    small = F.interpolate(arr, size=(th // LATENT_FACTOR, tw // LATENT_FACTOR), mode="area")
    return small[0].clamp(0.0, 1.0).contiguous()


def batch_mask(items: list, latent_stats: dict, latent_shape) -> Any:
    """(B, 1, h, w) mask of a batch (ones for an item without a mask), or None if none has one."""
    import torch

    if not any(it.mask for it in items):
        return None
    out = []
    for it in items:
        if not it.mask:
            out.append(torch.ones((1, *latent_shape[-2:])))
            continue
        cached = latent_stats.get(it.path, {}).get("mask")
        out.append(cached if cached is not None else load_mask(it))
    return torch.stack(out)
