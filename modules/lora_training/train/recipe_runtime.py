"""The training recipe inside the loop: one object the trainer calls at four points, so the
loop itself stays plain.

- `micro_loss(items, micro)`: the loss of one micro-batch with this step's captions
  (captions_runtime), loss mask (masks), loss/noise variants (recipe_loss) and, when
  regularisation images are given, + prior_loss_weight * the loss of as many reg images
  (DreamBooth prior preservation; reg draws come from a generator seeded per micro-batch,
  so the run's own noise stream is the same with or without them);
- `after_step(step)`: the EMA update;
- `state()` / `load_state()`: what exact resume needs (the EMA shadow; everything else here
  is stateless by construction);
- `save_ema()` and `sample_weights()`: the `<name>-ema.safetensors` file and samples
  rendered with the EMA weights when asked.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from modules.lora_training.train import captions_runtime, concepts, masks
from modules.lora_training.train import ema as ema_mod
from modules.lora_training.train.recipe_loss import Recipe


class RecipeRuntime:
    def __init__(self, trainer: Any) -> None:
        self.t = trainer
        self.p = trainer.p
        self.recipe = Recipe.from_params(self.p)
        self.ema = ema_mod.maybe(trainer.trainable, self.p)
        s = trainer.s
        groups = concepts.describe_concepts(s.train_items)
        if len(groups) > 1 or s.reg_items or self.p.masked_loss or any(g["repeats"] > 1 for g in groups.values()):
            shown = ", ".join(f"{k or '.'} x{v['repeats']} ({v['images']})" for k, v in groups.items())
            trainer.log("lora.log.recipe_data", concepts=shown, reg=len({i.path for i in s.reg_items}),
                        masks=len({i.path for i in s.train_items if i.mask}))

    def micro_loss(self, items: list, micro: int, keep=None):
        import torch

        t, s, p = self.t, self.t.s, self.p
        latents = s.latents(items, t.gen)
        mask = masks.batch_mask(items, s.latent_stats, latents.shape) if p.masked_loss else None
        caps = captions_runtime.step_captions(items, p, micro)
        loss = t._loss(latents, *s.conditioning(items, caps), t.gen, noise_offset=p.noise_offset,
                       min_snr_gamma=p.min_snr_gamma, recipe=self.recipe, mask=mask, keep=keep)
        if s.reg_items:
            g = torch.Generator().manual_seed(p.seed * 1_000_003 + 17 + micro)
            reg = [s.reg_items[i] for i in concepts.reg_indices(len(s.reg_items), micro, len(items), p.seed)]
            rlat = s.latents(reg, g)
            rmask = masks.batch_mask(reg, s.latent_stats, rlat.shape) if p.masked_loss else None
            rloss = t._loss(rlat, *s.conditioning(reg, captions_runtime.step_captions(reg, p, -1 - micro)), g,
                            noise_offset=p.noise_offset, min_snr_gamma=p.min_snr_gamma, recipe=self.recipe,
                            mask=rmask, keep=keep)
            loss = loss + p.prior_loss_weight * rloss
        return loss

    def after_step(self, step: int) -> None:
        if self.ema is not None:
            self.ema.update(step)

    def state(self) -> dict:
        return {"adapter_ema": self.ema.state_dict()} if self.ema is not None else {}

    def load_state(self, state: dict) -> None:
        if self.ema is None:
            return
        if "adapter_ema" in state:
            self.ema.load_state_dict(state["adapter_ema"])
        else:  # a state saved without EMA: start the average from the resumed weights
            self.ema = ema_mod.maybe(self.t.trainable, self.p)

    def sample_weights(self):
        return self.ema.applied() if self.ema is not None and self.p.ema_for_samples else nullcontext()

    def save_ema(self, meta: dict) -> dict:
        """`<name>-ema.safetensors` beside the LoRA, same kohya format."""
        if self.ema is None:
            return {}
        from modules.lora_training.train import export_kohya as ex

        t = self.t
        with self.ema.applied():
            tensors = ex.kohya_state(t._models(), self.p.alpha)  # every network type
        meta = {**meta, "ss_ema": "true", "ss_ema_decay": str(self.p.ema_decay),
                "ss_ema_start_step": str(self.p.ema_start_step)}
        out = ex.save_kohya(t.s.paths.loras / f"{self.p.name}-ema.safetensors", tensors, meta)
        t.job.artifact(out, "lora_ema")
        return {"lora_ema": str(out)}


def metadata(p: Any, items: list, reg_items: list) -> dict[str, str]:
    """kohya `ss_*` keys of the recipe, for export_kohya.metadata() to merge (the per-dataset
keys, tag frequency and buckets, come from export_kohya.dataset_info)."""
    import json

    return {
        "ss_caption_dropout_rate": str(p.caption_dropout), "ss_shuffle_caption": str(p.shuffle_tags),
        "ss_keep_tokens": str(p.keep_tokens), "ss_prior_loss_weight": str(p.prior_loss_weight),
        "ss_num_reg_images": str(len({i.path for i in reg_items})), "ss_masked_loss": str(p.masked_loss),
        "ss_loss_type": p.loss_type, "ss_huber_schedule": p.huber_schedule, "ss_huber_c": str(p.huber_c),
        "ss_huber_scale": str(p.huber_scale), "ss_debiased_estimation": str(p.debiased_estimation),
        # kohya writes "None" for these when off
        "ss_multires_noise_iterations": str(p.multires_noise_iterations or "None"),
        "ss_multires_noise_discount": str(p.multires_noise_discount), "ss_ip_noise_gamma": str(p.ip_noise_gamma or "None"),
        "ss_min_timestep": str(p.min_timestep), "ss_max_timestep": str(p.max_timestep),
        "ss_loraplus_lr_ratio": str(p.loraplus_ratio), "ss_block_lr": json.dumps(list(p.unet_block_lr)),
        "ss_ema": str(p.ema).lower(), "ss_ema_decay": str(p.ema_decay),
    }
