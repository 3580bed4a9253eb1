"""Job kinds of the data side of LoRA training: `lora.prepare` and `lora.caption`.

Both are plain functions `run(job, params, ctx)` over pydantic params, so the UI, the
REST API (`POST /api/jobs`, 422 naming a bad field), the CLI and the trainer's own
"Prepare & Train" job call the same code. The trainer chains them by calling
`run_prepare` / `run_caption` inside its job with the same `job` handle.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from core.module import JobKind
from core.params import MAX_ITEMS, MAX_NAME, StrictParams
from core.paths import SafeName

CaptionTask = Literal["<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>"]


class PrepareParams(StrictParams):
    """Import images into `LORA_PROJECTS_DIR/<project>/data/<concept>/`."""

    project: SafeName = Field(min_length=1, max_length=MAX_NAME)
    concept: SafeName = Field(default="default", min_length=1, max_length=MAX_NAME)
    source_dir: str = ""  # a folder, read only
    files: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)  # or uploaded files (captions .txt matched by name)
    resolution: int = Field(default=1024, ge=64, le=4096)
    mode: Literal["buckets", "crop"] = "buckets"
    min_size: int = Field(default=256, ge=64, le=4096)
    upscale_small: bool = False
    dedupe: bool = True
    dhash_threshold: int = Field(default=4, ge=0, le=32)
    copy_captions: bool = True
    recursive: bool = True

    @field_validator("resolution")
    @classmethod
    def _multiple_of_64(cls, v: int) -> int:
        if v % 64:
            raise ValueError("resolution must be a multiple of 64")
        return v


class CaptionParams(StrictParams):
    """Caption the prepared images of a project with Florence-2."""

    project: SafeName = Field(min_length=1, max_length=MAX_NAME)
    concept: SafeName = Field("", max_length=MAX_NAME)  # empty = every concept of the project
    model: str = ""  # folder, name under CAPTIONERS_DIR, or hub id; empty = DEFAULT_CAPTION_MODEL
    task: CaptionTask = "<DETAILED_CAPTION>"
    trigger_word: str = Field(default="", max_length=MAX_NAME)
    overwrite: bool = False
    batch_size: int = Field(default=4, ge=1, le=64)
    max_new_tokens: int = Field(default=256, ge=8, le=1024)
    num_beams: int = Field(default=3, ge=1, le=8)
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"


def _write_report(job, name: str, data: dict) -> None:
    from .fileio import write_json_atomic

    out = job.workdir / name
    write_json_atomic(out, data)
    job.artifact(out, "report")


def run_prepare(job, params: PrepareParams, ctx) -> dict:
    from .importer import ImportOptions, import_images
    from .project import Project

    project = Project.from_ctx(ctx, params.project)
    opts = ImportOptions(resolution=params.resolution, mode=params.mode, min_size=params.min_size,
                         upscale_small=params.upscale_small, dedupe=params.dedupe,
                         dhash_threshold=params.dhash_threshold, copy_captions=params.copy_captions,
                         recursive=params.recursive)
    job.info(job.t("lora_data.log.import_start", project=project.name, concept=params.concept))
    report = import_images(project, params.concept, params.source_dir or None, params.files, opts, job=job)
    _write_report(job, "import_report.json", report.to_json())
    s = report.summary()
    job.info(job.t("lora_data.log.import_done", imported=s["imported"], skipped=s["skipped"],
                   warnings=s["warnings"], captions=s["captions_copied"],
                   buckets=", ".join(f"{k}: {v}" for k, v in s["buckets"].items())))
    return {**s, "project_dir": str(project.dir)}


def run_caption(job, params: CaptionParams, ctx) -> dict:
    import torch

    from .captioner import CaptionOptions, caption_project, load_florence
    from .project import Project

    project = Project.from_ctx(ctx, params.project)
    if not project.data_dir.is_dir():
        from core.errors import StudioError

        raise StudioError("lora_data.project_missing", project=project.name, path=str(project.dir))
    device = ctx.models.device
    # fp32 on CPU; on MPS fp16 Florence-2 is known to produce empty/garbled text
    dtype = torch.float32 if device in ("cpu", "mps") else ctx.models.dtype(params.precision)
    captioners = ctx.path("CAPTIONERS_DIR")
    default = ctx.config.get("DEFAULT_CAPTION_MODEL", "")
    key = f"florence:{params.model or default}"
    # own owner id: releasing the captioner must not release what a calling job (the
    # trainer's prepare-and-train) has loaded under its own id
    owner = f"{job.id}:captioner"

    def factory():
        job.info(job.t("lora_data.log.caption_load", model=params.model or default, device=device))
        return ctx.models.load(owner, key, lambda: load_florence(params.model, captioners, default, device, dtype))

    opts = CaptionOptions(task=params.task, trigger_word=params.trigger_word, overwrite=params.overwrite,
                          batch_size=params.batch_size, max_new_tokens=params.max_new_tokens,
                          num_beams=params.num_beams)
    try:
        report = caption_project(project, params.concept or None, factory, opts, job=job)
    finally:
        ctx.models.release(owner, include_kept=True)  # never stays loaded: training comes next
    _write_report(job, "caption_report.json", report.to_json())
    s = report.summary()
    job.info(job.t("lora_data.log.caption_done", **s))
    return {**s, "project_dir": str(project.dir)}


DATA_JOB_KINDS = [
    JobKind(name="lora.prepare", params=PrepareParams, run=run_prepare, gpu=False, title_key="lora_data.job.prepare"),
    JobKind(name="lora.caption", params=CaptionParams, run=run_caption, gpu=True, title_key="lora_data.job.caption"),
]
