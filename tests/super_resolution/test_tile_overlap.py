"""Tile / overlap together (issue 18 point 9): any combination the engine meets gives the
untiled result, and the params refuse the combinations that make no sense, naming the field."""
from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from modules.super_resolution.engine import Upscaler, resize_lanczos
from modules.super_resolution.params import UpscaleParams
from modules.super_resolution.tiling import clamp_overlap, grid


def _smooth(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return resize_lanczos(rng.random((h // 4 + 2, w // 4 + 2, 3)).astype(np.float32), (w, h))


@pytest.mark.parametrize("align", [1, 2, 4])
def test_grid_covers_every_pixel_for_any_tile_and_overlap(align):
    for length in (1 * align, 7 * align, 33 * align, 100 * align):
        for tile in (1, 2, 3, 5, 8, 16, 31, 64, 500):
            for overlap in (0, 1, 4, 8, 15, 16, 64, 256):
                size, org = grid(length, tile, overlap, align)
                ov = clamp_overlap(tile, overlap, align)
                assert org[0] == 0 and org[-1] + size == length, (length, tile, overlap)
                # overlap kept (origins on the fold grid may lose < align of it), never a gap
                assert all(b - a <= size - min(ov, size) + align - 1 for a, b in zip(org, org[1:]))
                assert all(b - a <= size for a, b in zip(org, org[1:]))
                t = max(align, tile // align * align)
                assert ov <= max(align, t // 2)  # tiles advance by at least half a tile, never 1 px at a time
                assert len(org) <= math.ceil(2 * length / t) + 1, (length, tile, overlap, len(org))


def test_tile_8_overlap_8_no_longer_steps_one_pixel():
    size, org = grid(64, 8, 8)
    assert len(org) <= 16 and min(b - a for a, b in zip(org, org[1:])) >= 4  # was 57 tiles, 1 px apart


@pytest.mark.parametrize("tile,overlap,pad", [(16, 8, 4), (16, 32, 4), (20, 256, 0), (24, 12, 16), (33, 5, 2),
                                              (40, 0, 8), (8, 8, 4), (3, 8, 4), (64, 100, 16)])
def test_tiled_equals_untiled_over_many_combinations(nearest4, tile, overlap, pad):
    """A tile smaller than the overlap raised a NumPy broadcast error (ramps used the unclamped
    overlap); now every combination matches the untiled output exactly (nearest net: the
    result does not depend on context, so any difference is a blending error)."""
    up = Upscaler.from_file(nearest4)
    img = _smooth(37, 51)
    whole = up.upscale(img, tile=4096)
    tiled = up.upscale(img, tile=tile, overlap=overlap, pad=pad)
    assert tiled.shape == whole.shape == (148, 204, 3)
    np.testing.assert_allclose(tiled, whole, atol=2e-6)


def test_tiled_matches_untiled_with_a_real_net(rrdb4):
    up = Upscaler.from_file(rrdb4)
    img = _smooth(30, 41)
    whole = up.upscale(img, tile=4096)
    for tile, overlap in ((16, 64), (24, 24), (17, 3)):  # overlap > tile, = tile, odd sizes
        tiled = up.upscale(img, tile=tile, overlap=overlap, pad=16)
        assert np.abs(whole - tiled).max() < 2e-3, (tile, overlap)


@pytest.mark.parametrize("tile,overlap,field", [(8, 8, "tile"), (1, 0, "tile"), (32, 17, "overlap"),
                                                (16, 9, "overlap"), (100, 256, "overlap")])
def test_params_refuse_bad_tile_overlap_naming_the_field(tile, overlap, field):
    with pytest.raises(ValidationError) as ei:
        UpscaleParams(model="m", inputs=["a"], tile=tile, overlap=overlap)
    locs = {e["loc"][0] for e in ei.value.errors()}
    assert locs == {field}, ei.value.errors()


@pytest.mark.parametrize("tile,overlap", [(0, 256), (16, 8), (32, 16), (512, 8), (64, 0)])
def test_params_accept_sane_tile_overlap(tile, overlap):
    p = UpscaleParams(model="m", inputs=["a"], tile=tile, overlap=overlap)
    assert (p.tile, p.overlap) == (tile, overlap)


def test_rest_names_the_overlap_field(ctx):
    from fastapi.testclient import TestClient

    from core.api import create_api

    client = TestClient(create_api(ctx))
    r = client.post("/jobs", json={"kind": "sr.upscale", "params": {"model": "x", "inputs": ["a"],
                                                                    "tile": 32, "overlap": 30}})
    assert r.status_code == 422 and "overlap" in str(r.json())
