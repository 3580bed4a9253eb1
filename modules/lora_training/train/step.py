"""One diffusion training loss and one optimizer step, shared by the loop, the validation
and the benches (bench/lora_realsize_bench.py trains the real-size SDXL UNet through them).

Epsilon / v-prediction target from the scheduler config, optional noise offset, optional
min-SNR-gamma weighting (Hang et al. 2023), the recipe's loss/noise variants
(train/recipe_loss.py) and an optional loss mask at latent size (kohya's masked loss:
the element-wise loss times the mask, then the mean). All randomness comes from the generator passed
in, so a run (and a resumed run) is reproducible and validation uses fixed noise.
"""
from __future__ import annotations

from typing import Any


def diffusion_loss(unet: Any, scheduler: Any, latents, embeds, pooled, add_time_ids, gen, *,
                   noise_offset: float = 0.0, min_snr_gamma: float = 0.0, timesteps=None, noise=None,
                   autocast_dtype=None, weight_dtype=None, recipe=None, mask=None, keep=None):
    """Mean loss of a batch. `keep` (a slice) trains only those rows of it after drawing
    every random number for the whole batch: with several processes each rank draws the
    global batch's noise and keeps its shard, so N ranks x batch b train exactly what one
    process x batch N*b does."""
    import torch

    from modules.lora_training.train import recipe_loss as rl

    r = recipe or rl.PLAIN
    device = latents.device
    bsz = latents.shape[0]
    if noise is None:
        noise = torch.randn(latents.shape, generator=gen, dtype=torch.float32)
        if noise_offset > 0:
            noise = noise + noise_offset * torch.randn((bsz, latents.shape[1], 1, 1), generator=gen)
        if r.multires_iterations:
            noise = rl.pyramid_noise(noise, gen, r.multires_iterations, r.multires_discount)
        noise = noise.to(device)
    if timesteps is None:
        timesteps = rl.sample_timesteps(r, bsz, scheduler.config.num_train_timesteps, gen)
    timesteps = timesteps.to(device).long()
    noise_in = noise
    if r.ip_noise_gamma > 0:  # perturbed input, unperturbed target
        noise_in = noise + r.ip_noise_gamma * torch.randn(latents.shape, generator=gen).to(device)
    if keep is not None:
        latents, noise, noise_in, timesteps = latents[keep], noise[keep], noise_in[keep], timesteps[keep]
        embeds, pooled, add_time_ids = embeds[keep], pooled[keep], add_time_ids[keep]
        mask = mask[keep] if mask is not None else None
    noisy = scheduler.add_noise(latents.float(), noise_in, timesteps)
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
    elem = rl.elementwise_loss(pred.float(), target.float(), r, timesteps, scheduler)
    if mask is not None:
        elem = elem * mask.to(elem.device, elem.dtype)
    loss = elem.mean(dim=(1, 2, 3))
    if min_snr_gamma > 0:
        from diffusers.training_utils import compute_snr

        snr = compute_snr(scheduler, timesteps)
        # zero terminal SNR makes snr 0 at the last timestep: weight 0 there, never 0/0
        weight = torch.clamp(snr, max=min_snr_gamma) / snr.clamp(min=1e-8)
        if scheduler.config.prediction_type == "v_prediction":
            weight = torch.clamp(snr, max=min_snr_gamma) / (snr + 1)
        loss = loss * weight.to(loss.device)
    if r.debiased:
        loss = loss * rl.debiased_weight(scheduler, timesteps, scheduler.config.prediction_type == "v_prediction"
                                         ).to(loss.device)
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
