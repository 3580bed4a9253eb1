"""Applying a fast style network to images, folders and videos.

Pure engine: frames in, frames out. `stylize_image` keeps an alpha channel (the network
sees RGB, the alpha is put back), can cap the working size (`max_side`, the result is
brought back to the source size), can keep the original colours, and can blend with the
source (`strength` < 1). The whole image goes through the network at once: TransformerNet
uses instance normalisation, whose statistics are global, so tiles would not match.
Its memory therefore grows with the pixels: `work_bytes` is the estimate the job checks
against the core memory budget before loading a file. Images smaller than the network's
reflection padding allows (a 1x1 image, a 4 px strip) work too (see `stylize`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from modules.style_transfer.imageops import fit_size, keep_colors, pil_to_tensor, resize_tensor, tensor_to_array
from modules.style_transfer.transformer_net import MIN_SIDE, stylize


# peak bytes per network-input pixel, measured (RSS) on CPU fp32 at 512x512: 1.04-1.19 KB;
# rounded up (see docs/RELIABILITY.md)
BYTES_PER_PX = 1200


@dataclass
class ApplySettings:
    max_side: int | None = None  # network input's longer side (None = source size)
    original_colors: bool = False
    color_space: str = "ycbcr"
    strength: float = 1.0  # 1 = fully stylised, 0 = the source


def network_size(w: int, h: int, s: ApplySettings) -> tuple[int, int]:
    """The size the network runs at for a w x h source."""
    return fit_size(w, h, s.max_side) if s.max_side and max(w, h) > s.max_side else (w, h)


def work_bytes(w: int, h: int, s: ApplySettings) -> float:
    """Peak memory of one `stylize_image` on a w x h source: network activations at the network
    size (padded to MIN_SIDE) plus the float source and result at full size."""
    nw, nh = network_size(w, h, s)
    return float(max(nw, MIN_SIDE) * max(nh, MIN_SIDE) * BYTES_PER_PX + w * h * 3 * 4 * 4)


@torch.inference_mode()
def stylize_tensor(net: torch.nn.Module, x: torch.Tensor, s: ApplySettings,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """(1,3,H,W) in [0,1] -> stylised (1,3,H,W) in [0,1] on CPU, same size as `x`."""
    h, w = x.shape[-2:]
    inp = x
    if s.max_side and max(h, w) > s.max_side:
        inp = resize_tensor(x, network_size(w, h, s))
    inp = inp.to(device)
    y = stylize(net, inp).float().cpu()
    if y.shape[-2:] != (h, w):
        y = resize_tensor(y, (w, h)).clamp(0, 1)
    if s.original_colors:
        y = keep_colors(y, x, s.color_space)
    if s.strength < 1.0:
        y = s.strength * y + (1.0 - s.strength) * x
    return y


def stylize_image(net: torch.nn.Module, img: Image.Image, s: ApplySettings,
                  device: str | torch.device = "cpu") -> Image.Image:
    """PIL in (any mode with or without alpha) -> stylised RGB or RGBA PIL out."""
    alpha = img.getchannel("A") if img.mode in ("RGBA", "LA", "PA") else None
    out = Image.fromarray(tensor_to_array(stylize_tensor(net, pil_to_tensor(img.convert("RGB")), s, device)), "RGB")
    if alpha is not None:
        out.putalpha(alpha)
    return out


def stylize_frame(net: torch.nn.Module, frame: np.ndarray, s: ApplySettings,
                  device: str | torch.device = "cpu") -> np.ndarray:
    """HxWx3 uint8 RGB video frame -> stylised HxWx3 uint8."""
    x = torch.from_numpy(np.ascontiguousarray(frame[..., :3])).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    return tensor_to_array(stylize_tensor(net, x, s, device))
