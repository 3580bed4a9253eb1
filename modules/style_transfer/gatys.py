"""Gatys et al. neural style transfer: optimise the pixels of an image so its VGG19
features match the content image (content layers) and its Gram matrices match the
style images (style layers), plus a total-variation smoothness term.

Engine only (no UI, no job): `run_gatys(vgg, content, styles, settings, ...)` takes
tensors in [0,1] and callbacks, so the job, the CLI, the bench and tests share it.

- Several style images: their Gram targets are blended by normalised weights (same
  minimiser as summing per-image losses with those weights, at the cost of one).
- Multi-scale: `scales` > 1 runs coarse to fine (each scale doubles the size, the
  previous result upsampled as the start), which gives large outputs coherent strokes
  and is much cheaper than starting at full size. `steps` is per scale.
- L-BFGS runs one iteration per `step()` (its history persists in the optimiser state),
  so a Stop is seen within one forward/backward pass and the latest image is kept.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from modules.style_transfer.imageops import fit_size, keep_colors, match_luminance, resize_tensor
from modules.style_transfer.vgg import VGG19Features, gram_matrix

DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_CONTENT_LAYERS = ("relu4_2",)


@dataclass
class GatysSettings:
    content_layers: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None  # one per style layer, default equal
    content_weight: float = 1.0
    style_weight: float = 1e6
    tv_weight: float = 1.0
    optimizer: str = "lbfgs"  # "lbfgs" | "adam"
    lr: float | None = None  # default: 1.0 for L-BFGS, 0.02 for Adam (pixels in [0,1])
    steps: int = 300  # per scale
    size: int = 512  # longer side of the output
    scales: int = 1  # coarse-to-fine levels, each half the size of the next
    min_scale_size: int = 64
    style_scale: float = 1.0  # style image size relative to the current output size
    init: str = "content"  # "content" | "noise"
    original_colors: bool = False
    color_space: str = "ycbcr"  # "ycbcr" | "yiq"
    preview_every: int = 50
    seed: int = 0


@dataclass
class GatysResult:
    image: torch.Tensor  # (1,3,H,W) in [0,1], CPU
    steps_done: int
    total_steps: int
    stopped: bool
    losses: list[float] = field(default_factory=list)


# peak bytes per output pixel of one L-BFGS step (VGG19 activations kept for the backward,
# the optimiser history), measured (RSS) on CPU fp32 at 256x256: 2.3 KB; rounded up
BYTES_PER_PX = 2600


def work_bytes(w: int, h: int, s: GatysSettings) -> float:
    """Peak memory of a run on a w x h content image (the finest scale dominates; the style
    image is resized around the same size, times `style_scale`)."""
    fw, fh = fit_size(w, h, s.size)
    return float(fw * fh * BYTES_PER_PX * (1.0 + 0.5 * s.style_scale ** 2))


def scale_sizes(w: int, h: int, s: GatysSettings) -> list[tuple[int, int]]:
    """Output (w, h) per scale, coarsest first; scales smaller than `min_scale_size` are skipped."""
    final = fit_size(w, h, s.size)
    sizes = []
    for k in reversed(range(max(1, s.scales))):
        side = s.size / (2 ** k)
        if k and side < s.min_scale_size:
            continue
        sizes.append(fit_size(w, h, int(round(side))))
    sizes[-1] = final
    return sizes


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


class _Objective:
    """Targets at one scale and the loss of an image against them."""

    def __init__(self, vgg: VGG19Features, content: torch.Tensor, styles: list[tuple[torch.Tensor, float]],
                 s: GatysSettings) -> None:
        self.vgg, self.s = vgg, s
        self.layers = tuple(dict.fromkeys(s.content_layers + s.style_layers))
        lw = s.style_layer_weights or tuple(1.0 for _ in s.style_layers)
        if len(lw) != len(s.style_layers):
            raise ValueError("style_layer_weights needs one weight per style layer")
        self.layer_w = dict(zip(s.style_layers, lw))
        total_w = sum(w for _, w in styles)
        with torch.no_grad():
            feats = vgg(content, s.content_layers)
            self.content_t = {n: feats[n].detach() for n in s.content_layers}
            self.gram_t: dict[str, torch.Tensor] = {}
            for style, w in styles:
                g = vgg(style, s.style_layers)
                for n in s.style_layers:
                    add = gram_matrix(g[n]).detach() * (w / total_w)
                    self.gram_t[n] = self.gram_t[n] + add if n in self.gram_t else add

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        s = self.s
        feats = self.vgg(x, self.layers)
        c = sum(F.mse_loss(feats[n], self.content_t[n]) for n in s.content_layers) / len(s.content_layers)
        st = sum(self.layer_w[n] * F.mse_loss(gram_matrix(feats[n]), self.gram_t[n]) for n in s.style_layers)
        tv = tv_loss(x) if s.tv_weight else x.new_zeros(())
        loss = s.content_weight * c + s.style_weight * st + s.tv_weight * tv
        return loss, {k: float(v.detach()) for k, v in (("loss", loss), ("content", c), ("style", st), ("tv", tv))}


def run_gatys(vgg: VGG19Features, content: torch.Tensor, styles: list[tuple[torch.Tensor, float]],
              s: GatysSettings, device: str | torch.device = "cpu",
              on_step: Callable[[int, int, dict[str, float]], None] | None = None,
              on_preview: Callable[[torch.Tensor, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> GatysResult:
    """Stylise `content` (1,3,H,W in [0,1]) with `styles` [(image, weight)]; see module doc."""
    if not styles:
        raise ValueError("at least one style image is needed")
    if s.optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"unknown optimizer {s.optimizer!r}")
    device = torch.device(device)
    vgg = vgg.to(device)
    gen = torch.Generator().manual_seed(s.seed)
    h0, w0 = content.shape[-2:]
    sizes = scale_sizes(w0, h0, s)
    total = s.steps * len(sizes)
    done, stopped, losses = 0, False, []
    x: torch.Tensor | None = None
    for size in sizes:
        c = resize_tensor(content, size).to(device)
        side = max(1, int(round(max(size) * s.style_scale)))
        st = []
        for img, w in styles:
            sw, sh = fit_size(img.shape[-1], img.shape[-2], side)
            simg = resize_tensor(img, (sw, sh)).to(device)
            if s.original_colors:  # luminance-only: the style's hues cannot leak in
                simg = match_luminance(simg, c, s.color_space)
            st.append((simg, float(w)))
        objective = _Objective(vgg, c, st, s)
        if x is None:
            start = c if s.init == "content" else torch.rand(c.shape, generator=gen).to(device)
        else:
            start = resize_tensor(x, size).clamp(0, 1)
        x = start.detach().clone().requires_grad_(True)
        if s.optimizer == "lbfgs":
            opt: torch.optim.Optimizer = torch.optim.LBFGS([x], lr=s.lr or 1.0, max_iter=1, history_size=50)
        else:
            opt = torch.optim.Adam([x], lr=s.lr or 0.02)
        last: dict[str, float] = {}

        def closure() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            loss, parts = objective(x)
            loss.backward()
            last.update(parts)
            return loss

        for _ in range(s.steps):
            if should_stop is not None and should_stop():
                stopped = True
                break
            if s.optimizer == "lbfgs":
                opt.step(closure)
            else:
                closure()
                opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
            done += 1
            if not math.isfinite(last.get("loss", 0.0)):
                raise FloatingPointError("loss is not finite; lower the learning rate or the style weight")
            losses.append(last["loss"])
            if on_step is not None:
                on_step(done, total, dict(last))
            if on_preview is not None and s.preview_every and done % s.preview_every == 0:
                on_preview(finish(x, content, s), done)
        if stopped:
            break
    assert x is not None
    return GatysResult(finish(x, content, s, fit_size(w0, h0, s.size)), done, total, stopped, losses)


def finish(x: torch.Tensor, content: torch.Tensor, s: GatysSettings, size: tuple[int, int] | None = None) -> torch.Tensor:
    """The image to show/save: detached, on CPU, at `size`, colours restored if asked."""
    out = x.detach().float().cpu().clamp(0, 1)
    if size is not None:
        out = resize_tensor(out, size).clamp(0, 1)
    if s.original_colors:
        out = keep_colors(out, content.float().cpu(), s.color_space)
    return out
