"""Optimizer parameter groups of the recipe: LoRA+ and per-block UNet learning rates.

- LoRA+ (Hayou et al. 2024; kohya `loraplus_lr_ratio`): the up/B matrices (`lora_B`) get
  the group's LR times the ratio. 0 leaves the groups as they are.
- Per-block UNet LR (`unet_block_lr`): one LR per diffusers block, in the order
  down_blocks.0.., mid_block, up_blocks.. (SDXL: 3 + 1 + 3 = 7 values); it replaces lr_unet
  for that block's adapters (0 freezes them). kohya's sdxl `block_lr` takes 23 values over
  the original SGM layout (input/middle/output blocks); this is the same idea per diffusers
  block, which is how the adapters are named here.

Groups are split in parameter order, so with ratio 1 and every block at lr_unet each
parameter sees exactly the update of the plain groups.
"""
from __future__ import annotations

import re
from typing import Any

from core.errors import StudioError


def block_names(unet: Any) -> list[str]:
    n_down, n_up = len(unet.down_blocks), len(unet.up_blocks)
    return [f"down_blocks.{i}" for i in range(n_down)] + ["mid_block"] + [f"up_blocks.{i}" for i in range(n_up)]


def _block_of(name: str, names: list[str]) -> int | None:
    """Block index of a parameter name, PEFT (`down_blocks.1.`) or kohya/LyCORIS (`down_blocks_1_`)."""
    m = re.search(r"(down_blocks|up_blocks)[._](\d+)[._]|(mid_block)[._]", name)
    if not m:
        return None
    key = m.group(3) or f"{m.group(1)}.{m.group(2)}"
    return names.index(key) if key in names else None


def _is_up(name: str) -> bool:
    return ".lora_B." in name or ".lora_up." in name


def refine(groups: list[dict], models: dict[str, Any], p: Any) -> list[dict]:
    """Split `groups` (name in unet/te1/te2) by block and A/B as the options ask."""
    ratio, block_lr = float(p.loraplus_ratio), list(p.unet_block_lr)
    if ratio <= 0 and not block_lr:
        return groups
    blocks = block_names(models["unet"])
    if block_lr and len(block_lr) != len(blocks):
        raise StudioError("lora.block_lr_count", expected=len(blocks), got=len(block_lr), blocks=", ".join(blocks))
    out: list[dict] = []
    for g in groups:
        names = {id(q): n for n, q in models[g["name"]].named_parameters()}
        split: dict[tuple, dict] = {}
        for q in g["params"]:
            name = names.get(id(q), "")
            lr, tag = g["lr"], g["name"]
            if block_lr and g["name"] == "unet":
                b = _block_of(name, blocks)
                if b is not None:
                    lr, tag = block_lr[b], f"unet.{blocks[b]}"
            up = ratio > 0 and _is_up(name)
            key = (tag, up)
            if key not in split:
                rest = {k: v for k, v in g.items() if k != "params"}
                split[key] = {**rest, "params": [], "name": tag + (".up" if up else ""), "lr": lr * ratio if up else lr}
            split[key]["params"].append(q)
        out += list(split.values())
    return out
