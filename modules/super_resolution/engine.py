"""The upscaling engine for one image array: no UI, no job, no files.

`Upscaler.from_file(path, device, dtype)` loads and identifies a weights file;
`Upscaler.upscale(array, ...)` returns the upscaled array in the input's own dtype
(uint8 stays uint8, 16-bit stays uint16, float stays float32) and channel layout
(gray, gray+alpha, RGB, RGBA). Alpha is upscaled either through the model (as a grey
image, like Real-ESRGAN's default) or with Lanczos; a fully opaque alpha costs nothing.
An optional `outscale` resamples the model's result with Lanczos (antialiased when
shrinking), e.g. a 4x model giving a 2x result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from modules.super_resolution.detect import ModelSpec, load_model
from modules.super_resolution.tiling import MIN_TILE, NonFinite, auto_tile, run_tiled

# On CPU a tile is sized by work, not memory: about this many FLOPs per tile (a few seconds
# on a desktop CPU) keeps Stop answered quickly for heavy nets, while light nets get big
# tiles and so little re-computed context.
CPU_TILE_FLOPS = 200e9
CPU_TILE_RANGE = (96, 1024)


def is_oom(exc: BaseException) -> bool:
    """CUDA OOM, MemoryError, or the CPU allocator's own wording."""
    if isinstance(exc, (MemoryError, getattr(torch.cuda, "OutOfMemoryError", MemoryError))):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("out of memory", "not enough memory", "can't allocate memory",
                                   "failed to allocate"))


def free_memory_bytes(device: str) -> float:
    from core.media_budget import available_bytes

    return available_bytes(device)


def resize_lanczos(arr: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Lanczos resample of a float HxWxC array, channel by channel in 32-bit float (no 8-bit loss).

    PIL's Lanczos widens its kernel when shrinking, so a downscale is antialiased.
    """
    from PIL import Image

    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(arr[..., c]), mode="F").resize(size_wh, Image.LANCZOS))
             for c in range(arr.shape[2])]
    return np.clip(np.stack(chans, axis=2), 0.0, 1.0)


def _to_float(arr: np.ndarray) -> tuple[np.ndarray, np.dtype]:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0, np.dtype(np.uint8)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0, np.dtype(np.uint16)
    return np.clip(arr.astype(np.float32), 0.0, 1.0), np.dtype(np.float32)


def _from_float(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    from modules.super_resolution.tiling import to_output

    return to_output(arr, dtype)


@dataclass
class Upscaler:
    model: torch.nn.Module
    spec: ModelSpec
    device: str = "cpu"
    dtype: torch.dtype = torch.float32

    @classmethod
    def from_file(cls, path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> "Upscaler":
        model, spec = load_model(path)
        up = cls(model, spec)
        up.to(device, dtype)
        return up

    def to(self, device: str, dtype: torch.dtype) -> "Upscaler":
        if device == "cpu" and dtype == torch.float16:
            dtype = torch.float32  # fp16 convs on CPU are slow and gain nothing
        if self.spec.arch.startswith("spandrel:"):
            if dtype == torch.float16 and not self.spec.extra.get("supports_half", False):
                dtype = torch.float32
            if dtype == torch.bfloat16 and not self.spec.extra.get("supports_bf16", False):
                dtype = torch.float32
        self.device, self.dtype = device, dtype
        self.model = self.model.to(device=device, dtype=dtype)
        if device.startswith("cuda"):
            self.model = self.model.to(memory_format=torch.channels_last)
        return self

    @property
    def scale(self) -> int:
        return self.spec.scale

    # -- memory -----------------------------------------------------------------------
    def work_bytes(self, hw: tuple[int, int], channels: int = 3, outscale: float | None = None,
                   alpha_model: bool = False, out_bytes: int = 1) -> float:
        """Host memory one `upscale` call holds at its peak: the float input and its copies,
        the output array (uint8/uint16/float work copy + the copy the PNG writer makes), the
        alpha pass and the Lanczos resample when asked. The tiles' activations are bounded
        separately (auto tile, OOM back-off), so they are not counted here."""
        h, w = hw
        s = self.scale
        in_px, out_px = h * w, h * w * s * s
        work = 4 if (channels in (1, 2) or alpha_model or outscale or out_bytes == 4) else out_bytes
        c_out = 4 if channels in (2, 4) else 3
        need = in_px * (5 * channels + 24) + out_px * 3 * work + out_px * c_out * (out_bytes + 1)
        if alpha_model:
            need += out_px * 16  # the alpha run's RGB float output + its mean
        if outscale:
            o = outscale * outscale * in_px
            need += out_px * c_out * 4 + o * c_out * 8  # float result + per-channel resample and stack
        return float(need)

    def bytes_per_px(self) -> float:
        """Rough peak activation bytes per input pixel (sizes the automatic tile)."""
        s, nf = self.spec.scale, self.spec.num_feat or 64
        if self.spec.arch == "compact":
            floats = 3 * nf + 3 * self.spec.out_ch * s * s
        else:
            u = self.spec.unshuffle
            gc = int(self.spec.extra.get("num_grow_ch", 32))
            net = 2 ** int(self.spec.extra.get("num_upsample", max(0, int(math.log2(max(s, 1))))))
            floats = (3 * nf + 2 * (nf + 4 * gc)) / (u * u) + 3 * nf * net * net / (u * u) + 3 * s * s
        return floats * torch.finfo(self.dtype).bits / 8

    def flops_per_px(self) -> float:
        """Multiply-adds x2 per input pixel (3x3 convs), for the CPU tile size."""
        sp, s = self.spec, self.spec.scale
        nf, cin, cout = sp.num_feat or 64, sp.in_ch, sp.out_ch
        if sp.arch == "compact":
            macs = cin * nf + sp.depth * nf * nf + nf * cout * s * s
        elif sp.arch == "rrdb":
            u, gc = sp.unshuffle, int(sp.extra.get("num_grow_ch", 32))
            rdb = sum((nf + i * gc) * gc for i in range(4)) + (nf + 4 * gc) * nf
            lr = cin * u * u * nf + sp.depth * 3 * rdb + nf * nf
            n_up = int(sp.extra.get("num_upsample", 2))
            hr = sum(nf * nf * 4 ** i for i in range(1, n_up + 1)) + (nf * nf + nf * cout) * 4 ** n_up
            macs = (lr + hr) / (u * u)
        else:  # unknown (spandrel): assume a mid-size network
            macs = 2e5
        return 2 * 9 * macs

    def auto_tile(self, hw: tuple[int, int], pad: int) -> int:
        tile = auto_tile(self.bytes_per_px(), free_memory_bytes(self.device), pad, hw,
                         budget_fraction=0.5 if self.device.startswith("cuda") else 0.25)
        # the float band holds one row of tiles at output size: keep it to a tenth of free memory
        band_row_bytes = hw[1] * self.scale * self.scale * 4 * 4
        free = free_memory_bytes(self.device)
        tile = max(MIN_TILE, min(tile, int(min(0.1 * free, 2**29) / band_row_bytes) // 8 * 8))
        if self.device == "cpu":
            lo, hi = CPU_TILE_RANGE
            by_work = int(min(hi, max(lo, math.sqrt(CPU_TILE_FLOPS / self.flops_per_px())))) // 8 * 8
            tile = min(tile, by_work)
        return tile

    # -- running ----------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.startswith("cuda"):
            x = x.contiguous(memory_format=torch.channels_last)
        cin = self.spec.in_ch
        if cin == 1 and x.shape[1] == 3:  # one-channel model: each colour channel on its own
            return torch.cat([self.model(x[:, i:i + 1]) for i in range(3)], 1)
        if cin == 4 and x.shape[1] == 3:
            x = torch.cat([x, torch.ones_like(x[:, :1])], 1)
        y = self.model(x)
        return y[:, :3] if y.shape[1] == 4 else y

    def _run_rgb(self, rgb: np.ndarray, out: np.ndarray, tile: int, overlap: int, pad: int,
                 should_stop, on_tile, on_warning, on_precision=None) -> int:
        """Tiled pass with OOM back-off and fp16-overflow fallback; returns the tile size used."""
        while True:
            try:
                run_tiled(self._forward, rgb, self.scale, tile, out, overlap=overlap, pad=pad,
                          device=self.device, dtype=self.dtype, should_stop=should_stop, on_tile=on_tile,
                          align=self.spec.unshuffle)
                return tile
            except NonFinite:
                # fp16 overflowed: bf16 has fp32's range; fp32 where bf16 is not supported
                wider = torch.bfloat16 if (self.device.startswith("cuda") and torch.cuda.is_bf16_supported()) \
                    else torch.float32
                self.to(self.device, wider)
                if on_precision is not None:
                    on_precision(str(wider).replace("torch.", ""))
            except Exception as exc:  # noqa: BLE001 - only OOM is retried
                if not is_oom(exc) or tile <= MIN_TILE:
                    raise
                if self.device.startswith("cuda"):
                    torch.cuda.empty_cache()
                tile = max(MIN_TILE, tile // 2)
                if on_warning is not None:
                    on_warning(tile)

    def upscale(self, arr: np.ndarray, *, tile: int = 0, overlap: int = 8, pad: int = 16,
                outscale: float | None = None, alpha: str = "model",
                should_stop: Callable[[], bool] | None = None,
                on_progress: Callable[[float], None] | None = None,
                on_oom: Callable[[int], None] | None = None,
                on_precision: Callable[[str], None] | None = None) -> np.ndarray:
        """Upscale an HxW or HxWxC (C = 1..4) array; same dtype and channels out.

        `on_progress(fraction)` follows the tiles; `on_oom(new_tile)` reports a back-off;
        `on_precision(dtype)` a switch away from fp16 after an overflow.
        Raises `TileStopped` when `should_stop()` turns true between tiles.
        """
        if arr.ndim == 2:
            arr = arr[:, :, None]
        img, out_dtype = _to_float(arr)
        h, w, c = img.shape
        has_alpha = c in (2, 4)
        color = img[..., : c - 1] if has_alpha else img
        gray = color.shape[2] == 1
        rgb = np.repeat(color, 3, axis=2) if gray else color
        a = img[..., c - 1:] if has_alpha else None
        alpha_needs_model = a is not None and alpha == "model" and float(a.min()) < 1.0
        tile = tile or self.auto_tile((h, w), pad)
        passes = 2 if alpha_needs_model else 1
        s = self.scale

        def progress(k: int):
            return None if on_progress is None else (lambda d, t: on_progress((k + d / t) / passes))

        work_dtype = np.float32 if (gray or alpha_needs_model or out_dtype == np.float32 or outscale) else out_dtype
        out_rgb = np.empty((h * s, w * s, 3), work_dtype)
        tile = self._run_rgb(rgb, out_rgb, tile, overlap, pad, should_stop, progress(0), on_oom, on_precision)
        if gray:
            out_color = out_rgb.mean(axis=2, keepdims=True)
        else:
            out_color = out_rgb
        out_a = None
        if a is not None:
            if alpha_needs_model:
                tmp = np.empty((h * s, w * s, 3), np.float32)
                self._run_rgb(np.repeat(a, 3, axis=2), tmp, tile, overlap, pad, should_stop, progress(1), on_oom,
                              on_precision)
                out_a = tmp.mean(axis=2, keepdims=True)
            elif float(a.min()) >= 1.0:
                out_a = np.ones((h * s, w * s, 1), np.float32)
            else:
                out_a = resize_lanczos(a, (w * s, h * s))
        result = out_color
        if out_a is not None:
            if out_color.dtype != np.float32:  # colour already quantised: quantise alpha alike
                out_a = _from_float(out_a, out_color.dtype)
            result = np.concatenate([out_color, out_a], axis=2)
        if outscale:
            size = (max(1, round(w * outscale)), max(1, round(h * outscale)))
            if size != (w * s, h * s):
                if result.dtype != np.float32:
                    result = _to_float(result)[0]
                result = resize_lanczos(result, size)
        if result.dtype == out_dtype:
            return result
        return _from_float(result, out_dtype)
