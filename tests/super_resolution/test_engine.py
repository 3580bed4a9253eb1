"""The array engine: seamless tiles, alpha, 16-bit, grey, output scale, OOM back-off."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modules.super_resolution.engine import Upscaler, resize_lanczos
from modules.super_resolution.tiling import TileStopped, grid


def _smooth(h, w, c, seed=0):
    """A smooth random image (SR models see photos, not white noise)."""
    rng = np.random.default_rng(seed)
    small = rng.random((h // 4 + 2, w // 4 + 2, c)).astype(np.float32)
    return resize_lanczos(small, (w, h))


def test_tile_grid_balanced_and_overlapping():
    assert grid(100, 32, 8) == (31, [0, 23, 46, 69])  # 4 equal tiles, overlaps >= 8, flush with both ends
    assert grid(20, 32, 8) == (20, [0])
    size, org = grid(1080, 512, 8)
    assert size <= 512 and org[-1] + size == 1080 and all(b - a <= size - 8 for a, b in zip(org, org[1:]))
    size, org = grid(72, 21, 0, align=4)  # unshuffle fold 4: everything on the 4-pixel grid
    assert size % 4 == 0 and all(o % 4 == 0 for o in org) and org[-1] + size == 72
    assert all(b - a < size for a, b in zip(org, org[1:]))  # no gap even with overlap 0


def test_tiled_equals_untiled_at_the_seams(rrdb4):
    up = Upscaler.from_file(rrdb4)
    img = _smooth(45, 70, 3)
    whole = up.upscale(img, tile=1000)
    tiled = up.upscale(img, tile=24, overlap=8, pad=16)
    assert whole.shape == tiled.shape == (180, 280, 3) and whole.dtype == np.float32
    assert float(whole.std()) > 1e-3  # the net really does something
    diff = np.abs(whole - tiled)
    # output columns/rows where tiles meet (input tile starts * 4)
    seams_x = [x * 4 for x in grid(70, 24, 8)[1][1:]]
    seams_y = [y * 4 for y in grid(45, 24, 8)[1][1:]]
    at_seams = max(diff[:, max(0, s - 8):s + 8 * 4].max() for s in seams_x)
    at_seams = max(at_seams, max(diff[max(0, s - 8):s + 8 * 4].max() for s in seams_y))
    assert at_seams < 2e-3, at_seams
    assert diff.max() < 2e-3
    # without context padding or blending the seams really differ: the check above can fail
    hard = up.upscale(img, tile=24, overlap=0, pad=0)
    assert np.abs(whole - hard).max() > 10 * max(float(diff.max()), 1e-5)


def test_alpha_kept_through_model_and_lanczos(nearest4):
    up = Upscaler.from_file(nearest4)  # output == nearest-neighbour x4 of the input
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (10, 12, 4), dtype=np.uint8)
    rgba[..., 3] = np.linspace(0, 255, 12, dtype=np.uint8)[None, :]
    out = up.upscale(rgba, tile=8, overlap=4, pad=4, alpha="model")
    assert out.shape == (40, 48, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgba.repeat(4, 0).repeat(4, 1))
    lz = up.upscale(rgba, alpha="lanczos")
    ref = np.asarray(Image.fromarray(rgba[..., 3]).resize((48, 40), Image.LANCZOS)).astype(int)
    assert np.abs(lz[..., 3].astype(int) - ref).max() <= 1
    # grey + alpha stays two channels
    la = up.upscale(rgba[..., [0, 3]], alpha="model")
    assert la.shape == (40, 48, 2)
    np.testing.assert_array_equal(la, rgba[..., [0, 3]].repeat(4, 0).repeat(4, 1))


def test_16bit_kept_to_the_last_bit(nearest4):
    up = Upscaler.from_file(nearest4)
    ramp = (np.arange(16 * 16 * 3, dtype=np.uint32) * 7 + 1000).reshape(16, 16, 3).astype(np.uint16)
    out = up.upscale(ramp, tile=8, overlap=4, pad=4)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, ramp.repeat(4, 0).repeat(4, 1))  # values 7 apart: 8-bit would merge them
    grey = up.upscale(ramp[..., 0])
    assert grey.shape == (64, 64, 1) and grey.dtype == np.uint16


def test_outscale_lanczos_4x_model_to_2x(nearest4):
    up = Upscaler.from_file(nearest4)
    img = _smooth(32, 40, 3, seed=2)
    out = up.upscale(img, outscale=2)
    assert out.shape == (64, 80, 3)
    model_out = img.repeat(4, 0).repeat(4, 1)  # what this net gives at its own scale
    np.testing.assert_allclose(out, resize_lanczos(model_out, (80, 64)), atol=1e-6)
    # antialiased, not a decimation: smoother than taking every other pixel
    assert np.abs(out - model_out[::2, ::2]).max() > 1e-3
    assert up.upscale(img, outscale=3).shape == (96, 120, 3)


class _OOMOnBigTiles(torch.nn.Module):
    def __init__(self, inner, limit):
        super().__init__()
        self.inner, self.limit, self.sizes = inner, limit, []

    def forward(self, x):
        self.sizes.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def test_oom_halves_the_tile_and_retries(nearest4):
    up = Upscaler.from_file(nearest4)
    wrapped = _OOMOnBigTiles(up.model, limit=40)
    up.model = wrapped
    img = _smooth(70, 90, 3, seed=3)
    seen = []
    out = up.upscale(img, tile=64, overlap=8, pad=4, on_oom=seen.append)
    assert seen == [32]
    np.testing.assert_allclose(out, img.repeat(4, 0).repeat(4, 1), atol=1e-6)


def test_stop_between_tiles(nearest4):
    up = Upscaler.from_file(nearest4)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(TileStopped):
        up.upscale(_smooth(64, 64, 3), tile=16, overlap=4, pad=4, should_stop=stop)
    assert len(calls) == 3  # seen at the very next tile


class _OverflowsInHalf(torch.nn.Module):
    """Like some ESRGAN weights in fp16: inf in half precision, fine in a wider type."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        y = self.inner(x.float())
        return torch.full_like(y, float("inf")).half() if x.dtype == torch.float16 else y.to(x.dtype)


def test_fp16_overflow_falls_back_to_a_wider_type(nearest4):
    up = Upscaler.from_file(nearest4)
    up.model = _OverflowsInHalf(up.model)
    up.dtype = torch.float16  # as on a GPU (CPU .to() never picks fp16)
    seen = []
    img = _smooth(20, 24, 3, seed=4)
    out = up.upscale(img, tile=16, overlap=4, pad=4, on_precision=seen.append)
    assert seen == ["float32"] and up.dtype == torch.float32
    np.testing.assert_allclose(out, img.repeat(4, 0).repeat(4, 1), atol=1e-6)


def test_tiles_stay_on_the_unshuffle_grid(tmp_path):
    """x2 (fold 2) and x1 (fold 4) Real-ESRGAN nets: odd image and tile sizes, same result."""
    from tests.super_resolution.conftest import lively, new_rrdb_sd

    for fold in (2, 4):
        p = tmp_path / f"fold{fold}.pth"
        torch.save({"params_ema": lively(new_rrdb_sd(unshuffle=fold))}, p)
        up = Upscaler.from_file(p)
        img = np.random.default_rng(fold).random((53, 71, 3)).astype(np.float32)
        whole = up.upscale(img, tile=4096)
        tiled = up.upscale(img, tile=21, overlap=6, pad=16)
        assert whole.shape == (53 * 4 // fold, 71 * 4 // fold, 3) and whole.std() > 0.02
        assert np.abs(whole - tiled).max() < 1e-3
