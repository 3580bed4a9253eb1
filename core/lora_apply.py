"""Apply LoRA files to a loaded SDXL pipeline by editing its weights, and undo it exactly.

`LoraPatcher(pipe)` maps kohya module names to the pipeline's modules:
`lora_unet_<path>` for the UNet (diffusers names; the SGM/LDM names of the original
SDXL code, `input_blocks_4_1_...`, are translated), `lora_te1_<path>` for the CLIP-L text
encoder and `lora_te2_<path>` for the bigG one (with the `text_model.` prefix the files
carry; transformers 5.x names CLIPTextModel's modules without it), `lycoris_<path>` as the
UNet. `apply([(lora, strength), ...])` puts `W + sum(strength * delta)` in every touched
weight, computed in float32 from a CPU copy of the original, so stacking never compounds
rounding; `restore()` copies the originals back: a strength of 0, or removing every LoRA,
gives weights bit-identical to the base. Only touched weights are copied, so a grid swaps
LoRAs on one loaded base instead of reloading it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from core.lora_file import LoraFile

PARTS = (("unet", "lora_unet_"), ("text_encoder", "lora_te1_"), ("text_encoder_2", "lora_te2_"))
# SGM resnet sub-layers -> diffusers (kohya SDXL files trained on the original code use these)
_SGM_RESNET = {"in_layers_2": "conv1", "out_layers_3": "conv2", "emb_layers_1": "time_emb_proj",
               "skip_connection": "conv_shortcut"}
_SGM_TOP = {"lora_unet_time_embed_0": "lora_unet_time_embedding_linear_1",
            "lora_unet_time_embed_2": "lora_unet_time_embedding_linear_2",
            "lora_unet_label_emb_0_0": "lora_unet_add_embedding_linear_1",
            "lora_unet_label_emb_0_2": "lora_unet_add_embedding_linear_2",
            "lora_unet_input_blocks_0_0": "lora_unet_conv_in", "lora_unet_out_2": "lora_unet_conv_out"}


def module_table(pipe: Any) -> dict[str, Any]:
    """kohya name -> torch module holding `.weight`, for every Linear/Conv layer of the pipeline."""
    import torch

    table: dict[str, Any] = {}
    for attr, prefix in PARTS:
        model = getattr(pipe, attr, None)
        if model is None:
            continue
        for name, mod in model.named_modules():
            if not isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
                continue
            if attr != "unet":
                name = "text_model." + name.removeprefix("text_model.")
            table[prefix + name.replace(".", "_")] = mod
    return table


def _sgm_to_diffusers(name: str, layers_per_block: int) -> str:
    """One SGM-named UNet module -> its diffusers kohya name (attention and resnet layers)."""
    for old, new in _SGM_TOP.items():
        if name == old:
            return new
    mid = re.match(r"lora_unet_middle_block_(\d+)_(.*)", name)
    if mid:  # middle_block: resnet 0, attention 0, resnet 1
        j, rest = int(mid.group(1)), _SGM_RESNET.get(mid.group(2), mid.group(2))
        inner = "attentions_0" if j == 1 else f"resnets_{j // 2}"
        return f"lora_unet_mid_block_{inner}_{rest}"
    m = re.match(r"lora_unet_(input_blocks|output_blocks)_(\d+)_(\d+)_(.*)", name)
    if not m:
        return name
    where, i, j, rest = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
    per = layers_per_block + 1
    if where == "input_blocks":
        block, layer = (i - 1) // per, (i - 1) % per
        if rest == "op":
            return f"lora_unet_down_blocks_{block}_downsamplers_0_conv"
    else:
        block, layer = i // per, i % per
        if rest == "conv":
            return f"lora_unet_up_blocks_{block}_upsamplers_0_conv"
    inner = "resnets" if j == 0 else "attentions"
    rest = _SGM_RESNET.get(rest, rest)
    return f"lora_unet_{('down' if where == 'input_blocks' else 'up')}_blocks_{block}_{inner}_{layer}_{rest}"


@dataclass
class ApplyReport:
    applied: int  # modules changed
    unmatched: list[str]  # names of the files' modules the pipeline has no layer for


class LoraPatcher:
    """Edits a pipeline's weights in place; keeps a CPU copy of only the weights it touched."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.table = module_table(pipe)
        unet = getattr(pipe, "unet", None)
        self.layers_per_block = int(getattr(getattr(unet, "config", None), "layers_per_block", 2) or 2)
        self._backup: dict[str, Any] = {}

    def resolve(self, name: str) -> str:
        if name.startswith("lycoris_"):
            name = "lora_unet_" + name.removeprefix("lycoris_")
        if name.startswith("lora_unet_") and name not in self.table:
            name = _sgm_to_diffusers(name, self.layers_per_block)
        return name

    @property
    def touched(self) -> int:
        return len(self._backup)

    def apply(self, loras: Iterable[tuple[LoraFile, float]]) -> ApplyReport:
        """Replace whatever is applied by `loras` at their strengths (0 = left out)."""
        import torch

        self.restore()
        totals: dict[str, Any] = {}
        unmatched: list[str] = []
        for lora, strength in loras:
            if strength == 0:
                continue
            for name, md in lora.modules.items():
                key = self.resolve(name)
                mod = self.table.get(key)
                if mod is None:
                    unmatched.append(name)
                    continue
                original = mod.weight.detach().float()
                d = md.delta(original) * float(strength)
                totals[key] = d if key not in totals else totals[key] + d
        with torch.no_grad():
            for key, d in totals.items():
                w = self.table[key].weight
                self._backup[key] = w.detach().to("cpu", copy=True)
                w.copy_((w.detach().float() + d.to(w.device)).to(w.dtype))
        return ApplyReport(len(totals), sorted(set(unmatched)))

    def restore(self) -> None:
        """Put back the exact original of every weight changed since the last restore."""
        import torch

        with torch.no_grad():
            for key, original in self._backup.items():
                self.table[key].weight.copy_(original.to(self.table[key].weight.device))
        self._backup.clear()
