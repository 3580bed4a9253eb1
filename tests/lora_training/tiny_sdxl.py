"""A tiny but real SDXL pipeline saved as a diffusers folder, for tests and the bench.

Same layout and classes as stabilityai/stable-diffusion-xl-base-1.0 (UNet with the
`text_time` added condition, CLIPTextModel + CLIPTextModelWithProjection, AutoencoderKL
with a scale factor of 8, two CLIP tokenizers, an Euler scheduler), only with a few
thousand parameters per part, so the real loading code (`from_pretrained`) runs on CPU CI.
The tokenizers are BPE models trained on the spot with `tokenizers` and saved as the
vocab.json + merges.txt pair CLIPTokenizer reads.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

CORPUS = [
    "a photo of a red cat sitting on a blue chair", "a painting of a dog in a green field",
    "portrait of a woman with black hair, studio light", "a landscape with mountains and a lake at sunset",
    "sks person smiling, close up photo", "a yellow car on a city street at night",
    "an orange fruit on a white table", "a small house in the forest, watercolor",
]
TE_HIDDEN = 32  # each encoder; the UNet's cross_attention_dim is the concatenation (64)
TIME_EMBED = 8


def _train_tokenizer(folder: Path, vocab_size: int = 300) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<|endoftext|>", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|startoftext|>", "<|endoftext|>"],
                                  end_of_word_suffix="</w>", initial_alphabet=list("abcdefghijklmnopqrstuvwxyz,.!"))
    tok.train_from_iterator(CORPUS * 4, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.model.save(str(folder))  # vocab.json + merges.txt


def _tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        _train_tokenizer(Path(tmp))
        tk = CLIPTokenizer.from_pretrained(tmp, model_max_length=77)
    tk.save_pretrained(str(folder))
    return tk


def make_tiny_sdxl(path: str | Path, seed: int = 0) -> Path:
    """Build and save a tiny SDXL pipeline at `path` (a diffusers folder). Returns the path."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    path = Path(path)
    torch.manual_seed(seed)
    tok1 = _tokenizer(path / "_tok1")
    tok2 = _tokenizer(path / "_tok2")
    vocab = len(tok1)
    te_cfg = dict(vocab_size=vocab, hidden_size=TE_HIDDEN, intermediate_size=37, num_hidden_layers=3,
                  num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu",
                  bos_token_id=tok1.bos_token_id, eos_token_id=tok1.eos_token_id, pad_token_id=tok1.pad_token_id)
    te1 = CLIPTextModel(CLIPTextConfig(**te_cfg))
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**te_cfg, projection_dim=TE_HIDDEN))
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
        use_linear_projection=True, transformer_layers_per_block=(1, 2), norm_num_groups=8,
        addition_embed_type="text_time", addition_time_embed_dim=TIME_EMBED,
        projection_class_embeddings_input_dim=6 * TIME_EMBED + TE_HIDDEN,
        cross_attention_dim=2 * TE_HIDDEN)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8,
        block_out_channels=(8, 16, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok1,
                                     tokenizer_2=tok2, unet=unet, scheduler=scheduler)
    pipe.save_pretrained(str(path))
    for tmp in ("_tok1", "_tok2"):
        for f in (path / tmp).iterdir():
            f.unlink()
        (path / tmp).rmdir()
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
