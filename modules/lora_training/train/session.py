"""Everything a run sets up before its first step: folders, data, the base model on the
right devices, the latent/text caches, and the functions that turn a batch of items into
(latents, text embeddings, pooled embeddings, add_time_ids).

Memory discipline: the VAE and text encoders go to the device only while they are needed
(caching, or every step when not cached / text encoders trained) and back to the CPU after;
with everything cached and sampling pre-encoded, the text encoders are dropped entirely.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modules.lora_training.train import dataset as ds
from modules.lora_training.train.latent_cache import FeatureCache
from core.sdxl import BaseRef, encode_prompt, load_pipeline, resolve_base, time_ids, tokenize


@dataclass
class Paths:
    project: Path
    data: Path
    cache: Path
    checkpoints: Path
    samples: Path
    loras: Path

    @classmethod
    def build(cls, params: Any, ctx: Any) -> "Paths":
        from core.paths import name_inside

        root = name_inside(ctx.path("LORA_PROJECTS_DIR"), params.project, "project")
        name_inside(ctx.path("LORAS_DIR"), f"{params.name}.safetensors", "output_name")  # refused before training
        data = Path(params.data_dir).expanduser() if params.data_dir else root / "data"
        return cls(root, data, root / "cache", root / "checkpoints", root / "samples", ctx.path("LORAS_DIR"))


@dataclass
class Session:
    params: Any
    paths: Paths
    base: BaseRef
    train_items: list
    val_items: list
    device: str
    weight_dtype: Any
    unet: Any = None
    vae: Any = None
    te1: Any = None
    te2: Any = None
    tokenizers: tuple = ()
    noise_scheduler: Any = None
    scheduler_config: dict = field(default_factory=dict)
    cache: FeatureCache | None = None
    latent_stats: dict = field(default_factory=dict)  # item path -> {"mean", "std"} (cached mode)
    text: dict = field(default_factory=dict)  # caption -> {"embeds", "pooled"} (cached mode)
    sample_embeds: list = field(default_factory=list)

    @property
    def te_trained(self) -> bool:
        return bool(self.params.train_text_encoder)

    # -- conditioning -------------------------------------------------------------
    def latents(self, items: list, gen: Any):
        """Latents of a batch: mean + std * eps (eps from `gen`), times the VAE scaling factor."""
        import torch

        if self.params.cache_latents:
            stats = [self.latent_stats[it.path] for it in items]
            mean = torch.stack([s["mean"] for s in stats])
            std = torch.stack([s["std"] for s in stats])
        else:
            with torch.no_grad():
                px = torch.stack([ds.load_pixels(it) for it in items]).to(self.device, torch.float32)
                dist = self.vae.encode(px).latent_dist
                mean, std = dist.mean.float().cpu(), dist.std.float().cpu()
        eps = torch.randn(mean.shape, generator=gen)
        return ((mean + std * eps) * self.vae.config.scaling_factor).to(self.device)

    def conditioning(self, items: list):
        """(embeds, pooled, add_time_ids) of a batch; with grads when the encoders train."""
        import torch

        tids = time_ids([it.original_hw for it in items], [it.crop_yx for it in items],
                        [it.target_hw for it in items], device=self.device)
        if self.te_trained or not self.text:
            emb, pooled = encode_prompt((self.te1, self.te2), tokenize(self.tokenizers, [it.caption for it in items]))
            return emb, pooled, tids
        emb = torch.stack([self.text[it.caption]["embeds"] for it in items]).to(self.device)
        pooled = torch.stack([self.text[it.caption]["pooled"] for it in items]).to(self.device)
        return emb, pooled, tids


def open_session(params: Any, ctx: Any, job: Any) -> Session:
    """Folders, data scan and split, base model reference (no weights loaded yet)."""
    paths = Paths.build(params, ctx)
    skipped: list = []
    items = ds.scan(paths.data, params.resolution, params.trigger_word, skipped)
    for path, why in skipped:
        job.warning(job.t("lora.log.skipped", path=path, reason=why.render(job.t)))
    train_items, val_items = ds.split_validation(items, params.validation_images, params.seed)
    base = resolve_base(params.base_model, ctx)
    device = ctx.models.device
    weight_dtype = ctx.models.dtype(params.precision)
    return Session(params, paths, base, train_items, val_items, device, weight_dtype)


def load_models(s: Session, ctx: Any, job: Any) -> None:
    """Load SDXL (registered with the model manager under the job), place each part."""
    import torch
    from diffusers import DDPMScheduler

    ctx.models.unload_others(job.id)
    pipe = ctx.models.load(job.id, f"lora.sdxl:{s.base.ref}", lambda: load_pipeline(s.base, ctx, torch.float32))
    s.unet, s.vae, s.te1, s.te2 = pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2
    s.tokenizers = (pipe.tokenizer, pipe.tokenizer_2)
    s.scheduler_config = dict(pipe.scheduler.config)
    s.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    s.vae.requires_grad_(False).eval()  # fp32: the SDXL VAE overflows in fp16
    s.te1.requires_grad_(False).eval()
    s.te2.requires_grad_(False).eval()
    s.unet.to(s.device)
    if s.weight_dtype != torch.float32:
        s.unet.to(dtype=s.weight_dtype)
    if s.te_trained:
        s.te1.to(s.device, dtype=s.weight_dtype).train()
        s.te2.to(s.device, dtype=s.weight_dtype).train()
    if not s.params.cache_latents:
        s.vae.to(s.device)


def fill_caches(s: Session, job: Any) -> bool:
    """Cache latents (and text embeddings when the encoders are frozen). False if stopped."""
    import torch

    p = s.params
    all_items = s.train_items + s.val_items
    s.cache = FeatureCache(s.paths.cache, s.base.fingerprint + f":{p.resolution}")
    if p.cache_latents:
        s.vae.to(s.device)
        stats = s.cache.latents(all_items, s.vae, s.device, job.should_stop,
                                lambda d, t: job.progress(d, t, job.t("lora.progress.caching")))
        s.vae.to("cpu")
        if stats is None:
            return False
        s.latent_stats = {it.path: st for it, st in zip(all_items, stats)}
    prompts = list(p.sample_prompts) if p.sample_every_steps else []
    if not s.te_trained:
        s.te1.to(s.device)
        s.te2.to(s.device)
        if p.cache_latents:
            text = s.cache.text([it.caption for it in all_items], s.tokenizers, (s.te1, s.te2), job.should_stop)
            if text is None:
                return False
            s.text = text
        with torch.no_grad():
            s.sample_embeds = [encode_pair(s, q) for q in prompts]
        if p.cache_latents:  # nothing needs the encoders any more: free them
            s.te1.to("cpu")
            s.te2.to("cpu")
        else:
            s.te1.to(s.device, dtype=s.weight_dtype)
            s.te2.to(s.device, dtype=s.weight_dtype)
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return True


def encode_pair(s: Session, prompt: str) -> tuple:
    """(embeds, pooled, negative embeds, negative pooled) of a sample prompt."""
    emb, pooled = encode_prompt((s.te1, s.te2), tokenize(s.tokenizers, [prompt]))
    nemb, npooled = encode_prompt((s.te1, s.te2), tokenize(s.tokenizers, [""]))
    return emb.detach(), pooled.detach(), nemb.detach(), npooled.detach()
