"""Florence-2 through transformers' native classes (no remote code).

`load_florence(folder, device, dtype)` loads `Florence2ForConditionalGeneration` +
`Florence2Processor` from a local folder only (`local_files_only=True`: `locate_model`
already decided where the files are). Captions: batched beam search, the processor's own
`post_process_generation`, one clean line each.
"""
from __future__ import annotations

from pathlib import Path

from core.errors import StudioError

from ..fileio import clean_caption
from .base import TASKS, CaptionOptions, Captioner, ModelSpec

SPEC = ModelSpec(kind="florence",
                 required=("config.json", "*.safetensors", "tokenizer*.json", "*processor_config.json"),
                 download=("*.json", "*.safetensors", "*.txt"),
                 example="florence-community/Florence-2-base")


class FlorenceCaptioner(Captioner):
    """A loaded Florence-2 model + processor on one device."""

    kind = "florence"

    def __init__(self, model, processor, device: str, dtype) -> None:
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype

    def token_limit(self, wanted: int) -> int:
        """`wanted`, capped so the decoder never runs past its position table (an IndexError)."""
        text_cfg = getattr(self.model.config, "text_config", None)
        limit = getattr(text_cfg, "max_position_embeddings", None)
        return max(1, min(int(wanted), int(limit) - 2)) if limit else int(wanted)

    def caption(self, images: list, opts: CaptionOptions) -> list[str]:
        import torch

        task = opts.task
        if task not in TASKS:
            raise StudioError("lora_data.bad_task", task=task)
        proc = self.processor
        inputs = proc(text=[task] * len(images), images=images, return_tensors="pt", padding=True)
        inputs = {k: (v.to(self.device, self.dtype) if k == "pixel_values" else v.to(self.device))
                  for k, v in inputs.items()}
        with torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=self.token_limit(opts.max_new_tokens),
                                      num_beams=opts.num_beams, do_sample=False)
        raw = proc.batch_decode(ids, skip_special_tokens=False)
        plain = proc.batch_decode(ids, skip_special_tokens=True)
        pad = getattr(proc.tokenizer, "pad_token", None) or "<pad>"
        out = []
        for text, fallback, img in zip(raw, plain, images):
            try:  # the processor knows how each task's answer is shaped
                parsed = proc.post_process_generation(text.replace(pad, ""), task=task, image_size=img.size)[task]
                caption = parsed if isinstance(parsed, str) else fallback
            except (ValueError, KeyError, AttributeError, TypeError):
                caption = fallback
            out.append(clean_caption(caption))
        return out


def load_florence(folder: Path, device: str, dtype) -> FlorenceCaptioner:
    """Load from a local folder; a clear StudioError when it is not a native Florence-2."""
    from transformers import Florence2ForConditionalGeneration, Florence2Processor

    try:
        processor = Florence2Processor.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        model = Florence2ForConditionalGeneration.from_pretrained(folder, dtype=dtype, local_files_only=True,
                                                                  trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - e.g. a remote-code-only checkpoint: say which and why
        raise StudioError("lora_data.captioner_bad", name=str(folder), hint=SPEC.example,
                          error=f"{type(exc).__name__}: {exc}"[:300]) from exc
    model.to(device).eval()
    return FlorenceCaptioner(model, processor, device, dtype)
