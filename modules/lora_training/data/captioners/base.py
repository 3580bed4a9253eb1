"""The captioner interface, its options, and where each kind's model files are found.

A captioner turns a batch of PIL images into one caption string each
(`Captioner.caption(images, opts)`); `run.caption_project` does the batching, stop,
resume and writing. Three kinds exist (`florence`, `wd14`, `vlm`) plus `combined`
(booru tags from a tagger + one sentence from Florence-2 or a VLM).

Models live in folders under CAPTIONERS_DIR (`models/captioners/<name>/`), or are hub
ids. `locate_model` decides from the disk alone (see `core.hub`): a missing model gives
one message (`lora_data.captioner_missing`) naming the files it needs and where to put
them, at once, without a network retry.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core import hub
from core.errors import StudioError

from ..fileio import clean_caption

KINDS = ("florence", "wd14", "vlm", "combined")
TASKS = ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>")
DEFAULT_VLM_PROMPT = "Describe this image in one detailed paragraph, for a text-to-image training caption."
SENTENCE_PROMPT = "Describe this image in one sentence."


@dataclass(frozen=True)
class ModelSpec:
    """What a kind needs on disk (`required`: names or globs) and what to download."""

    kind: str
    required: tuple[str, ...]
    download: tuple[str, ...]
    example: str  # a hub id that loads with our code, named in the missing-model message


@dataclass
class CaptionOptions:
    kind: str = "florence"
    task: str = "<DETAILED_CAPTION>"  # florence
    max_new_tokens: int = 256  # florence, vlm
    num_beams: int = 3  # florence
    prompt: str = DEFAULT_VLM_PROMPT  # vlm
    general_threshold: float = 0.35  # wd14
    character_threshold: float = 0.85  # wd14
    include_rating: bool = False  # wd14
    blacklist: tuple[str, ...] = ()  # wd14
    tag_order: str = "booru"  # wd14: "booru" (rating, character, general) or "confidence"
    sentence_kind: str = "florence"  # combined: which model writes the sentence
    trigger_word: str = ""
    overwrite: bool = False
    batch_size: int = 4
    extra: dict = field(default_factory=dict)


class Captioner(ABC):
    """A loaded captioning model on one device."""

    kind: str = ""

    @abstractmethod
    def caption(self, images: list, opts: CaptionOptions) -> list[str]:
        """One cleaned caption per image, in order."""


def first_sentence(text: str) -> str:
    """The first sentence of a caption, ending with a full stop."""
    text = clean_caption(text)
    for i, ch in enumerate(text):
        if ch in ".!?" and (i + 1 == len(text) or text[i + 1] == " ") and i > 0:
            return text[: i + 1]
    return (text + ".") if text else ""


def apply_trigger(caption: str, trigger: str) -> str:
    """`trigger, caption`, unless the caption already starts with the trigger."""
    caption, trigger = clean_caption(caption), clean_caption(trigger).strip(", ")
    if not trigger:
        return caption
    if caption.lower() == trigger.lower() or caption.lower().startswith((trigger.lower() + ",",
                                                                         trigger.lower() + " ")):
        return caption
    return f"{trigger}, {caption}" if caption else trigger


def detect_kind(folder: Path) -> str | None:
    """Which kind of captioner a local folder holds (None: not a captioner)."""
    folder = Path(folder)
    if (folder / "model.onnx").is_file() and (folder / "selected_tags.csv").is_file():
        return "wd14"
    cfg = folder / "config.json"
    if not cfg.is_file():
        return None
    try:
        model_type = str(json.loads(cfg.read_text(encoding="utf-8")).get("model_type", ""))
    except (OSError, ValueError):
        return None
    if model_type.startswith("florence"):
        return "florence"
    if model_type.endswith("_vl"):
        return "vlm"
    return None


def list_local_captioners(folder: Path, kind: str | None = None) -> list[str]:
    """Captioner folders directly under `folder` or one level deeper (of one kind if given)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cands = [p for p in folder.iterdir() if p.is_dir()]
    cands += [q for p in list(cands) for q in p.iterdir() if q.is_dir()]
    found = [p for p in cands if (k := detect_kind(p)) and (kind is None or k == kind)]
    return sorted(str(p.relative_to(folder)) for p in found)


def _missing(spec: ModelSpec, name: str, folder: Path, files: list[str] | None = None) -> StudioError:
    # `where`: a folder the next run will find (a hub id's last part is looked up there)
    where = Path(folder) if files else Path(folder) / (name if hub.looks_like_repo_id(name) else spec.example).split("/")[-1]
    return StudioError("lora_data.captioner_missing", name=name or "?", folder=str(folder),
                       files=", ".join(files or spec.required), example=spec.example, where=str(where))


def locate_model(spec: ModelSpec, ref: str | None, captioners_dir: Path, default: str = "",
                 log: Callable[[str], None] | None = None) -> Path:
    """The local folder holding `spec`'s files for `ref` (or `default`); else one clear error.

    Order: a folder path; a folder under `captioners_dir` (`name`, `owner--name`, `owner/name`
    or the last part of a hub id); the hub cache; a download only when online (`core.hub`).
    """
    captioners_dir = Path(captioners_dir)
    ref = (ref or "").strip() or (default or "").strip()
    if not ref:
        raise _missing(spec, "?", captioners_dir)
    direct = Path(ref).expanduser()
    if direct.is_dir():
        lacking = hub.missing_files(direct, spec.required)
        if lacking:
            raise _missing(spec, str(direct), direct, lacking)
        return direct
    for cand in (captioners_dir / ref, captioners_dir / ref.replace("/", "--"), captioners_dir / ref.split("/")[-1]):
        if cand.is_dir():
            lacking = hub.missing_files(cand, spec.required)
            if lacking:
                raise _missing(spec, ref, cand, lacking)
            return cand
    if not hub.looks_like_repo_id(ref):
        raise _missing(spec, ref, captioners_dir)
    found = hub.find_or_fetch(ref, spec.required, spec.download, log=log)
    if found is None:
        raise _missing(spec, ref, captioners_dir)
    return found
