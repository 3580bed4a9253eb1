"""`lora.prepare_and_train`: import (+ buckets) -> Florence-2 captions -> training, in one job.

The data side (`modules.lora_training.data`: `run_prepare`, `run_caption`) runs with the same
job handle, so the user follows one log, one progress bar and one Stop button. The
captioner is released before SDXL is loaded (run_caption does it; the trainer then calls
`unload_others`). A Stop during preparation ends the job before any training starts.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from core.params import MAX_ITEMS, MAX_NAME, StrictParams
from core.paths import SafeName
from modules.lora_training.train.config import TrainParams


class PrepareAndTrainParams(StrictParams):
    train: TrainParams = Field(default_factory=TrainParams)
    source_dir: str = Field("", description="folder to import from (never modified); empty = use prepared data")
    files: list[str] = Field(default_factory=list, max_length=MAX_ITEMS, description="or uploaded files")
    concept: SafeName = Field("default", min_length=1, max_length=MAX_NAME)
    mode: Literal["buckets", "crop"] = "buckets"
    caption: bool = True
    caption_task: Literal["<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>"] = "<DETAILED_CAPTION>"
    caption_model: str = ""
    overwrite_captions: bool = False


def run_prepare_and_train(job: Any, params: PrepareAndTrainParams, ctx: Any) -> dict:
    from modules.lora_training import data as data_side
    from modules.lora_training.train.trainer import train

    tp = params.train
    result: dict = {}
    if params.source_dir or params.files:
        result["prepare"] = data_side.run_prepare(job, data_side.PrepareParams(
            project=tp.project, concept=params.concept, source_dir=params.source_dir, files=params.files,
            resolution=max(64, tp.resolution // 64 * 64), mode=params.mode), ctx)
    if job.should_stop():
        return {**result, "stopped": True}
    if params.caption:
        result["caption"] = data_side.run_caption(job, data_side.CaptionParams(
            project=tp.project, concept=params.concept, model=params.caption_model, task=params.caption_task,
            trigger_word=tp.trigger_word, overwrite=params.overwrite_captions), ctx)
    if job.should_stop():
        return {**result, "stopped": True}
    result["train"] = train(job, tp, ctx)
    return result
