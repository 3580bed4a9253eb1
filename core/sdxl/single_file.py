"""Load one SGM/LDM single-file SDXL checkpoint (A1111/Forge, kohya, ComfyUI) fully offline.

The component configs are the published SDXL base 1.0 ones, shipped in `configs/`; the
dimensions that a file can change (channel widths, depths, transformer layers, context and
pooled widths, vocabulary and positions) are read from its tensor shapes, so a fine-tune of
any size in the SDXL layout loads with the same code. Two things shapes cannot tell are kept
from SDXL: attention heads of 64 channels and GroupNorm of 32 groups. Key conversion is
diffusers' own (`convert_ldm_unet_checkpoint`, `convert_ldm_vae_checkpoint`,
`convert_open_clip_checkpoint`); no hub access happens at any point.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.sdxl.detect import TE1, TE2, UNET, VAE

CONFIGS = Path(__file__).parent / "configs"
HEAD_DIM = 64


@lru_cache(maxsize=None)
def _shipped(name: str) -> str:
    return (CONFIGS / f"{name}.json").read_text(encoding="utf-8")


def shipped_config(name: str) -> dict:
    """A fresh copy of a shipped SDXL base component config (unet, vae, text_encoder, ...)."""
    return json.loads(_shipped(name))


def _heads(width: int) -> int:
    return max(1, width // HEAD_DIM)


def _count(shapes: dict, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in shapes if (m := rx.match(k))})


def unet_config(shapes: dict, pooled_dim: int) -> dict:
    """SDXL UNet config with the widths/depths of this file (`shapes`: key -> shape)."""
    c = shipped_config("unet")
    u = {k[len(UNET):]: v for k, v in shapes.items() if k.startswith(UNET)}
    n_in = _count(u, r"input_blocks\.(\d+)\.")
    levels, blocks = [[]], []
    for i in range(1, n_in):
        if f"input_blocks.{i}.0.op.weight" in u:
            levels.append([])
        else:
            levels[-1].append(i)
    widths, attn, depth = [], [], []
    for idx in levels:
        widths.append(u[f"input_blocks.{idx[0]}.0.out_layers.3.weight"][0])
        has_attn = f"input_blocks.{idx[0]}.1.proj_in.weight" in u
        attn.append(has_attn)
        depth.append(_count(u, rf"input_blocks\.{idx[0]}\.1\.transformer_blocks\.(\d+)\.") if has_attn else 1)
        blocks.append(len(idx))
    ctx_key = next((k for k in u if k.endswith("attn2.to_k.weight")), None)
    proj_in = next((k for k in u if k.endswith(".proj_in.weight")), None)
    adm = u["label_emb.0.0.weight"][1]
    c.update(
        in_channels=u["input_blocks.0.0.weight"][1], out_channels=u["out.2.weight"][0],
        block_out_channels=widths, layers_per_block=blocks[0], transformer_layers_per_block=depth,
        attention_head_dim=[_heads(w) for w in widths],
        down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        up_block_types=["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)],
        cross_attention_dim=u[ctx_key][1] if ctx_key else c["cross_attention_dim"],
        use_linear_projection=bool(proj_in and len(u[proj_in]) == 2),
        projection_class_embeddings_input_dim=adm, addition_time_embed_dim=(adm - pooled_dim) // 6)
    if not any(attn):
        c["mid_block_type"] = "UNetMidBlock2D"
    return c


def vae_config(shapes: dict, prefix: str = VAE) -> dict:
    v = {k[len(prefix):]: s for k, s in shapes.items() if k.startswith(prefix)}
    return _vae_dims(v, r"encoder\.down\.(\d+)\.", "encoder.down.{i}.block.0.conv1.weight",
                     r"encoder\.down\.0\.block\.(\d+)\.")


def vae_config_diffusers(shapes: dict) -> dict:
    """The same for a VAE file saved with diffusers key names (encoder.down_blocks.*)."""
    return _vae_dims(shapes, r"encoder\.down_blocks\.(\d+)\.", "encoder.down_blocks.{i}.resnets.0.conv1.weight",
                     r"encoder\.down_blocks\.0\.resnets\.(\d+)\.")


def _vae_dims(v: dict, down_re: str, conv1: str, block_re: str) -> dict:
    """The shipped VAE config with the widths and depths these (unprefixed) shapes say."""
    c = shipped_config("vae")
    n = _count(v, down_re)
    c.update(block_out_channels=[v[conv1.format(i=i)][0] for i in range(n)], layers_per_block=_count(v, block_re),
             down_block_types=["DownEncoderBlock2D"] * n, up_block_types=["UpDecoderBlock2D"] * n,
             latent_channels=v["encoder.conv_out.weight"][0] // 2, in_channels=v["encoder.conv_in.weight"][1],
             out_channels=v["decoder.conv_out.weight"][0])
    return c


def te1_config(shapes: dict) -> dict:
    c = shipped_config("text_encoder")
    p = TE1 + "text_model."
    vocab, hidden = shapes[p + "embeddings.token_embedding.weight"]
    c.update(vocab_size=vocab, hidden_size=hidden, projection_dim=hidden, num_attention_heads=_heads(hidden),
             intermediate_size=shapes[p + "encoder.layers.0.mlp.fc1.weight"][0],
             num_hidden_layers=_count(shapes, re.escape(p) + r"encoder\.layers\.(\d+)\."),
             max_position_embeddings=shapes[p + "embeddings.position_embedding.weight"][0])
    return c


def te2_config(shapes: dict) -> dict:
    c = shipped_config("text_encoder_2")
    vocab, hidden = shapes[TE2 + "token_embedding.weight"]
    c.update(vocab_size=vocab, hidden_size=hidden, num_attention_heads=_heads(hidden),
             intermediate_size=shapes[TE2 + "transformer.resblocks.0.mlp.c_fc.weight"][0],
             num_hidden_layers=_count(shapes, re.escape(TE2) + r"transformer\.resblocks\.(\d+)\."),
             max_position_embeddings=shapes[TE2 + "positional_embedding"][0],
             projection_dim=shapes[TE2 + "text_projection"][1])
    return c


def read_tensors(path: str | Path, prefixes: tuple[str, ...]) -> dict:
    """The tensors whose key starts with one of `prefixes` (only those are read from disk)."""
    from safetensors import safe_open

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        from core.sdxl.detect import torch_state_dict

        return {k: v for k, v in torch_state_dict(path).items() if k.startswith(prefixes)}
    out = {}
    with safe_open(str(path), framework="pt") as f:
        for k in f.keys():
            if k.startswith(prefixes):
                out[k] = f.get_tensor(k)
    return out


def _fill(model: Any, sd: dict, what: str) -> Any:
    """Load a converted state dict in fp32; every weight of the model must be in it."""
    import torch

    sd = {k: v.to(torch.float32) for k, v in sd.items()}
    res = model.load_state_dict(sd, strict=False)
    _check(res, what)
    return model.eval()


def _check(res: Any, what: str) -> None:
    missing = [k for k in res.missing_keys if not k.endswith("position_ids")]
    if missing or res.unexpected_keys:
        raise ValueError(f"{what}: {len(missing)} weights missing (e.g. {missing[:2]}), "
                         f"{len(res.unexpected_keys)} unexpected (e.g. {res.unexpected_keys[:2]})")


def _build(cls: Any, conf: dict, sd: dict, what: str) -> Any:
    """A diffusers model built on the meta device and given the file's tensors (no random
    init, no second copy: a real SDXL UNet is 2.6 B parameters); built normally when some
    buffer is not in the state dict."""
    import torch

    with torch.device("meta"):
        model = cls(**conf)
    sd = {k: v.to(torch.float32).contiguous() for k, v in sd.items()}
    _check(model.load_state_dict(sd, strict=False, assign=True), what)
    if any(t.is_meta for t in list(model.parameters()) + list(model.buffers())):
        return _fill(cls(**conf), sd, what)
    return model.eval()


def load_unet(path: str | Path, shapes: dict):
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    pooled = shapes.get(TE2 + "text_projection", [0, 1280])[1]
    cfg = unet_config(shapes, pooled)
    conf = {k: v for k, v in cfg.items() if not k.startswith("_")}
    sd = convert_ldm_unet_checkpoint(read_tensors(path, (UNET,)), conf)
    return _build(UNet2DConditionModel, conf, sd, "unet")


def load_vae_from(path: str | Path, shapes: dict, prefix: str = VAE):
    """An AutoencoderKL from LDM-layout keys under `prefix` ('' for a standalone VAE file)."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    conf = {k: v for k, v in vae_config(shapes, prefix).items() if not k.startswith("_")}
    raw = read_tensors(path, (prefix + "encoder.", prefix + "decoder.", prefix + "quant_conv.",
                              prefix + "post_quant_conv."))
    raw = {k[len(prefix):]: v for k, v in raw.items()}
    return _build(AutoencoderKL, conf, convert_ldm_vae_checkpoint(raw, conf), "vae")


def load_text_encoders(path: str | Path, shapes: dict):
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    raw = read_tensors(path, (TE1, TE2))
    te1 = CLIPTextModel(CLIPTextConfig(**te1_config(shapes)))
    sd1 = convert_ldm_clip_checkpoint({k: v for k, v in raw.items() if k.startswith(TE1)})
    if not any(k.startswith("text_model.") for k in te1.state_dict()):  # transformers 5 drops the prefix
        sd1 = {k.removeprefix("text_model."): v for k, v in sd1.items()}
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**te2_config(shapes)))
    sd2 = convert_open_clip_checkpoint(te2, {k: v for k, v in raw.items() if k.startswith(TE2)}, prefix=TE2)
    sd1.pop("embeddings.position_ids", None), sd1.pop("text_model.embeddings.position_ids", None)
    sd2.pop("text_model.embeddings.position_ids", None)
    return _fill(te1, sd1, "text_encoder"), _fill(te2, sd2, "text_encoder_2")


def scheduler_config() -> dict:
    return {k: v for k, v in shipped_config("scheduler").items() if not k.startswith("_")}
