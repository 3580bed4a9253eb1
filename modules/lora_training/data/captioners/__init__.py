"""Captioners for LoRA datasets: one interface (`base.Captioner`), three kinds + combined.

- `florence`: Florence-2 (native transformers classes), detailed captions.
- `wd14`: WD14-family booru taggers (ONNX + selected_tags.csv, onnxruntime).
- `vlm`: Qwen2-VL / Qwen2.5-VL / Qwen3-VL captions from an editable prompt.
- `combined`: wd14 tags + one sentence from florence or vlm.

`load_captioner(...)` locates the model folder(s) (`base.locate_model`: local first, one
clear message when missing, no hub retries) and loads them; `run.caption_project` runs a
captioner over a project's images, batched, stoppable and resumable.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from core.errors import StudioError

from .base import (KINDS, TASKS, CaptionOptions, Captioner, apply_trigger, detect_kind, first_sentence,
                   list_local_captioners, locate_model)

DEFAULT_MODELS = {"florence": "florence-community/Florence-2-base",
                  "wd14": "SmilingWolf/wd-eva02-large-tagger-v3",
                  "vlm": "Qwen/Qwen2.5-VL-3B-Instruct"}
CONFIG_KEYS = {"florence": "DEFAULT_CAPTION_MODEL", "wd14": "DEFAULT_TAGGER_MODEL", "vlm": "DEFAULT_VLM_CAPTION_MODEL"}


def spec_of(kind: str):
    if kind == "florence":
        from .florence import SPEC
    elif kind == "wd14":
        from .wd14 import SPEC
    elif kind == "vlm":
        from .vlm import SPEC
    else:
        raise StudioError("lora_data.bad_captioner_kind", kind=kind, kinds=", ".join(KINDS))
    return SPEC


def load_one(kind: str, ref: str, captioners_dir: Path, default: str, device: str, dtype,
             log: Callable[[str], None] | None = None) -> Captioner:
    """Locate then load one model of `kind` (`florence`, `wd14` or `vlm`)."""
    folder = locate_model(spec_of(kind), ref, captioners_dir, default, log=log)
    if kind == "florence":
        from .florence import load_florence

        return load_florence(folder, device, dtype)
    if kind == "wd14":
        from .wd14 import load_wd14

        return load_wd14(folder, device)
    from .vlm import load_vlm

    return load_vlm(folder, device, dtype)


def load_captioner(kind: str, model: str, captioners_dir: Path, defaults: dict[str, str], device: str, dtype,
                   tagger_model: str = "", sentence_kind: str = "florence",
                   log: Callable[[str], None] | None = None) -> Captioner:
    """The captioner of `kind`; for `combined`, `tagger_model` tags and `model` writes the sentence."""
    if kind not in KINDS:
        raise StudioError("lora_data.bad_captioner_kind", kind=kind, kinds=", ".join(KINDS))
    if kind != "combined":
        return load_one(kind, model, captioners_dir, defaults.get(kind, ""), device, dtype, log)
    if sentence_kind not in ("florence", "vlm"):
        raise StudioError("lora_data.bad_captioner_kind", kind=sentence_kind, kinds="florence, vlm")
    from .combined import CombinedCaptioner

    tagger = load_one("wd14", tagger_model, captioners_dir, defaults.get("wd14", ""), device, dtype, log)
    sentence = load_one(sentence_kind, model, captioners_dir, defaults.get(sentence_kind, ""), device, dtype, log)
    return CombinedCaptioner(tagger, sentence)


__all__ = ["CONFIG_KEYS", "DEFAULT_MODELS", "KINDS", "TASKS", "CaptionOptions", "Captioner", "apply_trigger",
           "detect_kind", "first_sentence", "list_local_captioners", "load_captioner", "load_one", "locate_model",
           "spec_of"]
