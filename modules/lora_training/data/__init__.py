"""Data preparation for LoRA training: projects, import, buckets, dedupe, captions.

Interface for the LoRA training module (`modules/lora_training/__init__.py`, `ui.py`):

- `DATA_JOB_KINDS`: `[lora.prepare, lora.caption]` JobKinds to add to `MODULE.job_kinds`.
  Their params are `PrepareParams` / `CaptionParams` (in `.jobs`); `run_prepare(job, params,
  ctx)` and `run_caption(...)` can be called from inside the trainer's own job to chain
  prepare -> caption -> train with one job handle.
- `build_data_ui(ctx, panel=None) -> dict[str, gradio component]`: builds the data section
  (call it inside the tab, e.g. in a column or accordion). Keys the trainer can read or
  wire: `project` (Dropdown, custom values allowed), `concept` (Textbox), `trigger_word`
  (Textbox), `resolution` (Number), `mode` (Radio buckets/crop), `source_dir`, `files`,
  `caption_task`, `caption_model`, `overwrite`, `prepare_btn`, `caption_btn`, `status`
  (Markdown: a finished job's summary and skipped files), `panel` (the `JobPanel` that
  follows the jobs started here; pass the tab's own panel to share it) and `job_id`
  (= `panel.job_id`), the captioner's `caption_kind` and the other settings named in
  `ui_data.CAPTION_EXTRA` (their values map onto `CaptionSettings`, `caption_kind` -> `kind`),
  plus the editor's `gallery`, `caption_box`, `freq`, `stats`, `save_btn`.
- Captioners (`.captioners`): Florence-2, WD14 ONNX taggers, Qwen-VL, combined; see
  docs/lora_data.md.
- `Project` (`.project`): folder layout (`data_dir`, `cache_dir`, `checkpoints_dir`,
  `samples_dir`, `manifest_path`) and `records(concept)` -> `ImageRecord`s with
  `original_size_hw`, `crop_top_left_yx`, `target_size_hw` for SDXL time ids; the same
  records flattened in `data/manifest.json` (see `.project`).

Importing this package is cheap (no torch, no gradio): engines load lazily.
"""
from __future__ import annotations

from typing import Any

from .jobs import DATA_JOB_KINDS, CaptionParams, PrepareParams, run_caption, run_prepare
from .project import ImageRecord, Project, list_projects, safe_name


def build_data_ui(ctx, panel=None) -> dict[str, Any]:
    """Build the data-preparation + caption-editor section; returns its components by name.

    `panel`: an existing `JobPanel` to follow the data jobs (else the section builds one).
    The locale key `lora_data.section` is a title for the section if the tab wants one.
    """
    from .ui_data import build_data_ui as _build

    return _build(ctx, panel)


__all__ = ["DATA_JOB_KINDS", "CaptionParams", "ImageRecord", "PrepareParams", "Project", "build_data_ui",
           "list_projects", "run_caption", "run_prepare", "safe_name"]
