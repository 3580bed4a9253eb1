"""PEFT LoRA adapters on the UNet and, optionally, both text encoders.

Target presets (what kohya/ComfyUI users know):
- "attn": attention projections (to_q, to_k, to_v, to_out.0) - the classic SDXL LoRA;
- "attn_mlp": + the transformer feed-forward (ff.net.0.proj, ff.net.2) and proj_in/proj_out;
- "full": + the ResNet convolutions and time-embedding projections (LoCon-style).
Text encoders: q/k/v/out projections, + fc1/fc2 for the wider presets.
`network_type` picks the adapter: PEFT LoRA ("lora"), PEFT DoRA ("dora", `use_dora`), or a
LyCORIS type ("locon", "loha", "lokr"; train/networks.py), which also adapts the convolutions.
"""
from __future__ import annotations

from typing import Any

_ATTN = (".to_q", ".to_k", ".to_v", ".to_out.0")
_MLP = (".ff.net.0.proj", ".ff.net.2", ".proj_in", ".proj_out")
_CONV = (".conv1", ".conv2", ".conv_shortcut", ".time_emb_proj", "samplers.0.conv")
_TE_ATTN = (".q_proj", ".k_proj", ".v_proj", ".out_proj")
_TE_MLP = (".fc1", ".fc2")


def unet_target_modules(unet: Any, target: str) -> list[str]:
    """Exact module names of the UNet a preset adapts (Linear / Conv2d only)."""
    import torch

    suffixes = _ATTN + (_MLP if target in ("attn_mlp", "full") else ()) + (_CONV if target == "full" else ())
    names = []
    for name, mod in unet.named_modules():
        if not isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
            continue
        if not name.startswith(("down_blocks", "mid_block", "up_blocks")):
            continue  # time embedding, conv_in/out, add_embedding stay frozen
        if name.endswith(suffixes):
            names.append(name)
    return names


def te_target_modules(te: Any, target: str) -> list[str]:
    import torch

    suffixes = _TE_ATTN + (_TE_MLP if target in ("attn_mlp", "full") else ())
    return [n for n, m in te.named_modules() if isinstance(m, torch.nn.Linear) and n.endswith(suffixes)]


def add_lora(model: Any, names: list[str], rank: int, alpha: float, dropout: float, dora: bool = False) -> None:
    """Attach adapter 'default' to the exact `names` (gaussian init: B = 0, output unchanged)."""
    from peft import LoraConfig

    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, init_lora_weights="gaussian",
                     target_modules=names, use_dora=dora)
    model.add_adapter(cfg)


def lora_params(model: Any) -> list:
    return [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]


def lycoris_unet_modules(unet: Any, target: str) -> list[str]:
    """The preset's layers plus every ResNet/sampler convolution (LoCon), in model order."""
    import torch

    chosen = set(unet_target_modules(unet, target))
    layers = dict(unet.named_modules())
    return [n for n in unet_target_modules(unet, "full")
            if n in chosen or isinstance(layers[n], torch.nn.Conv2d)]


def _unet_names(unet: Any, params: Any) -> list[str]:
    lyco = params.network_type in ("locon", "loha", "lokr")
    return (lycoris_unet_modules if lyco else unet_target_modules)(unet, params.target)


def _adapt(model: Any, names: list[str], part: str, params: Any) -> None:
    from modules.lora_training.train import networks

    if params.network_type in networks.LYCORIS_TYPES:
        networks.add_lycoris(model, names, part, params)
    else:
        add_lora(model, names, params.rank, params.alpha, params.dropout, dora=params.network_type == "dora")


def network_param_count(unet: Any, params: Any) -> int:
    """Trainable parameters the chosen network type adds to `unet` (a meta-device model is fine)."""
    unet.requires_grad_(False)
    _adapt(unet, _unet_names(unet, params), "unet", params)
    return sum(p.numel() for p in lora_params(unet))


def adapter_state(model: Any) -> dict:
    """Trainable adapter tensors of one part (checkpoint format), whatever the type."""
    from peft.utils import get_peft_model_state_dict

    from modules.lora_training.train import networks

    net = networks.lycoris_net(model)
    return networks.train_state(net) if net is not None else get_peft_model_state_dict(model)


def load_adapter_state(model: Any, sd: dict) -> list[str]:
    """Load `adapter_state` back; the names that did not fit (empty = exact)."""
    from peft.utils import set_peft_model_state_dict

    from modules.lora_training.train import networks

    net = networks.lycoris_net(model)
    if net is not None:
        return networks.load_train_state(net, sd)
    if any(k.startswith("lora_") for k in sd):  # a LyCORIS state into a PEFT run
        return sorted(sd)[:3]
    res = set_peft_model_state_dict(model, sd)
    return [k for k in getattr(res, "unexpected_keys", []) if "lora_" in k]


def setup(unet: Any, te1: Any, te2: Any, params: Any) -> list[dict]:
    """Freeze the base weights, add adapters, cast them to fp32; optimizer param groups."""
    import torch
    from diffusers.training_utils import cast_training_params

    for m in (unet, te1, te2):
        if m is not None:
            m.requires_grad_(False)
    _adapt(unet, _unet_names(unet, params), "unet", params)
    groups = [{"params": lora_params(unet), "lr": params.lr_unet, "name": "unet"}]
    if params.train_text_encoder:
        for te, lr, tag in ((te1, params.lr_te1, "te1"), (te2, params.lr_te2, "te2")):
            _adapt(te, te_target_modules(te, params.target), tag, params)
            groups.append({"params": lora_params(te), "lr": lr, "name": tag})
    # trainable params in fp32 even when the frozen base runs in fp16/bf16 (stable updates)
    cast_training_params([m for m in (unet, te1, te2) if m is not None], dtype=torch.float32)
    return groups
