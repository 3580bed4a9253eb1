"""One diffusion training loss and one optimizer step, shared by the loop, the validation
and the benches (bench/lora_realsize_bench.py trains the real-size SDXL UNet through them).

Epsilon / v-prediction target from the scheduler config, optional noise offset, optional
min-SNR-gamma weighting (Hang et al. 2023). All randomness comes from the generator passed
in, so a run (and a resumed run) is reproducible and validation uses fixed noise.
"""
from __future__ import annotations

from typing import Any


def diffusion_loss(unet: Any, scheduler: Any, latents, embeds, pooled, add_time_ids, gen, *,
                   noise_offset: float = 0.0, min_snr_gamma: float = 0.0, timesteps=None, noise=None,
                   autocast_dtype=None, weight_dtype=None, keep=None):
    """Mean loss of a batch. `keep` (a slice) trains only those rows of it after drawing
    every random number for the whole batch: with several processes each rank draws the
    global batch's noise and keeps its shard, so N ranks x batch b train exactly what one
    process x batch N*b does."""
    import torch
    import torch.nn.functional as F

    device = latents.device
    bsz = latents.shape[0]
    if noise is None:
        noise = torch.randn(latents.shape, generator=gen, dtype=torch.float32).to(device)
        if noise_offset > 0:
            noise = noise + noise_offset * torch.randn((bsz, latents.shape[1], 1, 1), generator=gen).to(device)
    if timesteps is None:
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (bsz,), generator=gen)
    timesteps = timesteps.to(device).long()
    if keep is not None:
        latents, noise, timesteps = latents[keep], noise[keep], timesteps[keep]
        embeds, pooled, add_time_ids = embeds[keep], pooled[keep], add_time_ids[keep]
    noisy = scheduler.add_noise(latents.float(), noise, timesteps)
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents.float(), noise, timesteps)
    else:
        target = noise
    unet_dtype = weight_dtype or torch.float32  # dtype of the frozen base weights
    with torch.autocast(device_type=device.type if device.type != "mps" else "cpu",
                        dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        pred = unet(noisy.to(unet_dtype), timesteps, encoder_hidden_states=embeds.to(unet_dtype),
                    added_cond_kwargs={"text_embeds": pooled.to(unet_dtype), "time_ids": add_time_ids.to(unet_dtype)},
                    return_dict=False)[0]
    loss = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    if min_snr_gamma > 0:
        from diffusers.training_utils import compute_snr

        snr = compute_snr(scheduler, timesteps)
        weight = torch.clamp(snr, max=min_snr_gamma) / snr
        if scheduler.config.prediction_type == "v_prediction":
            weight = torch.clamp(snr, max=min_snr_gamma) / (snr + 1)
        loss = loss * weight.to(loss.device)
    return loss.mean()


def optimizer_step(opt: Any, sched: Any, scaler: Any, trainable: list, max_grad_norm: float) -> None:
    """Unscale, clip (foreach: one kernel launch for all LoRA grads), step, schedule, zero."""
    import torch

    if max_grad_norm > 0:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm, foreach=True)
    scaler.step(opt)
    scaler.update()
    sched.step()
    opt.zero_grad(set_to_none=True)
