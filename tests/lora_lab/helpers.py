"""Helpers of the LoRA Lab tests: small params, a counted base loader, image comparisons."""
from __future__ import annotations

from pathlib import Path

import numpy as np

SMALL = dict(width=64, height=64, steps=3, cfg=5.0, sampler="Euler", seed=7, preview_every=0)


def count_loads(monkeypatch) -> list[str]:
    """Patch core.sdxl.load_pipeline to record every real base load."""
    import core.sdxl as sdxl

    calls: list[str] = []
    real = sdxl.load_pipeline

    def counted(base, ctx, dtype=None):
        calls.append(base.ref)
        return real(base, ctx, dtype)

    monkeypatch.setattr(sdxl, "load_pipeline", counted)
    return calls


def pixels(path: str | Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def run(ctx, kind: str, params: dict, timeout: float = 300) -> dict:
    job_id = ctx.jobs.submit(kind, params)
    row = ctx.jobs.wait(job_id, timeout)
    assert row["status"] == "completed", (row["status"], row["error"])
    return row


def strong_lora(folder: Path, name: str, seed: int = 0, scale: float = 0.6, text_encoders: bool = True) -> Path:
    """A LoRA on UNet attention layers (+ both text encoders), strong enough to change a 64 px image."""
    from tests.lora_lab import lora_files as lf

    mods = (lf.LINEAR, lf.LINEAR2) + ((lf.TE1, lf.TE2) if text_encoders else ())
    return lf.save(folder / f"{name}.safetensors",
                   lf.lora_tensors(seed=seed, rank=4, alpha=4.0, scale=scale, modules=mods),
                   {"ss_training_comment": "sks", "modelspec.trigger_phrase": "sks"})
