"""Latents and text embeddings are cached on disk, reused by the next run, invalidated per
entry when an input changes, and training from the cache equals training without it."""
from __future__ import annotations

import torch

from tests.lora_training.helpers import adapter, data, params, quiet_job


def test_cache_reused_and_equivalent(ctx, tiny_sdxl, tmp_path, monkeypatch):
    from diffusers import AutoencoderKL

    from modules.lora_training.train.trainer import train

    folder = data(ctx, n=2)
    calls = {"n": 0}
    real_encode = AutoencoderKL.encode

    def counting(self, *a, **kw):
        calls["n"] += 1
        return real_encode(self, *a, **kw)

    monkeypatch.setattr(AutoencoderKL, "encode", counting)
    first = train(quiet_job(tmp_path / "1"), params(tiny_sdxl, max_steps=2), ctx)
    assert (first["cache_hits"], first["cache_misses"]) == (0, 4)  # 2 latents + 2 captions
    assert calls["n"] == 2
    cache = ctx.path("LORA_PROJECTS_DIR") / "p" / "cache"
    assert len(list((cache / "latents").glob("*.safetensors"))) == 2
    assert len(list((cache / "text").glob("*.safetensors"))) == 2

    calls["n"] = 0
    second = train(quiet_job(tmp_path / "2"), params(tiny_sdxl, max_steps=2, output_name="p2"), ctx)
    assert (second["cache_hits"], second["cache_misses"]) == (4, 0) and calls["n"] == 0
    a, b = adapter(first["state"]), adapter(second["state"])
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same cached inputs

    (folder / "img_01.txt").write_text("a different caption", encoding="utf-8")
    third = train(quiet_job(tmp_path / "3"), params(tiny_sdxl, max_steps=1, output_name="p3"), ctx)
    assert (third["cache_hits"], third["cache_misses"]) == (3, 1) and calls["n"] == 0
    (folder / "img_01.txt").write_text("sks, a photo of a red cat number 1", encoding="utf-8")

    # no cache at all (VAE + text encoders every step, the plain diffusers way): same weights
    calls["n"] = 0
    plain = train(quiet_job(tmp_path / "4"), params(tiny_sdxl, max_steps=2, cache_latents=False, output_name="p4"), ctx)
    assert calls["n"] == 2  # one encode per step (batch 1)
    c = adapter(plain["state"])
    assert all(torch.allclose(a[k], c[k], atol=1e-5) for k in a)
