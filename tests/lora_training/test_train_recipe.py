"""Recipe options on the tiny SDXL, end to end: each neutral setting reproduces the plain run
bit for bit, each real setting changes it, and Stop + Resume stays exact with all of them on."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.lora_training.helpers import StopAt, adapter, data, params, quiet_job

pytestmark = pytest.mark.slow


def _run(ctx, tiny, tmp_path, tag, **kw):
    from modules.lora_training.train.trainer import train

    kw.setdefault("project", tag)
    res = train(quiet_job(tmp_path / f"job_{tag}"), params(tiny, **kw), ctx)
    assert not res["stopped"]
    return res


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _proj(ctx, name):
    return ctx.path("LORA_PROJECTS_DIR") / name


def test_neutral_settings_equal_plain(ctx, tiny_sdxl, tmp_path):
    for name in ("plain", "neutral", "masked_ones"):
        data(ctx, project=name, n=3)
    for img in (_proj(ctx, "masked_ones") / "data" / "concept").glob("img_*.png"):
        Image.new("L", (64, 64), 255).save(img.with_name(f"{img.stem}.mask.png"))
    kw = dict(max_steps=3, batch_size=2, dropout=0.0)
    plain = adapter(_run(ctx, tiny_sdxl, tmp_path, "plain", **kw)["state"])
    # LoRA+ ratio 1 and every block at lr_unet split the optimizer groups yet change nothing
    neutral = _run(ctx, tiny_sdxl, tmp_path, "neutral", loraplus_ratio=1.0, unet_block_lr=[1e-3] * 5, **kw)
    assert _same(plain, adapter(neutral["state"]))
    ones = _run(ctx, tiny_sdxl, tmp_path, "masked_ones", masked_loss=True, **kw)
    assert _same(plain, adapter(ones["state"]))
    cached = [load_file(str(f)) for f in (_proj(ctx, "masked_ones") / "cache" / "latents").glob("*.safetensors")]
    assert len(cached) == 3 and all(c["mask"].shape == (1, 8, 8) for c in cached)  # the cache carries masks


def test_real_settings_change_the_weights(ctx, tiny_sdxl, tmp_path):
    data(ctx, project="base", n=2)
    kw = dict(max_steps=2)
    base = adapter(_run(ctx, tiny_sdxl, tmp_path, "base", **kw)["state"])
    variants = dict(loraplus=dict(loraplus_ratio=8.0), blocks=dict(unet_block_lr=[1e-3, 0.0, 1e-3, 1e-3, 1e-3]),
                    huber=dict(loss_type="huber"), debiased=dict(debiased_estimation=True),
                    multires=dict(multires_noise_iterations=3), ip=dict(ip_noise_gamma=0.2),
                    trange=dict(min_timestep=900, max_timestep=1000))
    for tag, opts in variants.items():
        data(ctx, project=tag, n=2)
        got = adapter(_run(ctx, tiny_sdxl, tmp_path, tag, **kw, **opts)["state"])
        assert not _same(base, got), tag
        if tag == "blocks":  # LR 0 on down_blocks.1: its adapters never move from their init (B = 0)
            frozen = [k for k in got if "down_blocks.1." in k and "lora_B" in k]
            assert frozen and all(float(got[k].abs().max()) == 0 for k in frozen)
            assert any(float(got[k].abs().max()) > 0 for k in got if "up_blocks.0." in k and "lora_B" in k)


def test_caption_dropout_one_is_the_empty_caption(ctx, tiny_sdxl, tmp_path):
    data(ctx, project="drop", n=2)
    folder = _proj(ctx, "empty") / "data" / "concept"
    data(ctx, project="empty", n=2)
    for t in folder.glob("*.txt"):
        t.unlink()  # no caption, no trigger: the empty caption
    a = _run(ctx, tiny_sdxl, tmp_path, "drop", caption_dropout=1.0)
    b = _run(ctx, tiny_sdxl, tmp_path, "empty")
    assert _same(adapter(a["state"]), adapter(b["state"]))
    c = _run(ctx, tiny_sdxl, tmp_path, "shuffled", shuffle_tags=True, keep_tokens=1, data_dir=str(
        _proj(ctx, "drop") / "data"))
    assert not _same(adapter(a["state"]), adapter(c["state"]))


def test_repeats_equal_the_folder_duplicated(ctx, tiny_sdxl, tmp_path):
    from tests.lora_training.tiny_sdxl import make_images

    rep = _proj(ctx, "rep") / "data" / "3_concept"
    make_images(rep, n=2)
    dup = _proj(ctx, "dup") / "data" / "concept"
    make_images(dup, n=2)
    for img in sorted(dup.glob("img_*.png")):
        for r in (1, 2):
            shutil.copy(img, img.with_name(f"{img.stem}_r{r}.png"))
            shutil.copy(img.with_suffix(".txt"), img.with_name(f"{img.stem}_r{r}.txt"))
    kw = dict(max_steps=0, epochs=1, batch_size=2)
    a = _run(ctx, tiny_sdxl, tmp_path, "rep", **kw)
    b = _run(ctx, tiny_sdxl, tmp_path, "dup", **kw)
    assert a["steps"] == b["steps"] == 3  # 2 images x 3 repeats / batch 2
    assert _same(adapter(a["state"]), adapter(b["state"]))
    from safetensors import safe_open

    with safe_open(a["lora"], "pt") as f:
        assert '"3_concept"' in f.metadata()["ss_tag_frequency"]


def test_prior_weight_zero_equals_no_reg_images(ctx, tiny_sdxl, tmp_path):
    from tests.lora_training.tiny_sdxl import make_images

    reg = tmp_path / "reg" / "1_cat"
    make_images(reg, n=3, seed=5)
    for name in ("noreg", "reg0", "reg1"):
        data(ctx, project=name, n=2)
    kw = dict(max_steps=3, dropout=0.0)
    plain = adapter(_run(ctx, tiny_sdxl, tmp_path, "noreg", **kw)["state"])
    zero = adapter(_run(ctx, tiny_sdxl, tmp_path, "reg0", reg_data_dir=str(tmp_path / "reg"), prior_loss_weight=0.0,
                        **kw)["state"])
    assert _same(plain, zero)
    one = adapter(_run(ctx, tiny_sdxl, tmp_path, "reg1", reg_data_dir=str(tmp_path / "reg"), **kw)["state"])
    assert not _same(plain, one)


def test_ema_file_decay_zero_is_the_raw_weights(ctx, tiny_sdxl, tmp_path):
    data(ctx, project="ema0", n=2)
    data(ctx, project="ema9", n=2)
    r0 = _run(ctx, tiny_sdxl, tmp_path, "ema0", ema=True, ema_decay=0.0)
    raw, ema = load_file(r0["lora"]), load_file(r0["lora_ema"])
    assert r0["lora_ema"].endswith("ema0-ema.safetensors") and _same(raw, ema)
    r9 = _run(ctx, tiny_sdxl, tmp_path, "ema9", ema=True, ema_decay=0.9, ema_start_step=1)
    raw9, ema9 = load_file(r9["lora"]), load_file(r9["lora_ema"])
    assert raw9.keys() == ema9.keys() and not _same(raw9, ema9)
    ups = [k for k in raw9 if k.endswith("lora_up.weight")]
    # 0.9-EMA of weights that started at B = 0 lags behind the raw ones
    assert sum(float(ema9[k].float().abs().sum()) for k in ups) < sum(float(raw9[k].float().abs().sum()) for k in ups)


def test_stop_resume_exact_with_every_option(ctx, tiny_sdxl, tmp_path):
    from modules.lora_training.train.trainer import train
    from tests.lora_training.tiny_sdxl import make_images

    make_images(tmp_path / "reg" / "cat", n=2, seed=7)
    for name in ("fa", "fb"):
        folder = _proj(ctx, name) / "data" / "2_concept"
        make_images(folder, n=2)
        m = np.full((64, 64), 255, np.uint8)
        m[:, 32:] = 60
        Image.fromarray(m).save(folder / "img_00.mask.png")
    kw = dict(max_steps=0, epochs=3, batch_size=1, grad_accum=2, dropout=0.1, trigger_word="sks",
              save_every_epochs=1, keep_last=2, ema=True, ema_decay=0.8, ema_start_step=1, ema_for_samples=True,
              masked_loss=True, caption_dropout=0.3, shuffle_tags=True, keep_tokens=1,
              reg_data_dir=str(tmp_path / "reg"), prior_loss_weight=0.5, loss_type="smooth_l1",
              huber_schedule="exponential", debiased_estimation=True, multires_noise_iterations=2,
              ip_noise_gamma=0.1, min_timestep=100, max_timestep=900, loraplus_ratio=4.0,
              unet_block_lr=[1e-3, 5e-4, 1e-3, 2e-3, 1e-3])
    full = train(quiet_job(tmp_path / "j1"), params(tiny_sdxl, project="fa", sample_prompts=["sks cat"],
                                                    sample_every_steps=3, sample_inference_steps=2, **kw), ctx)
    assert full["steps"] == 6 and not full["stopped"]
    part = train(StopAt(4, workdir=tmp_path / "j2"), params(tiny_sdxl, project="fb", **kw), ctx)
    assert part["stopped"] and part["steps"] == 4
    resumed = train(quiet_job(tmp_path / "j3"), params(tiny_sdxl, project="fb", resume_from="latest", **kw), ctx)
    assert resumed["steps"] == 6
    assert _same(adapter(full["state"]), adapter(resumed["state"]))
    assert _same(load_file(full["lora_ema"]), load_file(resumed["lora_ema"]))
    st = torch.load(resumed["state"] + "/state.pt", weights_only=True)
    assert len(st["adapter_ema"]["shadow"]) > 0
