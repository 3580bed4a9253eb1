"""Captions from a vision-language model (Qwen2-VL / Qwen2.5-VL / Qwen3-VL), native classes only.

The model class is picked from `config.json`'s `model_type` among transformers' built-in
ones (never remote code). Inputs are built from the model's own tokenizer (its chat
template) and image processor (`AutoTokenizer` / `AutoImageProcessor`) rather than
`AutoProcessor`: the Qwen-VL processors also require a video processor, which needs
torchvision, which the studio does not depend on. What the processor would do for images
is small and done here: each `<|image_pad|>` becomes one token per merged patch
(`grid_t*grid_h*grid_w / merge_size**2`), and `mm_token_type_ids` marks those tokens so the
model computes its 3-D rotary positions. Batches are left-padded; greedy decoding.
"""
from __future__ import annotations

import json
from pathlib import Path

from core.errors import StudioError

from ..fileio import clean_caption
from .base import CaptionOptions, Captioner, ModelSpec

SPEC = ModelSpec(kind="vlm", required=("config.json", "*.safetensors", "tokenizer*.json", "preprocessor_config.json"),
                 download=("*.json", "*.safetensors", "*.jinja", "*.txt"), example="Qwen/Qwen2.5-VL-3B-Instruct")
MODEL_CLASSES = {"qwen2_vl": "Qwen2VLForConditionalGeneration", "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
                 "qwen3_vl": "Qwen3VLForConditionalGeneration", "qwen3_vl_moe": "Qwen3VLMoeForConditionalGeneration"}
IMAGE_TOKEN = "<|image_pad|>"
# The Qwen chat format, for a tokenizer saved without its template.
FALLBACK_TEMPLATE = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                     "<|vision_start|><|image_pad|><|vision_end|>{prompt}<|im_end|>\n<|im_start|>assistant\n")


class VLMCaptioner(Captioner):
    kind = "vlm"

    def __init__(self, model, tokenizer, image_processor, device: str, dtype) -> None:
        self.model, self.tokenizer, self.image_processor = model, tokenizer, image_processor
        self.device, self.dtype = device, dtype
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.merge = int(getattr(image_processor, "merge_size", 2) or 2)

    def prompt_text(self, prompt: str) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return FALLBACK_TEMPLATE.format(prompt=prompt)

    def inputs(self, images: list, prompt: str) -> dict:
        """What `generate` needs for a batch (the work of the Qwen-VL processor, images only)."""
        pix = self.image_processor(images=images, return_tensors="pt")
        grid = pix["image_grid_thw"]
        base = self.prompt_text(prompt)
        texts = [base.replace(IMAGE_TOKEN, IMAGE_TOKEN * int(g.prod() // self.merge ** 2), 1) for g in grid]
        self.tokenizer.padding_side = "left"  # generation appends on the right
        enc = self.tokenizer(texts, padding=True, return_tensors="pt")
        out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
               "mm_token_type_ids": (enc["input_ids"] == self.image_token_id).long(),
               "pixel_values": pix["pixel_values"].to(self.dtype), "image_grid_thw": grid}
        return {k: v.to(self.device) for k, v in out.items()}

    def generate(self, images: list, prompt: str, max_new_tokens: int) -> list[str]:
        import torch

        inputs = self.inputs(images, prompt)
        pad = self.tokenizer.pad_token_id
        with torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=int(max_new_tokens), do_sample=False,
                                      pad_token_id=pad if pad is not None else self.tokenizer.eos_token_id)
        new = ids[:, inputs["input_ids"].shape[1]:]
        return [clean_caption(t) for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def caption(self, images: list, opts: CaptionOptions) -> list[str]:
        return self.generate(images, opts.prompt, opts.max_new_tokens)


def model_class(folder: Path):
    """The native transformers class for the folder's `model_type` (a clear error if none)."""
    import transformers

    try:
        model_type = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("model_type", "")
    except (OSError, ValueError) as exc:
        raise StudioError("lora_data.captioner_bad", name=str(folder), hint=SPEC.example,
                          error=f"{type(exc).__name__}: {exc}") from exc
    name = MODEL_CLASSES.get(model_type)
    cls = getattr(transformers, name, None) if name else None
    if cls is None:
        raise StudioError("lora_data.vlm_unsupported", name=str(folder), model_type=model_type or "?",
                          supported=", ".join(MODEL_CLASSES))
    return cls


def load_vlm(folder: Path, device: str, dtype) -> VLMCaptioner:
    from transformers import AutoImageProcessor, AutoTokenizer

    cls = model_class(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        image_processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        model = cls.from_pretrained(folder, dtype=dtype, local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - damaged files, a wrong folder: say which and why
        raise StudioError("lora_data.captioner_bad", name=str(folder), hint=SPEC.example,
                          error=f"{type(exc).__name__}: {exc}"[:300]) from exc
    model.to(device).eval()
    return VLMCaptioner(model, tokenizer, image_processor, device, dtype)
