"""Write the trained LoRA: kohya format (ComfyUI, A1111/Forge, diffusers all load it) and,
on request, the diffusers/PEFT format.

Kohya keys are the module path with dots turned into underscores, prefixed by the part:
`lora_unet_down_blocks_1_attentions_0_..._to_q.lora_down.weight`, `.lora_up.weight` and a
scalar `.alpha` per module; `lora_te1_text_model_encoder_layers_0_self_attn_q_proj...` for the
CLIP-L encoder and `lora_te2_text_model_...` for the bigG one. transformers 5.x names the
CLIPTextModel modules without the `text_model.` prefix (CLIPTextModelWithProjection keeps
it); the files users load always have it, so it is normalised here. Metadata follows the
`ss_*` convention of kohya's sd-scripts (plus `modelspec.*`), so UIs show it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PART_PREFIX = {"unet": "lora_unet_", "te1": "lora_te1_", "te2": "lora_te2_"}


def _module_path(peft_key: str, part: str) -> tuple[str, str]:
    """('down_blocks.0...to_q', 'lora_A') from a PEFT state-dict key."""
    for tag in (".lora_A.", ".lora_B."):
        if tag in peft_key:
            mod, _, _rest = peft_key.partition(tag)
            if part != "unet":
                mod = mod.removeprefix("text_model.")
                mod = "text_model." + mod
            return mod, tag.strip(".")
    raise ValueError(f"not a LoRA key: {peft_key}")


def to_kohya(parts: dict[str, dict], alpha: float, dtype=None) -> dict:
    """{'unet': peft_sd, 'te1': ..., 'te2': ...} -> kohya state dict."""
    import torch

    dtype = dtype or torch.float16
    out: dict[str, Any] = {}
    for part, sd in parts.items():
        for key, tensor in sd.items():
            mod, ab = _module_path(key, part)
            base = PART_PREFIX[part] + mod.replace(".", "_")
            out[f"{base}.{'lora_down' if ab == 'lora_A' else 'lora_up'}.weight"] = tensor.detach().to(dtype).cpu()
            out[f"{base}.alpha"] = torch.tensor(float(alpha), dtype=dtype)
    return {k: v.contiguous() for k, v in out.items()}


def metadata(params: Any, *, base_model: str, steps: int, epoch: int, dataset_hash: str, n_images: int,
             finished: bool) -> dict[str, str]:
    p = params.model_dump(mode="json")
    return {
        "ss_network_module": "networks.lora", "ss_network_dim": str(params.rank),
        "ss_network_alpha": str(params.alpha), "ss_base_model_version": "sdxl_base_v1-0",
        "ss_sd_model_name": Path(base_model).name or base_model, "ss_steps": str(steps),
        "ss_epoch": str(epoch), "ss_resolution": f"({params.resolution}, {params.resolution})",
        "ss_learning_rate": str(params.lr_unet), "ss_text_encoder_lr": str(params.lr_te1),
        "ss_optimizer": params.optimizer, "ss_lr_scheduler": params.lr_scheduler,
        "ss_num_train_images": str(n_images), "ss_output_name": params.name, "ss_seed": str(params.seed),
        "ss_training_comment": params.trigger_word, "ss_dataset_hash": dataset_hash,
        "ss_min_snr_gamma": str(params.min_snr_gamma), "ss_noise_offset": str(params.noise_offset),
        "ss_mixed_precision": params.precision, "ss_training_finished": str(bool(finished)).lower(),
        "cyberbill_params": json.dumps(p, sort_keys=True),
        "modelspec.architecture": "stable-diffusion-xl-v1-base/lora", "modelspec.implementation": "diffusers",
        "modelspec.title": params.name, "modelspec.trigger_phrase": params.trigger_word,
    }


def save_kohya(path: str | Path, tensors: dict, meta: dict[str, str]) -> Path:
    """Atomic write: temp name in the same folder, then rename over the target."""
    from safetensors.torch import save_file

    from core.media import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def peft_parts(unet: Any, te1: Any, te2: Any, with_te: bool) -> dict[str, dict]:
    from peft.utils import get_peft_model_state_dict

    parts = {"unet": get_peft_model_state_dict(unet)}
    if with_te:
        parts["te1"] = get_peft_model_state_dict(te1)
        parts["te2"] = get_peft_model_state_dict(te2)
    return parts


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
