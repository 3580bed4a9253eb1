"""Test material for the style module: random weights in the published layouts, small images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from modules.style_transfer.layers import VGG19_CFG


def vgg19_state_dict(seed: int = 0, with_classifier: bool = True, prefix: str = "features.") -> dict:
    """Random VGG19 weights keyed exactly like torchvision's vgg19 (He init keeps deep
    activations alive, as trained weights would). The classifier tensors are small stand-ins
    with the real key names: only their presence matters to the loader."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    idx, in_ch = 0, 3
    for v in VGG19_CFG:
        if v == "M":
            idx += 1
            continue
        std = (2.0 / (in_ch * 9)) ** 0.5
        sd[f"{prefix}{idx}.weight"] = torch.randn(int(v), in_ch, 3, 3, generator=g) * std
        sd[f"{prefix}{idx}.bias"] = torch.randn(int(v), generator=g) * 0.01
        idx, in_ch = idx + 2, int(v)
    if with_classifier:
        for i in (0, 3, 6):
            sd[f"classifier.{i}.weight"] = torch.zeros(4, 4)
            sd[f"classifier.{i}.bias"] = torch.zeros(4)
    return sd


def pattern_image(w: int, h: int, seed: int, mode: str = "RGB") -> Image.Image:
    """A structured image (gradient, shapes, stripes): something for VGG features to see."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * rng.uniform(0.3, 1.0, 3)
    img = Image.fromarray((base * 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 4)), int(rng.integers(0, h - 4))
        x1, y1 = x0 + int(rng.integers(4, w // 2 + 5)), y0 + int(rng.integers(4, h // 2 + 5))
        d.ellipse([x0, y0, x1, y1], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    if seed % 2:
        for x in range(0, w, 6):
            d.line([x, 0, x, h], fill=(255, 255, 255), width=2)
    if mode == "RGBA":
        img = img.convert("RGBA")
        alpha = Image.fromarray((np.clip(xx / w, 0, 1) * 255).astype(np.uint8), "L")
        img.putalpha(alpha)
    return img


def save_vgg(folder: Path, name: str = "vgg19-dcbb9e9d.pth", seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    torch.save(vgg19_state_dict(seed), path)
    return path


class StopAfter:
    """A `should_stop` that turns True after `n` calls (a Stop pressed mid-run)."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls > self.n
