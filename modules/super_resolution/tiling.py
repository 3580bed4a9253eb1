"""Tiled inference without seams, in bounded memory.

Each tile is run with `pad` pixels of real image context on every side (thrown away after),
and neighbouring tiles overlap by `overlap` pixels where they are cross-faded with linear
ramps. The ramps are separable, so the normalisation is the outer product of two 1-D sums:
no full-size weight buffer is needed. The output is assembled one band of tile rows at a
time and each finished band is written straight into the caller's output array (uint8,
uint16 or float32): peak memory is the input, the output array and one float band, not
a float copy of a 4x (16x the pixels) result.

On out-of-memory the tile size is halved and the image restarted (down to 32 px).
`should_stop` is polled before every tile; a stop raises `TileStopped`.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

MIN_TILE = 32


class TileStopped(Exception):
    """The job asked to stop between two tiles."""


def starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: stride tile-overlap, last tile flush with the end."""
    if tile >= length:
        return [0]
    step = max(1, tile - overlap)
    out = list(range(0, length - tile, step))
    out.append(length - tile)
    return out


def _ramps(origins: list[int], tile: int, length: int, overlap: int, scale: int) -> list[np.ndarray]:
    """Per-tile 1-D weights (output resolution) normalised so overlapping tiles sum to 1."""
    n = min(tile, length) * scale
    ov = overlap * scale
    ws = []
    for i in range(len(origins)):
        w = np.ones(n, np.float32)
        if ov > 0:
            ramp = (np.arange(ov, dtype=np.float32) + 0.5) / ov
            if i > 0:
                w[:ov] = np.minimum(w[:ov], ramp)
            if i < len(origins) - 1:
                w[-ov:] = np.minimum(w[-ov:], ramp[::-1])
        ws.append(w)
    total = np.zeros(length * scale, np.float32)
    for o, w in zip(origins, ws):
        total[o * scale:o * scale + n] += w
    return [w / total[o * scale:o * scale + n] for o, w in zip(origins, ws)]


def to_output(band: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float [0,1] -> the output dtype, rounded (not truncated) for integer types."""
    if dtype == np.uint8:
        return (np.clip(band, 0, 1) * 255.0 + 0.5).astype(np.uint8)
    if dtype == np.uint16:
        return (np.clip(band, 0, 1) * 65535.0 + 0.5).astype(np.uint16)
    return np.clip(band, 0, 1).astype(dtype)


def run_tiled(model: Callable[[torch.Tensor], torch.Tensor], image: np.ndarray, scale: int, tile: int,
              out: np.ndarray, *, overlap: int = 16, pad: int = 16, device: str = "cpu",
              dtype: torch.dtype = torch.float32, should_stop: Callable[[], bool] | None = None,
              on_tile: Callable[[int, int], None] | None = None) -> None:
    """Upscale `image` (H x W x C float32 in [0,1]) into `out` (H*s x W*s x C', any dtype)."""
    h, w, _ = image.shape
    tile = max(1, tile)
    ys, xs = starts(h, tile, overlap), starts(w, tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    wy, wx = _ramps(ys, tile, h, overlap, scale), _ramps(xs, tile, w, overlap, scale)
    src = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)  # 1xCxHxW view
    c_out = out.shape[2]
    band: np.ndarray | None = None
    band_top = 0  # output row where the band starts
    done, total = 0, len(ys) * len(xs)
    for iy, y0 in enumerate(ys):
        # rows above this tile row's start can no longer change: flush them
        new_top = y0 * scale
        if band is not None and new_top > band_top:
            keep = band_top + band.shape[0] - new_top
            out[band_top:new_top] = to_output(band[:new_top - band_top], out.dtype)
            band = np.concatenate([band[new_top - band_top:], np.zeros((th * scale - keep, w * scale, c_out), np.float32)])
            band_top = new_top
        elif band is None:
            band = np.zeros((th * scale, w * scale, c_out), np.float32)
            band_top = new_top
        for ix, x0 in enumerate(xs):
            if should_stop is not None and should_stop():
                raise TileStopped()
            # context window around the tile, clamped to the image
            cy0, cx0 = max(0, y0 - pad), max(0, x0 - pad)
            cy1, cx1 = min(h, y0 + th + pad), min(w, x0 + tw + pad)
            inp = src[:, :, cy0:cy1, cx0:cx1].to(device=device, dtype=dtype)
            with torch.inference_mode():
                res = model(inp)
            oy, ox = (y0 - cy0) * scale, (x0 - cx0) * scale
            core = res[0, :, oy:oy + th * scale, ox:ox + tw * scale].float().permute(1, 2, 0).cpu().numpy()
            weight = wy[iy][:, None, None] * wx[ix][None, :, None]
            r0 = y0 * scale - band_top
            band[r0:r0 + th * scale, x0 * scale:(x0 + tw) * scale] += core * weight
            done += 1
            if on_tile is not None:
                on_tile(done, total)
    assert band is not None
    out[band_top:band_top + band.shape[0]] = to_output(band, out.dtype)


def auto_tile(bytes_per_px: float, free_bytes: float, pad: int, image_hw: tuple[int, int],
              budget_fraction: float = 0.5) -> int:
    """Largest square tile whose activations fit in a fraction of the free memory."""
    budget = max(free_bytes * budget_fraction, 64 * 2**20)
    side = int(math.sqrt(budget / max(bytes_per_px, 1.0))) - 2 * pad
    side = max(MIN_TILE, side // 8 * 8)
    return min(side, max(image_hw))
