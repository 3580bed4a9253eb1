"""The plan shown before a run: optimizer steps, VRAM estimate, time estimate.

No weights are read: parameter counts come from a meta-device UNet built from the base
model's config (the real SDXL config for single files / hub ids). The time estimate uses
the median seconds/step that earlier runs with the same settings on the same device
measured (`LORA_PROJECTS_DIR/.timings.json`); with no history it is left out, not guessed.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any

from modules.lora_training.train import config as cfg


def unet_param_count(unet_config: dict | None) -> int:
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config or cfg.SDXL_UNET_CONFIG)
    return sum(q.numel() for q in unet.parameters())


def timing_key(params: Any, device_name: str, fingerprint: str) -> str:
    p = params
    return (f"{device_name}|{fingerprint}|{p.resolution}|{p.batch_size}|{p.grad_accum}|{p.rank}|{p.target}|"
            f"{p.gradient_checkpointing}|{p.precision}|{p.train_text_encoder}|{p.cache_latents}")


def timings(ctx: Any) -> dict:
    f = ctx.path("LORA_PROJECTS_DIR") / ".timings.json"
    try:
        return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}
    except (OSError, ValueError):
        return {}


def save_timing(ctx: Any, key: str, sec_per_step: float) -> None:
    """Remember the median seconds/step of these settings for the next estimate."""
    data = timings(ctx)
    data[key] = sec_per_step
    f = ctx.path("LORA_PROJECTS_DIR") / ".timings.json"
    tmp = f.with_name(f".timings.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, f)
    except OSError:
        pass  # an estimate cache must never fail a run


def plan(params: Any, ctx: Any, n_train: int | None = None, per_epoch: int | None = None, world: int = 1,
         device: str | None = None) -> dict:
    """Full estimate for `params` (data folder scanned when counts are not given)."""
    from modules.lora_training.train import dataset as ds
    from core.sdxl import read_unet_config, resolve_base
    from modules.lora_training.train.session import Paths

    p = cfg.apply_preset(params)
    base = resolve_base(p.base_model, ctx)
    if n_train is None:
        items = ds.scan(Paths.build(p, ctx).data, p.resolution, p.trigger_word)
        train_items, _ = ds.split_validation(items, p.validation_images, p.seed)
        n_train = len(train_items)
        per_epoch = len(ds.epoch_batches(train_items, p.batch_size, p.seed, 0))
    unet_conf = read_unet_config(base)
    device = device or ctx.models.device
    est = cfg.estimate(p, n_train, unet_param_count(unet_conf), cfg.lora_param_count(unet_conf, p.rank, p.target),
                       world=world, device=device)
    if per_epoch:
        est["steps"] = p.max_steps or math.ceil(per_epoch / p.grad_accum) * p.epochs
    sec = timings(ctx).get(timing_key(p, ctx.models.device_name(), base.fingerprint))
    est["seconds"] = round(sec * est["steps"], 1) if sec else None
    est["images"] = n_train
    return est
