"""Training a fast style network (Johnson et al.) from one style image and a folder of
content images, with the perceptual losses of pytorch/examples `fast_neural_style`
(VGG feature content loss + Gram style loss, Adam), but on our VGG19.

`train_fast(...)` is the engine: it samples batches, reports the losses every step,
stylises a fixed sample for previews, and hands the network to `on_checkpoint`
periodically and once more at the end (also after a Stop), so a stopped run is a usable
network. The network stays in the pytorch/examples layout, so `.pth` files we write
load in their script too.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from PIL import Image

from modules.style_transfer.imageops import fit_size, pil_to_tensor, resize_tensor
from modules.style_transfer.transformer_net import TransformerNet, stylize
from modules.style_transfer.vgg import VGG19Features, gram_matrix

# VGG19 counterparts of the examples' VGG16 relu1_2, relu2_2, relu3_3, relu4_3.
DEFAULT_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_4", "relu4_4")


@dataclass
class FastTrainSettings:
    image_size: int = 256
    batch_size: int = 4
    steps: int = 2000
    lr: float = 1e-3
    content_weight: float = 1e5
    style_weight: float = 1e10
    tv_weight: float = 0.0
    content_layer: str = "relu2_2"
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    style_size: int | None = None  # longer side of the style image; None = as loaded
    preview_every: int = 100
    checkpoint_every: int = 500
    seed: int = 42


@dataclass
class FastTrainResult:
    net: TransformerNet
    steps_done: int
    stopped: bool
    losses: list[float] = field(default_factory=list)


def center_crop_tensor(img: Image.Image, size: int) -> torch.Tensor:
    """Resize the shorter side to `size` then centre-crop (the examples' transform), in [0,1]."""
    w, h = img.size
    s = size / min(w, h)
    t = resize_tensor(pil_to_tensor(img), (max(size, round(w * s)), max(size, round(h * s))))
    top, left = (t.shape[-2] - size) // 2, (t.shape[-1] - size) // 2
    return t[..., top:top + size, left:left + size]


def train_fast(vgg: VGG19Features, content_paths: list[Path], style: torch.Tensor, s: FastTrainSettings,
               load_image: Callable[[Path], Image.Image], device: str | torch.device = "cpu",
               net: TransformerNet | None = None,
               on_step: Callable[[int, int, dict[str, float]], None] | None = None,
               on_preview: Callable[[torch.Tensor, int], None] | None = None,
               on_checkpoint: Callable[[TransformerNet, int, bool], None] | None = None,
               should_stop: Callable[[], bool] | None = None,
               on_skip: Callable[[Path, Exception], None] | None = None) -> FastTrainResult:
    """Train (or fine-tune `net`) for `s.steps` batches; see the module doc."""
    if not content_paths:
        raise ValueError("no content images")
    device = torch.device(device)
    torch.manual_seed(s.seed)
    rng = random.Random(s.seed)
    vgg = vgg.to(device)
    net = (net or TransformerNet()).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=s.lr)
    layers = tuple(dict.fromkeys((s.content_layer,) + s.style_layers))
    if s.style_size:
        style = resize_tensor(style, fit_size(style.shape[-1], style.shape[-2], s.style_size))
    with torch.no_grad():
        sf = vgg(style.to(device), s.style_layers)
        gram_style = {n: gram_matrix(sf[n]) for n in s.style_layers}
    pool = list(content_paths)  # broken files leave the pool so they are reported once
    order: list[Path] = []
    sample = None
    for first in list(pool[:8]) if on_preview else []:  # the first readable image is the preview sample
        sample = _load_batch([first], s.image_size, load_image, on_skip, pool)
        if sample is not None:
            break
    losses: list[float] = []
    step, stopped = 0, False
    while step < s.steps:
        if should_stop is not None and should_stop():
            stopped = True
            break
        picks = []
        while len(picks) < s.batch_size:
            if not pool:
                raise ValueError("no readable content images")
            if not order:  # one shuffled pass over the folder per epoch
                order = list(pool)
                rng.shuffle(order)
            picks.append(order.pop())
        x = _load_batch(picks, s.image_size, load_image, on_skip, pool)
        if x is None:
            continue
        x = x.to(device)
        opt.zero_grad(set_to_none=True)
        y = net(x * 255.0) / 255.0
        fy, fx = vgg(y, layers), vgg(x, (s.content_layer,))
        c = F.mse_loss(fy[s.content_layer], fx[s.content_layer])
        st = sum(F.mse_loss(gram_matrix(fy[n]), gram_style[n].expand(y.shape[0], -1, -1)) for n in s.style_layers)
        tv = ((y[..., 1:, :] - y[..., :-1, :]).abs().mean() + (y[..., 1:] - y[..., :-1]).abs().mean()
              if s.tv_weight else y.new_zeros(()))
        loss = s.content_weight * c + s.style_weight * st + s.tv_weight * tv
        if not math.isfinite(loss.item()):
            raise FloatingPointError("loss is not finite; lower the learning rate or the style weight")
        loss.backward()
        opt.step()
        step += 1
        parts = {"loss": loss.item(), "content": s.content_weight * c.item(), "style": s.style_weight * float(st.detach())}
        losses.append(parts["loss"])
        if on_step is not None:
            on_step(step, s.steps, parts)
        if on_preview is not None and sample is not None and s.preview_every and step % s.preview_every == 0:
            on_preview(preview(net, sample, device), step)
        if on_checkpoint is not None and s.checkpoint_every and step % s.checkpoint_every == 0 and step < s.steps:
            on_checkpoint(net, step, False)
    net.eval()
    if on_checkpoint is not None:
        on_checkpoint(net, step, True)
    return FastTrainResult(net, step, stopped, losses)


def preview(net: TransformerNet, sample: torch.Tensor, device: torch.device) -> torch.Tensor:
    was_training = net.training
    net.eval()
    with torch.no_grad():
        out = stylize(net, sample.to(device)).cpu()
    net.train(was_training)
    return out


def _load_batch(paths: list[Path], size: int, load_image: Callable[[Path], Image.Image],
                on_skip: Callable[[Path, Exception], None] | None, pool: list[Path]) -> torch.Tensor | None:
    """Stack the readable images of `paths`; unreadable ones are reported and leave `pool`."""
    ts = []
    for p in paths:
        try:
            ts.append(center_crop_tensor(load_image(p), size))
        except Exception as exc:  # noqa: BLE001 - one broken file must not end a long training
            if p in pool:
                pool.remove(p)
                if on_skip is not None:
                    on_skip(p, exc)
    return torch.cat(ts, 0) if ts else None
