"""Write a diffusers SDXL folder as one SGM single file, the way A1111/Forge, kohya and ComfyUI
save a checkpoint: `model.diffusion_model.*` (UNet, LDM names), `first_stage_model.*` (VAE),
`conditioner.embedders.0.transformer.text_model.*` (CLIP-L, HF names) and
`conditioner.embedders.1.model.*` (bigG, open_clip names: fused in_proj, c_fc/c_proj,
transposed text_projection). Options add what real files carry: fp16/bf16, EMA copies,
no VAE, NoobAI's `v_pred`/`ztsnr` marker keys.

The tables follow diffusers' scripts/convert_diffusers_to_original_sdxl.py, written for any
number of levels / layers per block so the tiny test model converts too (test helper only:
the studio itself only ever reads SGM files).
"""
from __future__ import annotations

from pathlib import Path

_UNET_TOP = [("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
             ("input_blocks.0.0.", "conv_in."), ("out.0.", "conv_norm_out."), ("out.2.", "conv_out."),
             ("label_emb.0.0.", "add_embedding.linear_1."), ("label_emb.0.2.", "add_embedding.linear_2.")]
_RESNET = [("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("out_layers.0", "norm2"), ("out_layers.3", "conv2"),
           ("emb_layers.1", "time_emb_proj"), ("skip_connection", "conv_shortcut")]


def unet_to_sgm(sd: dict, config: dict) -> dict:
    n, lpb = len(config["block_out_channels"]), config["layers_per_block"]
    down_attn = [t.startswith("CrossAttn") for t in config["down_block_types"]]
    up_attn = [t.startswith("CrossAttn") for t in config["up_block_types"]]
    layer = []  # (sgm prefix, diffusers prefix)
    for i in range(n):
        for j in range(lpb):
            layer.append((f"input_blocks.{(lpb + 1) * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            if down_attn[i]:
                layer.append((f"input_blocks.{(lpb + 1) * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        for j in range(lpb + 1):
            layer.append((f"output_blocks.{(lpb + 1) * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            if up_attn[i]:
                layer.append((f"output_blocks.{(lpb + 1) * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < n - 1:
            layer.append((f"input_blocks.{(lpb + 1) * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
            layer.append((f"output_blocks.{(lpb + 1) * i + lpb}.{2 if up_attn[i] else 1}.",
                          f"up_blocks.{i}.upsamplers.0."))
    layer.append(("middle_block.1.", "mid_block.attentions.0."))
    for j in range(2):
        layer.append((f"middle_block.{2 * j}.", f"mid_block.resnets.{j}."))
    out = {}
    for k, v in sd.items():
        new = k
        for sgm, hf in _UNET_TOP:
            if new.startswith(hf):
                new = sgm + new[len(hf):]
        if "resnets" in new:
            for sgm, hf in _RESNET:
                new = new.replace(hf, sgm)
        for sgm, hf in layer:
            if new.startswith(hf):
                new = sgm + new[len(hf):]
                break
        out["model.diffusion_model." + new] = v
    return out


def vae_to_sgm(sd: dict, config: dict) -> dict:
    n, lpb = len(config["block_out_channels"]), config["layers_per_block"]
    table = [("nin_shortcut", "conv_shortcut"), ("norm_out", "conv_norm_out"), ("mid.attn_1.", "mid_block.attentions.0.")]
    for i in range(n):
        for j in range(lpb):
            table.append((f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}."))
        if i < n - 1:
            table.append((f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."))
            table.append((f"up.{n - 1 - i}.upsample.", f"up_blocks.{i}.upsamplers.0."))
        for j in range(lpb + 1):
            table.append((f"decoder.up.{n - 1 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}."))
    for i in range(2):
        table.append((f"mid.block_{i + 1}.", f"mid_block.resnets.{i}."))
    attn = [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."), ("proj_out.", "to_out.0.")]
    out = {}
    for k, v in sd.items():
        new = k
        for sgm, hf in table:
            new = new.replace(hf, sgm)
        if "attentions" in k:
            for sgm, hf in attn:
                new = new.replace(hf, sgm)
            if new.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight")) and v.ndim == 2:
                v = v.reshape(*v.shape, 1, 1)  # LDM's attention is 1x1 convolutions
        out["first_stage_model." + new] = v
    return out


def te1_to_sgm(sd: dict) -> dict:
    return {"conditioner.embedders.0.transformer.text_model." + k.removeprefix("text_model."): v
            for k, v in sd.items() if not k.endswith("position_ids")}


def te2_to_sgm(sd: dict) -> dict:
    import torch

    p = "conditioner.embedders.1.model."
    out, qkv = {}, {}
    names = [("self_attn.out_proj.", "attn.out_proj."), ("layer_norm1.", "ln_1."), ("layer_norm2.", "ln_2."),
             ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj.")]
    for k, v in sd.items():
        k = k.removeprefix("text_model.")
        if k.endswith("position_ids"):
            continue
        if k == "embeddings.token_embedding.weight":
            out[p + "token_embedding.weight"] = v
        elif k == "embeddings.position_embedding.weight":
            out[p + "positional_embedding"] = v
        elif k.startswith("final_layer_norm."):
            out[p + "ln_final." + k.split(".")[-1]] = v
        elif k == "text_projection.weight":
            out[p + "text_projection"] = v.T.contiguous()
        elif k.startswith("encoder.layers."):
            rest = k[len("encoder.layers."):]
            n, sub = rest.split(".", 1)
            base = f"{p}transformer.resblocks.{n}."
            if sub.startswith("self_attn.") and sub.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                qkv.setdefault((base, sub.split(".")[-1]), {})[sub.split(".")[1]] = v
                continue
            for hf, sgm in names:
                sub = sub.replace(hf, sgm)
            out[base + sub] = v
    for (base, kind), parts in qkv.items():
        out[f"{base}attn.in_proj_{kind}"] = torch.cat([parts["q_proj"], parts["k_proj"], parts["v_proj"]], 0)
    return out


def folder_to_sgm(folder: str | Path, out: str | Path, *, dtype: str = "fp16", with_vae: bool = True,
                  ema: bool = False, v_pred: bool = False, ztsnr: bool = False) -> Path:
    """Convert a diffusers SDXL folder to one `.safetensors` SGM checkpoint at `out`."""
    import json

    import torch
    from safetensors.torch import load_file, save_file

    folder, out = Path(folder), Path(out)
    cfg = lambda part: json.loads((folder / part / "config.json").read_text(encoding="utf-8"))  # noqa: E731
    sd = {}
    sd.update(unet_to_sgm(load_file(folder / "unet" / "diffusion_pytorch_model.safetensors"), cfg("unet")))
    if with_vae:
        sd.update(vae_to_sgm(load_file(folder / "vae" / "diffusion_pytorch_model.safetensors"), cfg("vae")))
    sd.update(te1_to_sgm(load_file(folder / "text_encoder" / "model.safetensors")))
    sd.update(te2_to_sgm(load_file(folder / "text_encoder_2" / "model.safetensors")))
    torch_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    sd = {k: v.to(torch_dtype).contiguous() for k, v in sd.items()}
    if ema:  # A1111-era files: a flattened EMA copy of the UNet (ignored when loading)
        for k, v in list(sd.items()):
            if k.startswith("model.diffusion_model."):
                sd["model_ema." + k[len("model."):].replace(".", "")] = v + 1.0
    if v_pred:
        sd["v_pred"] = torch.tensor([])
    if ztsnr:
        sd["ztsnr"] = torch.tensor([])
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(out), metadata={"format": "pt"})
    return out
