"""Hand-built LoRA-family files for the tiny SDXL (tests and bench): every network type the
trainer writes, in kohya/LyCORIS key format, with known random factors so a test can
recompute each delta from the formula."""
from __future__ import annotations

from pathlib import Path

LINEAR = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"  # (64, 64)
LINEAR2 = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_v"  # (64, 64)
CONV = "lora_unet_down_blocks_0_resnets_0_conv1"  # (32, 32, 3, 3)
TE1 = "lora_te1_text_model_encoder_layers_0_self_attn_q_proj"  # (32, 32)
TE2 = "lora_te2_text_model_encoder_layers_1_self_attn_v_proj"  # (32, 32)


def _r(g, *shape, scale=0.2):
    import torch

    return torch.randn(*shape, generator=g) * scale


def lora_tensors(seed: int = 0, rank: int = 4, alpha: float = 2.0, scale: float = 0.2,
                 modules=(LINEAR, LINEAR2, TE1, TE2)) -> dict:
    """Plain kohya LoRA (+ a LoCon conv module when CONV is in `modules`)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = {}
    shapes = {LINEAR: (64, 64), LINEAR2: (64, 64), TE1: (32, 32), TE2: (32, 32)}
    for m in modules:
        if m == CONV:
            out[f"{m}.lora_down.weight"] = _r(g, rank, 32, 3, 3, scale=scale)
            out[f"{m}.lora_up.weight"] = _r(g, 32, rank, 1, 1, scale=scale)
        else:
            o, i = shapes[m]
            out[f"{m}.lora_down.weight"] = _r(g, rank, i, scale=scale)
            out[f"{m}.lora_up.weight"] = _r(g, o, rank, scale=scale)
        out[f"{m}.alpha"] = torch.tensor(alpha)
    return out


def loha_tensors(seed: int = 1, rank: int = 4, alpha: float = 4.0) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    return {f"{LINEAR}.hada_w1_a": _r(g, 64, rank), f"{LINEAR}.hada_w1_b": _r(g, rank, 64),
            f"{LINEAR}.hada_w2_a": _r(g, 64, rank), f"{LINEAR}.hada_w2_b": _r(g, rank, 64),
            f"{LINEAR}.alpha": torch.tensor(alpha),
            f"{CONV}.hada_w1_a": _r(g, 32, rank), f"{CONV}.hada_w1_b": _r(g, rank, 32 * 9),
            f"{CONV}.hada_w2_a": _r(g, 32, rank), f"{CONV}.hada_w2_b": _r(g, rank, 32 * 9),
            f"{CONV}.alpha": torch.tensor(alpha)}


def lokr_tensors(seed: int = 2, rank: int = 2, alpha: float = 1.0) -> dict:
    """LoKr: full w1 (8x8) with factored w2 (8x8 from rank 2) on the linear; full both on conv."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return {f"{LINEAR}.lokr_w1": _r(g, 8, 8), f"{LINEAR}.lokr_w2_a": _r(g, 8, rank),
            f"{LINEAR}.lokr_w2_b": _r(g, rank, 8), f"{LINEAR}.alpha": torch.tensor(alpha),
            f"{CONV}.lokr_w1": _r(g, 4, 4), f"{CONV}.lokr_w2": _r(g, 8, 8, 3, 3),
            f"{CONV}.alpha": torch.tensor(alpha)}


def dora_tensors(seed: int = 3, rank: int = 4, alpha: float = 4.0, weights: dict | None = None) -> dict:
    """LoRA + dora_scale: per output row on LINEAR (PEFT layout), per input column on LINEAR2
    (LyCORIS layout). `weights`: the base weights, so magnitudes start near their norms."""
    import torch

    sd = lora_tensors(seed, rank, alpha, modules=(LINEAR, LINEAR2))
    g = torch.Generator().manual_seed(seed + 100)
    w1 = weights[LINEAR] if weights else torch.ones(64, 64)
    w2 = weights[LINEAR2] if weights else torch.ones(64, 64)
    sd[f"{LINEAR}.dora_scale"] = (w1.norm(dim=1, keepdim=True) * (1 + 0.3 * torch.rand(64, 1, generator=g)))
    sd[f"{LINEAR2}.dora_scale"] = (w2.norm(dim=0, keepdim=True) * (1 + 0.3 * torch.rand(1, 64, generator=g)))
    return sd


def save(path: str | Path, tensors: dict, metadata: dict | None = None) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata or {})
    return path
