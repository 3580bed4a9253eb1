"""LoRA training for SDXL: the studio's main tab.

Job kinds: `lora.train` (train from a prepared data folder, resumable), the data side's
kinds (`modules.lora_training.data`: import, captions) and `lora.prepare_and_train`. Heavy imports (torch, diffusers) happen inside the run functions
so the app starts fast.
"""
from __future__ import annotations

from core.module import JobKind, Module
from modules.lora_training.data import DATA_JOB_KINDS
from modules.lora_training.train.config import TrainParams
from modules.lora_training.train.prepare_and_train import PrepareAndTrainParams


def _run_train(job, params, ctx):
    from modules.lora_training.train.trainer import train

    return train(job, params, ctx)


def _run_prepare_and_train(job, params, ctx):
    from modules.lora_training.train.prepare_and_train import run_prepare_and_train

    return run_prepare_and_train(job, params, ctx)


def _last_state(job_id: str, ctx) -> str:
    """The newest checkpoint the job wrote that still exists, else the project's latest."""
    from pathlib import Path

    for art in reversed(ctx.store.artifacts(job_id, "checkpoint")):
        if (Path(art["path"]) / "meta.json").is_file():
            return art["path"]
    return "latest"


def _resume_train(params: dict, job_id: str, ctx) -> dict:
    return {**params, "resume_from": _last_state(job_id, ctx)}


def _resume_prepare_and_train(params: dict, job_id: str, ctx) -> dict:
    # the data is prepared (and captioned) already: continue the training part only
    return {**params, "source_dir": "", "files": [], "caption": False,
            "train": {**params.get("train", {}), "resume_from": _last_state(job_id, ctx)}}


def _build_ui(ctx):
    from modules.lora_training.ui import build_ui

    return build_ui(ctx)


JOB_KINDS = [
    JobKind(name="lora.train", params=TrainParams, run=_run_train, gpu=True, title_key="lora.kind.train",
            resume=_resume_train),
    JobKind(name="lora.prepare_and_train", params=PrepareAndTrainParams, run=_run_prepare_and_train, gpu=True,
            title_key="lora.kind.prepare_and_train", resume=_resume_prepare_and_train, compare_root="train"),
]

MODULE = Module(id="lora_training", title_key="lora.title", order=10, build_ui=_build_ui,
                job_kinds=JOB_KINDS + list(DATA_JOB_KINDS))
