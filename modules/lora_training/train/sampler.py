"""Sample images and validation loss during training, without disturbing the run.

Both run under `torch.random.fork_rng` with the UNet in eval mode (LoRA dropout off), so a
run with samples/validation produces exactly the same weights as one without, and a resumed
run matches an uninterrupted one. Samples use a fixed seed per prompt (comparable across
steps); validation uses fixed timesteps and fixed noise per held-out image (comparable
across runs with the same data).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

VAL_TIMESTEP_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)


@contextmanager
def isolated(*models: Any, device: str = "cpu"):
    """Eval mode + forked RNG; training mode and RNG restored after."""
    import torch

    modes = [(m, m.training) for m in models if m is not None]
    devices = list(range(torch.cuda.device_count())) if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        try:
            for m, _ in modes:
                m.eval()
            yield
        finally:
            for m, was in modes:
                m.train(was)


def render_samples(unet: Any, vae: Any, scheduler_config: dict, prompt_embeds: list[tuple], *,
                   height: int, width: int, steps: int, seed: int, device: str, weight_dtype,
                   out_dir: Path, step: int, should_stop: Callable[[], bool]) -> list[Path]:
    """Denoise each pre-encoded prompt (embeds, pooled, neg_embeds, neg_pooled) to a PNG."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=None, text_encoder_2=None, tokenizer=None,
                                     tokenizer_2=None, unet=unet,
                                     scheduler=EulerDiscreteScheduler.from_config(scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    vae_device = next(vae.parameters()).device
    vae.to(device)
    try:
        with isolated(unet, device=device), torch.no_grad():
            for i, (emb, pooled, nemb, npooled) in enumerate(prompt_embeds):
                if should_stop():
                    break
                g = torch.Generator("cpu").manual_seed(seed + i)
                image = pipe(prompt_embeds=emb.to(device, weight_dtype), pooled_prompt_embeds=pooled.to(device, weight_dtype),
                             negative_prompt_embeds=nemb.to(device, weight_dtype),
                             negative_pooled_prompt_embeds=npooled.to(device, weight_dtype),
                             height=height, width=width, num_inference_steps=steps, generator=g,
                             guidance_scale=5.0).images[0]
                p = out_dir / f"step_{step:07d}_p{i}.png"
                tmp = p.with_name("." + p.name)
                image.save(tmp, format="PNG")
                tmp.replace(p)
                paths.append(p)
    finally:
        vae.to(vae_device)
    return paths


def validation_loss(unet: Any, noise_scheduler: Any, batches: list[tuple], loss_fn: Callable, device: str,
                    seed: int = 0) -> float:
    """Mean loss over held-out batches x fixed timesteps, with noise seeded per (image, t)."""
    import torch

    n_t = noise_scheduler.config.num_train_timesteps
    total, count = 0.0, 0
    with isolated(unet, device=device), torch.no_grad():
        for bi, (latents, embeds, pooled, tids) in enumerate(batches):
            for ti, frac in enumerate(VAL_TIMESTEP_FRACTIONS):
                g = torch.Generator().manual_seed(seed + 1000 * bi + ti)
                noise = torch.randn(latents.shape, generator=g).to(latents.device)
                t = torch.full((latents.shape[0],), int(frac * (n_t - 1)), dtype=torch.long)
                total += float(loss_fn(latents, embeds, pooled, tids, g, timesteps=t, noise=noise))
                count += 1
    return total / max(count, 1)
