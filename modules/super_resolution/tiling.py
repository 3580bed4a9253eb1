"""Tiled inference without seams, in bounded memory.

Each tile is run with `pad` pixels of real image context on every side (thrown away after),
and neighbouring tiles overlap by `overlap` pixels where they are cross-faded with linear
ramps. The ramps are separable, so the normalisation is the outer product of two 1-D sums:
no full-size weight buffer is needed. The output is assembled one band of tile rows at a
time and each finished band is written straight into the caller's output array (uint8,
uint16 or float32): peak memory is the input, the output array and one float band, not
a float copy of a 4x (16x the pixels) result.

On out-of-memory the tile size is halved and the image restarted (down to 32 px); an fp16
overflow (inf/NaN, which some ESRGAN weights hit) raises `NonFinite` for a wider retry.
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


class NonFinite(Exception):
    """A half-precision pass overflowed (inf/NaN): the caller retries in a wider type."""


def clamp_overlap(tile: int, overlap: int, align: int = 1) -> int:
    """The overlap actually used for a `tile`: at least `align` (rounding can never open a
    gap), at most half the tile (so tiles advance by at least half their size, never 1 px at
    a time) and below the tile itself. `grid` and the blending ramps both use this value, so
    a tile smaller than the requested overlap cannot give mismatched shapes."""
    tile = max(align, tile // align * align)
    return max(0, min(max(overlap, align), max(align, tile // 2), tile - align))


def grid(length: int, tile: int, overlap: int, align: int = 1) -> tuple[int, list[int]]:
    """(tile size, origins) along one axis: the fewest tiles of at most `tile` pixels that
    overlap by at least `overlap`, all the same size and evenly spread (no last tile that
    mostly repeats its neighbour, which is where fixed grids waste work).

    With `align` > 1 (`length` a multiple of it) sizes and origins are multiples of `align`,
    so a pixel-unshuffle network folds every tile on the same 2x2/4x4 grid as the image.
    """
    if tile >= length:
        return length, [0]
    overlap = clamp_overlap(tile, overlap, align)
    tile = max(align, tile // align * align)
    if tile >= length:  # rounding up to the fold can make one tile enough
        return length, [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    size = min(tile, math.ceil(math.ceil((length + (n - 1) * overlap) / n) / align) * align)
    return size, [round(i * (length - size) / (n - 1) / align) * align for i in range(n)]


def _ramps(origins: list[int], size: int, length: int, overlap: int, scale: int) -> list[torch.Tensor]:
    """Per-tile 1-D weights (output resolution) normalised so overlapping tiles sum to 1."""
    n, ov = size * scale, overlap * scale
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
    return [torch.from_numpy(w / total[o * scale:o * scale + n]) for o, w in zip(origins, ws)]


def to_output(band: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float [0,1] -> the output dtype, rounded (not truncated) for integer types."""
    if dtype == np.uint8:
        return (np.clip(band, 0, 1) * 255.0 + 0.5).astype(np.uint8)
    if dtype == np.uint16:
        return (np.clip(band, 0, 1) * 65535.0 + 0.5).astype(np.uint16)
    return np.clip(band, 0, 1).astype(dtype)


def _flush(band: torch.Tensor, out: np.ndarray, row: int) -> None:
    """C x rows x W float band -> out[row:row+rows] in out's dtype, converted in place on the
    band's device (these rows are final, the band is not read again)."""
    b = band.clamp_(0, 1)
    if out.dtype == np.uint8:
        b = b.mul_(255.0).add_(0.5).to(torch.uint8)
    elif out.dtype == np.uint16:
        b = b.mul_(65535.0).add_(0.5).to(torch.int32)
    rows = min(band.shape[1], out.shape[0] - row)  # an aligned run computes a few extra rows/cols
    if rows > 0:
        out[row:row + rows] = b[:, :rows, :out.shape[1]].permute(1, 2, 0).cpu().numpy()


def run_tiled(model: Callable[[torch.Tensor], torch.Tensor], image: np.ndarray, scale: int, tile: int,
              out: np.ndarray, *, overlap: int = 8, pad: int = 16, device: str = "cpu",
              dtype: torch.dtype = torch.float32, should_stop: Callable[[], bool] | None = None,
              on_tile: Callable[[int, int], None] | None = None, align: int = 1) -> None:
    """Upscale `image` (H x W x C float32 in [0,1]) into `out` (H*s x W*s x C', any dtype).

    `align`: the network's pixel-unshuffle fold; the image is reflect-padded to a multiple of
    it (as the network itself would do untiled) and every tile and context window starts
    on that grid, so tiled and untiled runs see the same folded pixels.
    """
    if align > 1:
        ph, pw = -image.shape[0] % align, -image.shape[1] % align
        if ph or pw:
            mode = "reflect" if min(image.shape[:2]) > max(ph, pw) else "edge"
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode=mode)
        pad = math.ceil(pad / align) * align
    h, w, _ = image.shape
    tile = max(1, tile)
    overlap = clamp_overlap(tile, overlap, align)  # the same value for the grid and the ramps
    th, ys = grid(h, tile, overlap, align)
    tw, xs = grid(w, tile, overlap, align)
    dev = torch.device(device)
    wy = [r.to(dev) for r in _ramps(ys, th, h, overlap, scale)]
    wx = [r.to(dev) for r in _ramps(xs, tw, w, overlap, scale)]
    # the whole input on the device once (a view, no copy, for fp32 on CPU)
    src = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0).to(dev, dtype)
    c_out = out.shape[2]
    band_h = th * scale
    band = torch.zeros((c_out, band_h, w * scale), dtype=torch.float32, device=dev)
    band_top = ys[0] * scale  # output row where the band starts
    done, total = 0, len(ys) * len(xs)
    for iy, y0 in enumerate(ys):
        new_top = y0 * scale
        if new_top > band_top:  # rows above this tile row can no longer change: flush them
            n = new_top - band_top
            _flush(band[:, :n], out, band_top)
            band = torch.cat([band[:, n:], band.new_zeros((c_out, n, w * scale))], 1)
            band_top = new_top
        for ix, x0 in enumerate(xs):
            if should_stop is not None and should_stop():
                raise TileStopped()
            # context window around the tile, clamped to the image
            cy0, cx0 = max(0, y0 - pad), max(0, x0 - pad)
            cy1, cx1 = min(h, y0 + th + pad), min(w, x0 + tw + pad)
            with torch.inference_mode():
                res = model(src[:, :, cy0:cy1, cx0:cx1])
            oy, ox = (y0 - cy0) * scale, (x0 - cx0) * scale
            core = res[0, :, oy:oy + band_h, ox:ox + tw * scale].float()
            if dtype == torch.float16 and not bool(torch.isfinite(core).all()):
                raise NonFinite()
            weight = wy[iy][:, None] * wx[ix][None, :]
            band[:, :, x0 * scale:(x0 + tw) * scale].addcmul_(core, weight)
            done += 1
            if on_tile is not None:
                on_tile(done, total)
    _flush(band, out, band_top)


def auto_tile(bytes_per_px: float, free_bytes: float, pad: int, image_hw: tuple[int, int],
              budget_fraction: float = 0.5) -> int:
    """Largest square tile whose activations fit in a fraction of the free memory."""
    budget = max(free_bytes * budget_fraction, 64 * 2**20)
    side = int(math.sqrt(budget / max(bytes_per_px, 1.0))) - 2 * pad
    side = max(MIN_TILE, side // 8 * 8)
    return min(side, max(image_hw))
