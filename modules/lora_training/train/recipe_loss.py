"""Loss and noise variants of the training recipe (issue 14), in kohya sd-scripts' terms.

- timestep range: t drawn uniformly in [min_timestep, max_timestep) (kohya's exclusive
  upper bound); min = max trains that single timestep;
- multires (pyramid) noise: kohya's `pyramid_noise_like` - upsampled coarser noise added
  with weight discount**i, rescaled to unit std;
- input perturbation (Ning et al. 2023, kohya `ip_noise_gamma`): the UNet input is noised
  with noise + gamma * extra noise while the target stays the plain noise;
- loss type l2 / l1 / pseudo-Huber / smooth-L1 with kohya's `huber_schedule`
  (constant, exponential, snr) and `huber_c`; `huber_scale` multiplies the threshold;
- debiased estimation (kohya `debiased_estimation_loss`): per-sample weight 1/sqrt(SNR)
  (1/(SNR+1) for v-prediction), SNR capped at 1000.

Every draw comes from the run's generator, and with every option off the draws are exactly
those of the plain loop (same calls, same order), so defaults leave a run bit-identical.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Recipe:
    loss_type: str = "l2"
    huber_schedule: str = "snr"
    huber_c: float = 0.1
    huber_scale: float = 1.0
    debiased: bool = False
    multires_iterations: int = 0
    multires_discount: float = 0.3
    ip_noise_gamma: float = 0.0
    min_timestep: int = 0
    max_timestep: int = 1000

    @classmethod
    def from_params(cls, p: Any) -> "Recipe":
        return cls(p.loss_type, p.huber_schedule, p.huber_c, p.huber_scale, p.debiased_estimation,
                   p.multires_noise_iterations, p.multires_noise_discount, p.ip_noise_gamma,
                   p.min_timestep, p.max_timestep)


PLAIN = Recipe()


def sample_timesteps(r: Recipe, bsz: int, num_train: int, gen: Any):
    import torch

    lo, hi = r.min_timestep, min(r.max_timestep, num_train)
    if lo >= hi:  # a single timestep (kohya does the same when min == max)
        return torch.full((bsz,), min(lo, num_train - 1), dtype=torch.long)
    return torch.randint(lo, hi, (bsz,), generator=gen)


def pyramid_noise(noise, gen: Any, iterations: int, discount: float):
    """kohya's pyramid_noise_like, drawing from `gen` (CPU tensors)."""
    import torch
    import torch.nn.functional as F

    b, c, h, w = noise.shape
    for i in range(iterations):
        r = float(torch.rand((), generator=gen)) * 2 + 2  # rather than always 2x
        hn, wn = max(1, int(h / r ** i)), max(1, int(w / r ** i))
        coarse = torch.randn((b, c, hn, wn), generator=gen, dtype=noise.dtype)
        noise = noise + F.interpolate(coarse, size=(h, w), mode="bilinear") * discount ** i
        if hn == 1 or wn == 1:
            break
    return noise / noise.std()


def huber_threshold(r: Recipe, timesteps, scheduler: Any):
    """Per-sample c of kohya's get_huber_threshold."""
    import torch

    t = timesteps.cpu()
    if r.huber_schedule == "exponential":
        alpha = -math.log(r.huber_c) / scheduler.config.num_train_timesteps
        c = torch.exp(-alpha * t.float())
    elif r.huber_schedule == "snr":
        ac = scheduler.alphas_cumprod.index_select(0, t).float()
        sigmas = ((1.0 - ac) / ac) ** 0.5
        c = (1 - r.huber_c) / (1 + sigmas) ** 2 + r.huber_c
    else:
        c = torch.full(t.shape, r.huber_c)
    return (c * r.huber_scale).to(timesteps.device)


def elementwise_loss(pred, target, r: Recipe, timesteps, scheduler: Any):
    import torch
    import torch.nn.functional as F

    if r.loss_type == "l2":
        return F.mse_loss(pred, target, reduction="none")
    if r.loss_type == "l1":
        return F.l1_loss(pred, target, reduction="none")
    c = huber_threshold(r, timesteps, scheduler).view(-1, 1, 1, 1)
    root = torch.sqrt((pred - target) ** 2 + c ** 2) - c
    return 2 * c * root if r.loss_type == "huber" else 2 * root


def debiased_weight(scheduler: Any, timesteps, v_prediction: bool):
    import torch
    from diffusers.training_utils import compute_snr

    snr = torch.clamp(compute_snr(scheduler, timesteps), max=1000.0)
    return 1.0 / (snr + 1) if v_prediction else 1.0 / torch.sqrt(snr)
