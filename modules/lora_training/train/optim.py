"""Optimizers (AdamW, AdamW8bit, Lion, Prodigy) and diffusers LR schedulers with warmup."""
from __future__ import annotations

from typing import Any

from core.errors import StudioError


def build_optimizer(name: str, groups: list[dict], weight_decay: float, device: str) -> Any:
    import torch

    groups = [{k: v for k, v in g.items()} for g in groups]
    if name == "adamw":
        # Measured on CPU (docs/BENCHMARKS.md, speed levers): for a real-size LoRA (23 M params,
        # SDXL rank 16) the fused kernel is 3-5x faster than torch's per-tensor loop and foreach;
        # for a tiny one (hundreds of small tensors) foreach wins and fused is slowest. CUDA: fused
        # (torch's recommendation; not measured here, no GPU lent).
        n = sum(q.numel() for g in groups for q in g["params"])
        fast = {"fused": True} if device.startswith("cuda") or n >= 1_000_000 else {"foreach": True}
        return torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=weight_decay, eps=1e-8, **fast)
    if name == "adamw8bit":
        if not device.startswith("cuda"):
            raise StudioError("lora.adamw8bit_needs_gpu", device=device)
        try:
            import bitsandbytes as bnb
        except Exception as exc:  # noqa: BLE001 - a broken CUDA setup surfaces here
            raise StudioError("lora.optimizer_missing", name="bitsandbytes", error=str(exc)[:200]) from exc
        return bnb.optim.AdamW8bit(groups, betas=(0.9, 0.999), weight_decay=weight_decay)
    if name == "lion":
        try:
            from lion_pytorch import Lion
        except ImportError as exc:
            raise StudioError("lora.optimizer_missing", name="lion-pytorch", error=str(exc)) from exc
        # Lion wants a ~3-10x smaller LR than AdamW; the user's LRs are used as given.
        return Lion(groups, betas=(0.9, 0.99), weight_decay=weight_decay)
    if name == "prodigy":
        try:
            from prodigyopt import Prodigy
        except ImportError as exc:
            raise StudioError("lora.optimizer_missing", name="prodigyopt", error=str(exc)) from exc
        # Prodigy estimates the step size itself; it expects lr=1.0 scaled per group.
        base = max(g["lr"] for g in groups)
        for g in groups:
            g["lr"] = g["lr"] / base
        return Prodigy(groups, weight_decay=weight_decay, safeguard_warmup=True, use_bias_correction=True)
    raise StudioError("lora.optimizer_unknown", name=name)


def build_scheduler(name: str, optimizer: Any, warmup: int, total: int) -> Any:
    from diffusers.optimization import get_scheduler

    return get_scheduler(name, optimizer=optimizer, num_warmup_steps=warmup, num_training_steps=max(total, 1))
