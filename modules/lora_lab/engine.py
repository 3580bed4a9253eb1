"""LoRA Lab engine: the SDXL base held by the model manager, LoRAs patched into it, txt2img.

The base is loaded through `ctx.models` under the owner "lora_lab" and kept between jobs
(a second generation starts at once); the LoRA trainer calls `unload_others` before it
loads SDXL, so the two never hold two copies. Loading a base first drops whatever other
tabs keep cached and any other base this tab kept. A job never leaves a LoRA in the kept
base: the patcher restores the exact original weights in a `finally`.

Seeds are drawn on CPU generators (one per image: seed, seed+1, ...), so an image is the
same on any device for the same dtype, and a grid cell matches a single generation.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from core.errors import StudioError

OWNER = "lora_lab"
# SDXL latent -> RGB linear map for cheap live previews (the factors ComfyUI uses for SDXL)
LATENT_RGB = ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362),
              (-0.3165, -0.2492, -0.2188))
LATENT_BIAS = (0.1084, -0.0175, -0.0011)
_STEP_FILE = re.compile(r"^(?P<name>.+)-(?P<step>\d{4,})$")


@dataclass
class Base:
    pipe: Any
    name: str  # what the `Model:` field shows
    ref: str
    scheduler_config: dict  # the base's own, every sampler is built from it


def resolve_lora(ctx: Any, ref: str) -> Path:
    """A LoRA path as typed: an existing path, else a name (with or without .safetensors) in LORAS_DIR."""
    p = Path(ref.strip()).expanduser()
    candidates = [p] if p.is_absolute() else [p, ctx.path("LORAS_DIR") / p]
    for c in list(candidates):
        if c.suffix.lower() != ".safetensors":
            candidates.append(c.with_name(c.name + ".safetensors"))
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise StudioError("lab.lora_missing", path=ref)


def lora_label(path: Path) -> str:
    """Row label: 'name' for a final file, 'name @ 500' for a `name-000500` step file."""
    m = _STEP_FILE.match(path.stem)
    return f"{m.group('name')} @ {int(m.group('step'))}" if m else path.stem


def load_base(ctx: Any, job: Any, base_model: str, precision: str) -> Base:
    """The base for this tab, loaded once and kept by the model manager."""
    from core.sdxl import load_pipeline, resolve_base

    ref = resolve_base(base_model, ctx)
    dtype = ctx.models.dtype(precision)
    key = f"lab.sdxl:{ref.ref}:{ref.fingerprint}:{dtype}:{ctx.models.device}"
    if (OWNER, key) not in ctx.models.loaded():
        ctx.models.release(OWNER, include_kept=True)  # another base this tab kept
        ctx.models.unload_others(OWNER)  # what other tabs keep leaves the device first
        job.info(job.t("lab.log.loading", name=ref.ref, device=ctx.models.device, dtype=str(dtype)))

    def loader() -> Base:
        pipe = load_pipeline(ref, ctx, dtype)
        pipe.to(ctx.models.device)
        pipe.set_progress_bar_config(disable=True)
        name = Path(ref.ref).stem if ref.kind == "file" else Path(ref.ref).name
        return Base(pipe, name, ref.ref, dict(pipe.scheduler.config))

    return ctx.models.load(OWNER, key, loader, keep=True)


def new_seed(seed: int) -> int:
    return seed if seed >= 0 else random.randint(0, 2**31 - 1)


def latent_preview(latents: Any, width: int) -> Any:
    """A cheap RGB picture of the first latent (no VAE decode), resized to at most 512 px wide."""
    import torch
    from PIL import Image

    lat = latents[0].detach().float().cpu()
    m = torch.tensor(LATENT_RGB)
    rgb = torch.einsum("chw,cr->hwr", lat[:4], m) + torch.tensor(LATENT_BIAS)
    arr = ((rgb.clamp(-1, 1) + 1) * 127.5).byte().numpy()
    im = Image.fromarray(arr, "RGB")
    w = min(512, width)
    return im.resize((w, max(1, round(w * im.height / im.width))), Image.Resampling.BILINEAR)


def render(base: Base, job: Any, p: Any, prompt: str, seeds: list[int], *, done: int, total: int,
           desc: str, on_preview: Callable[[Any], None] | None = None) -> list | None:
    """Denoise `len(seeds)` images of `prompt`; None when Stop was pressed (within one step)."""
    import torch

    from modules.lora_lab.samplers import make_scheduler

    pipe = base.pipe
    pipe.scheduler = make_scheduler(p.sampler, base.scheduler_config)
    every = int(p.preview_every)

    def on_step(pipeline: Any, i: int, _t: Any, kw: dict) -> dict:
        job.progress(done + i + 1, total, desc)
        if job.should_stop():
            pipeline._interrupt = True  # diffusers skips the remaining steps
        elif every and (i + 1) % every == 0 and i + 1 < p.steps and on_preview is not None:
            on_preview(latent_preview(kw["latents"], p.width))
        return {}

    if job.should_stop():
        return None
    gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    with torch.inference_mode():
        out = pipe(prompt=prompt, negative_prompt=p.negative_prompt or None, num_inference_steps=p.steps,
                   guidance_scale=p.cfg, width=p.width, height=p.height, num_images_per_prompt=len(seeds),
                   generator=gens, callback_on_step_end=on_step, callback_on_step_end_tensor_inputs=["latents"])
    if job.should_stop():
        return None
    return list(out.images)


def fields(p: Any, base: Base, seed: int) -> dict:
    """The `Key: value` fields of the infotext, in A1111's order."""
    return {"Steps": p.steps, "Sampler": p.sampler, "CFG scale": float(p.cfg), "Seed": int(seed),
            "Size": f"{p.width}x{p.height}", "Model": base.name}


def output_dir(ctx: Any, job: Any, requested: str) -> Path:
    """Where a job writes: OUTPUTS_DIR/lora_lab/<job id>, or the folder asked (relative = under OUTPUTS_DIR)."""
    root = ctx.path("OUTPUTS_DIR")
    if requested:
        p = Path(requested).expanduser()
        folder = p if p.is_absolute() else root / p
    else:
        folder = root / "lora_lab" / job.id
    folder.mkdir(parents=True, exist_ok=True)
    return folder
