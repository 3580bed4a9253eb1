"""SDXL text and size conditioning: tokenize with both tokenizers, encode with both text
encoders (penultimate hidden states concatenated, pooled from encoder 2), `add_time_ids`.
"""
from __future__ import annotations

from typing import Any


def tokenize(tokenizers, prompts: list[str]):
    """Token ids of both tokenizers, padded to their max length (77 for SDXL)."""
    return [tk(prompts, padding="max_length", max_length=tk.model_max_length, truncation=True,
               return_tensors="pt").input_ids for tk in tokenizers]


def encode_prompt(text_encoders, ids_list) -> tuple[Any, Any]:
    """SDXL conditioning: both encoders' penultimate hidden states concatenated on the
    feature axis, pooled embedding from encoder 2 (its projection output)."""
    import torch

    embeds = []
    pooled = None
    for enc, ids in zip(text_encoders, ids_list):
        out = enc(ids.to(enc.device), output_hidden_states=True)
        embeds.append(out.hidden_states[-2])
        pooled = out[0]  # encoder 2 is last: CLIPTextModelWithProjection -> text_embeds
    return torch.cat(embeds, dim=-1), pooled


def time_ids(original_hw, crop_yx, target_hw, dtype=None, device=None):
    """SDXL `add_time_ids`: (orig_h, orig_w, crop_top, crop_left, target_h, target_w) per item."""
    import torch

    rows = [list(o) + list(c) + list(t) for o, c, t in zip(original_hw, crop_yx, target_hw)]
    return torch.tensor(rows, dtype=dtype or torch.float32, device=device)
