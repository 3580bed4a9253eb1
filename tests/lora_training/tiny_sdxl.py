"""A tiny but real SDXL pipeline saved as a diffusers folder, for tests and the bench.

Same layout and classes as stabilityai/stable-diffusion-xl-base-1.0 (UNet with the
`text_time` added condition, CLIPTextModel + CLIPTextModelWithProjection, AutoencoderKL
with a scale factor of 8, two CLIP tokenizers, an Euler scheduler), only with a few
thousand parameters per part, so the real loading code (`from_pretrained`) runs on CPU CI.
The tokenizers are the real CLIP BPE ones (core/sdxl/tokenizers.py); the configs are the
shipped SDXL ones with small dimensions (see `make_tiny_sdxl`).
"""
from __future__ import annotations

import json
from pathlib import Path

TE_HIDDEN = 32  # each encoder; the UNet's cross_attention_dim is the concatenation (64)
TIME_EMBED = 8


def make_tiny_sdxl(path: str | Path, seed: int = 0) -> Path:
    """Build and save a tiny SDXL pipeline at `path` (a diffusers folder). Returns the path.

    Every component config is the shipped SDXL base 1.0 one (core/sdxl/configs) with small
    widths/depths, and the tokenizers are the real CLIP ones: exactly what the single-file
    loader rebuilds from an SGM file's shapes, so a folder and its single file are one model."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from core.sdxl.single_file import scheduler_config, shipped_config
    from core.sdxl.tokenizers import sdxl_tokenizers

    path = Path(path)
    torch.manual_seed(seed)
    tok1, tok2 = sdxl_tokenizers()
    small = dict(hidden_size=TE_HIDDEN, intermediate_size=37, num_hidden_layers=3, num_attention_heads=1,
                 projection_dim=TE_HIDDEN)
    te1 = CLIPTextModel(CLIPTextConfig(**dict(shipped_config("text_encoder"), **small)))
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**dict(shipped_config("text_encoder_2"), **small)))
    unet_cfg = {k: v for k, v in shipped_config("unet").items() if not k.startswith("_")}
    unet_cfg.update(sample_size=8, layers_per_block=2, block_out_channels=(32, 64),
                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(1, 1),
                    transformer_layers_per_block=(1, 2), addition_time_embed_dim=TIME_EMBED,
                    projection_class_embeddings_input_dim=6 * TIME_EMBED + TE_HIDDEN,
                    cross_attention_dim=2 * TE_HIDDEN)
    unet = UNet2DConditionModel(**unet_cfg)
    vae_cfg = {k: v for k, v in shipped_config("vae").items() if not k.startswith("_")}
    vae_cfg.update(layers_per_block=1, block_out_channels=(32, 32, 32, 32), sample_size=64)
    vae = AutoencoderKL(**vae_cfg)
    scheduler = EulerDiscreteScheduler.from_config(scheduler_config())
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok1,
                                     tokenizer_2=tok2, unet=unet, scheduler=scheduler)
    pipe.save_pretrained(str(path))
    (path / "TINY_SDXL.json").write_text(json.dumps({"seed": seed, "purpose": "tests"}), encoding="utf-8")
    return path


def make_images(folder: str | Path, n: int = 2, size: int = 64, captions: bool = True, seed: int = 0) -> list[Path]:
    """Write `n` small structured RGB PNGs (+ .txt captions) to `folder`."""
    import numpy as np
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        yy, xx = np.mgrid[0:size, 0:size] / size
        base = np.stack([np.sin(6 * xx + i), np.cos(5 * yy - i), xx * yy], -1)
        arr = ((base * 0.5 + 0.5) * 255 * 0.9 + rng.uniform(0, 25, base.shape)).clip(0, 255).astype("uint8")
        p = folder / f"img_{i:02d}.png"
        Image.fromarray(arr).save(p)
        if captions:
            p.with_suffix(".txt").write_text(f"sks, a photo of a red cat number {i}", encoding="utf-8")
        out.append(p)
    return out
