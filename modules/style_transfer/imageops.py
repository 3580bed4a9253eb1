"""Small image helpers shared by the style engines: PIL <-> tensor, resizing, colour.

`keep_colors` is the "original colours" option (Gatys et al. 2016, *Preserving Color in
Neural Artistic Style Transfer*, luminance-only transfer): the stylised image gives the
luminance, the content image gives the chrominance, in YCbCr (BT.601) or YIQ.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# Rows: Y, Cb/I, Cr/Q from RGB in [0,1]. Chroma channels are centred on 0.
_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
_YIQ = np.array([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
                np.float32)
COLOR_SPACES = {"ycbcr": _YCBCR, "yiq": _YIQ}


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL -> (1,3,H,W) float32 in [0,1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_array(t: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) or (3,H,W) in [0,1] -> HxWx3 uint8."""
    t = t.detach().float().cpu().clamp(0, 1)
    if t.dim() == 4:
        t = t[0]
    return (t.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    return Image.fromarray(tensor_to_array(t), "RGB")


def fit_size(w: int, h: int, max_side: int | None, multiple: int = 1) -> tuple[int, int]:
    """(w, h) scaled so the longer side is `max_side` (never 0), rounded to `multiple`."""
    if max_side and max(w, h) != max_side:
        s = max_side / max(w, h)
        w, h = max(1, round(w * s)), max(1, round(h * s))
    if multiple > 1:
        w, h = max(multiple, w // multiple * multiple), max(multiple, h // multiple * multiple)
    return w, h


def resize_tensor(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (N,C,H,W) to (h, w) = size[::-1]; antialiased when shrinking."""
    w, h = size
    if t.shape[-2:] == (h, w):
        return t
    shrink = h < t.shape[-2] or w < t.shape[-1]
    return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)


def to_space(rgb: torch.Tensor, space: str) -> torch.Tensor:
    m = torch.from_numpy(COLOR_SPACES[space]).to(rgb)
    return torch.einsum("ij,njhw->nihw", m, rgb)


def from_space(x: torch.Tensor, space: str) -> torch.Tensor:
    m = torch.from_numpy(np.linalg.inv(COLOR_SPACES[space])).to(x)
    return torch.einsum("ij,njhw->nihw", m, x)


def keep_colors(stylised: torch.Tensor, content: torch.Tensor, space: str = "ycbcr") -> torch.Tensor:
    """Luminance of `stylised`, chrominance of `content` (resized to match), clamped to [0,1]."""
    if space not in COLOR_SPACES:
        raise ValueError(f"colour space {space!r} not in {sorted(COLOR_SPACES)}")
    content = resize_tensor(content.to(stylised), (stylised.shape[-1], stylised.shape[-2]))
    y = to_space(stylised, space)[:, :1]
    chroma = to_space(content, space)[:, 1:]
    return from_space(torch.cat([y, chroma], 1), space).clamp(0, 1)


def match_luminance(style: torch.Tensor, content: torch.Tensor, space: str = "ycbcr") -> torch.Tensor:
    """Style image as grey luminance with content's luminance mean/std (the paper's
    'luminance-only' variant: the style's colours then cannot leak into the result)."""
    ys = to_space(style, space)[:, :1]
    yc = to_space(content, space)[:, :1]
    ys = (ys - ys.mean()) / (ys.std() + 1e-6) * yc.std() + yc.mean()
    return ys.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()
