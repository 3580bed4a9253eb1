"""Write the trained LoRA: kohya format (ComfyUI, A1111/Forge, diffusers all load it) and,
on request, the diffusers/PEFT format.

Kohya keys are the module path with dots turned into underscores, prefixed by the part:
`lora_unet_down_blocks_1_attentions_0_..._to_q.lora_down.weight`, `.lora_up.weight` and a
scalar `.alpha` per module (+ `.dora_scale` for DoRA: PEFT's magnitude vector reshaped to
(out, 1) / (out, 1, 1, 1), the output-axis layout ComfyUI and LyCORIS apply);
`lora_te1_text_model_encoder_layers_0_self_attn_q_proj...` for the CLIP-L encoder and
`lora_te2_text_model_...` for the bigG one. LyCORIS types write their modules' own layout
(train/networks.py). transformers 5.x names the
CLIPTextModel modules without the `text_model.` prefix (CLIPTextModelWithProjection keeps
it); the files users load always have it, so it is normalised here. Metadata follows the
`ss_*` convention of kohya's sd-scripts (plus `modelspec.*`), so UIs show it.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

PART_PREFIX = {"unet": "lora_unet_", "te1": "lora_te1_", "te2": "lora_te2_"}


_PEFT_TAGS = {".lora_A.weight": "lora_down.weight", ".lora_B.weight": "lora_up.weight",
              ".lora_magnitude_vector": "dora_scale"}


def _module_path(peft_key: str, part: str) -> tuple[str, str]:
    """('down_blocks.0...to_q', 'lora_down.weight') from a PEFT state-dict key."""
    for tag, kohya in _PEFT_TAGS.items():
        if peft_key.endswith(tag):
            mod = peft_key[: -len(tag)]
            if part != "unet":
                mod = "text_model." + mod.removeprefix("text_model.")
            return mod, kohya
    raise ValueError(f"not a LoRA key: {peft_key}")


def to_kohya(parts: dict[str, dict], alpha: float, dtype=None) -> dict:
    """{'unet': peft_sd, 'te1': ..., 'te2': ...} -> kohya state dict."""
    import torch

    dtype = dtype or torch.float16
    out: dict[str, Any] = {}
    for part, sd in parts.items():
        for key, tensor in sd.items():
            mod, kind = _module_path(key, part)
            base = PART_PREFIX[part] + mod.replace(".", "_")
            t = tensor.detach()
            if kind == "dora_scale":  # PEFT: (out,) linear, (1, out, 1, 1) conv -> output axis first
                t = t.reshape(-1, *([1] * (1 if t.dim() == 1 else 3)))
            out[f"{base}.{kind}"] = t.to(dtype).cpu()
            out[f"{base}.alpha"] = torch.tensor(float(alpha), dtype=dtype)
    return {k: v.contiguous() for k, v in out.items()}


def kohya_state(models: dict[str, Any], alpha: float, dtype=None) -> dict:
    """Kohya file tensors of the trained parts {'unet': model, ...}, whatever the network type."""
    import torch
    from peft.utils import get_peft_model_state_dict

    from modules.lora_training.train import networks

    dtype = dtype or torch.float16
    out: dict[str, Any] = {}
    for part, model in models.items():
        net = networks.lycoris_net(model)
        out.update(networks.kohya_tensors(net, dtype) if net is not None
                   else to_kohya({part: get_peft_model_state_dict(model)}, alpha, dtype))
    return out


_OPTIMIZER = {"adamw": "torch.optim.AdamW", "adamw8bit": "bitsandbytes.optim.AdamW8bit",
              "lion": "lion_pytorch.Lion", "prodigy": "prodigyopt.Prodigy"}


def dataset_info(items: list) -> dict[str, str]:
    """kohya's per-dataset keys from the training items: images and tag counts per concept
    folder (`ss_dataset_dirs`, `ss_tag_frequency`) and the buckets (`ss_bucket_info`)."""
    dirs: dict[str, dict] = {}
    freq: dict[str, dict[str, int]] = {}
    buckets: dict[tuple[int, int], int] = {}
    items = list({it.path: it for it in items}.values())  # repeats expand the list: count each image once
    for it in items:
        concept = Path(it.path).parent.name  # kohya keys these by the image folder's name
        d = dirs.setdefault(concept, {"n_repeats": int(getattr(it, "repeats", 1)), "img_count": 0})
        d["img_count"] += 1
        tags = freq.setdefault(concept, {})
        for tag in (t.strip() for t in it.caption.split(",")):
            if tag:
                tags[tag] = tags.get(tag, 0) + 1
        h, w = it.target_hw
        buckets[(w, h)] = buckets.get((w, h), 0) + 1
    err = [abs(it.original_hw[1] / it.original_hw[0] - it.target_hw[1] / it.target_hw[0]) for it in items]
    info = {"buckets": {str(i): {"resolution": list(r), "count": n} for i, (r, n) in enumerate(sorted(buckets.items()))},
            "mean_img_ar_error": sum(err) / len(err) if err else 0.0}
    return {"ss_dataset_dirs": json.dumps(dirs), "ss_tag_frequency": json.dumps(freq),
            "ss_bucket_info": json.dumps(info), "ss_num_buckets": str(len(buckets))}


def metadata(params: Any, *, base_model: str, steps: int, epoch: int, dataset_hash: str, n_images: int,
             finished: bool, items: list | None = None, started_at: float | None = None,
             total_steps: int | None = None) -> dict[str, str]:
    """The `ss_*` keys kohya's sd-scripts write (LoRA browsers, A1111/Forge, civitai read them),
    `modelspec.*`, and our own full params as `cyberbill_params`. Values are strings, as in
    kohya's files (lists and dicts as JSON)."""
    from modules.lora_training.train import networks

    p = params.model_dump(mode="json")
    lyco = params.network_type in networks.LYCORIS_TYPES
    meta = {
        "ss_network_module": networks.NETWORK_MODULE[params.network_type],
        "ss_network_dim": str(params.rank), "ss_network_alpha": str(params.alpha),
        "ss_network_dropout": str(params.dropout),
        "ss_network_args": json.dumps(networks.network_args(params)),
        "ss_base_model_version": "sdxl_base_v1-0", "ss_v2": "False",
        "ss_sd_model_name": Path(base_model).name or base_model, "ss_steps": str(steps),
        "ss_epoch": str(epoch), "ss_num_epochs": str(params.epochs), "ss_max_train_steps": str(total_steps or steps),
        "ss_resolution": f"({params.resolution}, {params.resolution})", "ss_enable_bucket": "True",
        "ss_learning_rate": str(params.lr_unet), "ss_unet_lr": str(params.lr_unet),
        "ss_text_encoder_lr": str(params.lr_te1) if params.train_text_encoder else "0",
        "ss_network_train_unet_only": str(not params.train_text_encoder),
        "ss_optimizer": f"{_OPTIMIZER[params.optimizer]}(weight_decay={params.weight_decay})",
        "ss_lr_scheduler": params.lr_scheduler, "ss_lr_warmup_steps": str(params.warmup_steps),
        "ss_batch_size_per_device": str(params.batch_size),
        "ss_gradient_accumulation_steps": str(params.grad_accum),
        "ss_total_batch_size": str(params.batch_size * params.grad_accum),
        "ss_max_grad_norm": str(params.max_grad_norm), "ss_gradient_checkpointing": str(params.gradient_checkpointing),
        "ss_cache_latents": str(params.cache_latents),
        "ss_num_train_images": str(n_images), "ss_output_name": params.name, "ss_seed": str(params.seed),
        "ss_training_comment": params.trigger_word, "ss_dataset_hash": dataset_hash,
        "ss_min_snr_gamma": str(params.min_snr_gamma), "ss_noise_offset": str(params.noise_offset),
        "ss_mixed_precision": params.precision, "ss_training_finished": str(bool(finished)).lower(),
        "ss_training_started_at": str(started_at if started_at is not None else time.time()),
        "ss_training_finished_at": str(time.time()),
        "cyberbill_params": json.dumps(p, sort_keys=True),
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-xl-v1-base/" + ("lycoris" if lyco else "lora"),
        "modelspec.implementation": "diffusers", "modelspec.title": params.name,
        "modelspec.trigger_phrase": params.trigger_word, "modelspec.resolution": f"{params.resolution}x{params.resolution}",
    }
    if items is not None:
        meta.update(dataset_info(items))
    return meta


def save_kohya(path: str | Path, tensors: dict, meta: dict[str, str]) -> Path:
    """Atomic write: temp name in the same folder, then rename over the target."""
    from safetensors.torch import save_file

    from core.media import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def save_diffusers(folder: str | Path, parts: dict[str, dict]) -> Path:
    """diffusers/PEFT layout (`pytorch_lora_weights.safetensors`), written to a temp folder first."""
    import shutil

    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers

    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    StableDiffusionXLPipeline.save_lora_weights(
        str(tmp), unet_lora_layers=convert_state_dict_to_diffusers(parts["unet"]),
        text_encoder_lora_layers=convert_state_dict_to_diffusers(parts["te1"]) if "te1" in parts else None,
        text_encoder_2_lora_layers=convert_state_dict_to_diffusers(parts["te2"]) if "te2" in parts else None)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder
