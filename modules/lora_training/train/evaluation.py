"""What the loop does between steps to show progress: the validation loss on held-out
images (fixed latents and noise, so the curve compares like with like) and sample images
from the current LoRA (or its EMA weights when `ema_for_samples`).

Both run on rank 0 alone with several processes, on the plain UNet (not the DDP wrapper: no
collectives), and leave the training RNG and the text encoders' mode as they found them.
"""
from __future__ import annotations

from typing import Any

from modules.lora_training.train import sampler, session


def validation_loss(tr: Any) -> float:
    import torch

    s = tr.s
    batches = []
    g = torch.Generator().manual_seed(tr.p.seed + 7)  # fixed latent draw for held-out images
    # trained text encoders: eval mode + forked RNG, so their dropout does not shift the run
    with sampler.isolated(s.te1, s.te2, device=s.device), torch.no_grad():
        for it in s.val_items:
            batches.append((s.latents([it], g), *s.conditioning([it])))
    return sampler.validation_loss(s.unet, s.noise_scheduler, batches,
                                   lambda *a, **kw: tr._loss(*a, model=s.unet, **kw), s.device, seed=tr.p.seed)


def render_samples(tr: Any) -> None:
    import torch

    s, p = tr.s, tr.p
    with tr.rx.sample_weights():
        embeds = s.sample_embeds
        if s.te_trained:  # the encoders changed: encode the prompts with the current LoRA
            with sampler.isolated(s.te1, s.te2, device=s.device), torch.no_grad():
                embeds = [session.encode_pair(s, q) for q in p.sample_prompts]
        paths = sampler.render_samples(s.unet, s.vae, s.scheduler_config, embeds, height=p.resolution,
                                       width=p.resolution, steps=p.sample_inference_steps, seed=p.sample_seed,
                                       device=s.device, weight_dtype=s.weight_dtype, out_dir=s.paths.samples,
                                       step=tr.step, should_stop=tr.job.should_stop)
    for path in paths:
        tr.job.preview(path)  # already written: recorded as a 'preview' artifact
