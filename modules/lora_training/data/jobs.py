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
from core.params import MAX_ITEMS, MAX_NAME, MAX_PROMPT, StrictParams
from core.paths import SafeName

from .captioners.base import DEFAULT_VLM_PROMPT

CaptionTask = Literal["<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>"]
CaptionerKind = Literal["florence", "wd14", "vlm", "combined"]


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
    repeats: int = Field(default=1, ge=1, le=10_000)  # the concept's repeats per epoch
    kohya_folders: bool = False  # source_dir holds `10_name/` concept folders (concept + repeats from each)

    @field_validator("resolution")
    @classmethod
    def _multiple_of_64(cls, v: int) -> int:
        if v % 64:
            raise ValueError("resolution must be a multiple of 64")
        return v


class CaptionSettings(StrictParams):
    """Which captioner and its settings (also `lora.prepare_and_train`'s `caption_settings`)."""

    kind: CaptionerKind = "florence"
    tagger_model: str = ""  # combined: the WD14 tagger
    sentence_kind: Literal["florence", "vlm"] = "florence"  # combined: who writes the sentence
    prompt: str = Field(default=DEFAULT_VLM_PROMPT, min_length=1, max_length=MAX_PROMPT)  # vlm
    general_threshold: float = Field(default=0.35, ge=0.0, le=1.0)  # wd14
    character_threshold: float = Field(default=0.85, ge=0.0, le=1.0)  # wd14
    include_rating: bool = False  # wd14
    blacklist: str = ""  # wd14: comma-separated tags never written
    tag_order: Literal["booru", "confidence"] = "booru"  # wd14
    max_new_tokens: int = Field(default=256, ge=8, le=1024)  # florence, vlm


class CaptionParams(CaptionSettings):
    """Caption the prepared images of a project (Florence-2, a WD14 tagger, a VLM, or tags + sentence)."""

    project: SafeName = Field(min_length=1, max_length=MAX_NAME)
    concept: SafeName = Field("", max_length=MAX_NAME)  # empty = every concept of the project
    # folder, name under CAPTIONERS_DIR, or hub id; empty = the kind's default model setting.
    # For `combined`: the sentence model (of `sentence_kind`).
    model: str = ""
    task: CaptionTask = "<DETAILED_CAPTION>"
    trigger_word: str = Field(default="", max_length=MAX_NAME)
    overwrite: bool = False
    batch_size: int = Field(default=4, ge=1, le=64)
    num_beams: int = Field(default=3, ge=1, le=8)
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    resume_from: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9_-]*$")  # a stopped caption job


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
    if params.kohya_folders:
        return _run_kohya(job, params, project, opts)
    job.info(job.t("lora_data.log.import_start", project=project.name, concept=params.concept))
    report = import_images(project, params.concept, params.source_dir or None, params.files, opts, job=job)
    if "repeats" in params.model_fields_set:
        project.set_repeats(params.concept, params.repeats)
    _write_report(job, "import_report.json", report.to_json())
    s = report.summary()
    job.info(job.t("lora_data.log.import_done", imported=s["imported"], skipped=s["skipped"],
                   warnings=s["warnings"], captions=s["captions_copied"],
                   buckets=", ".join(f"{k}: {v}" for k, v in s["buckets"].items())))
    return {**s, "project_dir": str(project.dir)}


def _run_kohya(job, params: PrepareParams, project, opts) -> dict:
    """One import per `<repeats>_<concept>/` sub-folder of source_dir."""
    from .kohya_folders import import_kohya_folders

    reports = import_kohya_folders(project, params.source_dir, opts, job=job)
    _write_report(job, "import_report.json", {"concepts": [r.to_json() for r in reports]})
    for r in reports:
        s = r.summary()
        job.info(job.t("lora_data.log.import_concept", concept=s["concept"], repeats=project.repeats(s["concept"]),
                       imported=s["imported"], skipped=s["skipped"]))
    return {"concepts": {r.concept: {**r.summary(), "repeats": project.repeats(r.concept)} for r in reports},
            "imported": sum(len(r.imported) for r in reports), "stopped": any(r.stopped for r in reports),
            "project_dir": str(project.dir)}


PROGRESS_FILE = "caption_progress.json"


def _done_before(job, job_id: str) -> list[str]:
    """Images a stopped caption job had written (its progress file), for a resume."""
    import json

    if not job_id:
        return []
    try:
        return list(json.loads((job.workdir.parent / job_id / PROGRESS_FILE).read_text(encoding="utf-8"))["done"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def caption_options(params: CaptionParams):
    from .captioners import CaptionOptions

    prompt_changed = params.prompt != DEFAULT_VLM_PROMPT
    return CaptionOptions(kind=params.kind, task=params.task, max_new_tokens=params.max_new_tokens,
                          num_beams=params.num_beams, prompt=params.prompt,
                          general_threshold=params.general_threshold,
                          character_threshold=params.character_threshold, include_rating=params.include_rating,
                          blacklist=tuple(t.strip() for t in params.blacklist.split(",") if t.strip()),
                          tag_order=params.tag_order, sentence_kind=params.sentence_kind,
                          trigger_word=params.trigger_word, overwrite=params.overwrite,
                          batch_size=params.batch_size, extra={"custom_prompt": prompt_changed})


def caption_defaults(ctx) -> dict[str, str]:
    """The default model of each kind: its setting, else the built-in hub id."""
    from .captioners import CONFIG_KEYS, DEFAULT_MODELS

    return {k: str(ctx.config.get(CONFIG_KEYS[k], "") or DEFAULT_MODELS[k]) for k in DEFAULT_MODELS}


def run_caption(job, params: CaptionParams, ctx) -> dict:
    import torch

    from .captioners import load_captioner
    from .captioners.run import caption_project
    from .fileio import write_json_atomic
    from .project import Project

    project = Project.from_ctx(ctx, params.project)
    if not project.data_dir.is_dir():
        from core.errors import StudioError

        raise StudioError("lora_data.project_missing", project=project.name, path=str(project.dir))
    device = ctx.models.device
    # fp32 on CPU; on MPS fp16 Florence-2 is known to produce empty/garbled text
    dtype = torch.float32 if device in ("cpu", "mps") else ctx.models.dtype(params.precision)
    captioners = ctx.path("CAPTIONERS_DIR")
    defaults = caption_defaults(ctx)
    shown = params.model or defaults.get(params.sentence_kind if params.kind == "combined" else params.kind, "")
    if params.kind == "combined":
        shown = f"{params.tagger_model or defaults['wd14']} + {shown}"
    key = f"captioner:{params.kind}:{params.model}:{params.tagger_model}:{params.sentence_kind}"
    # own owner id: releasing the captioner must not release what a calling job (the
    # trainer's prepare-and-train) has loaded under its own id
    owner = f"{job.id}:captioner"

    def factory():
        job.info(job.t("lora_data.log.caption_load", model=shown, device=device))

        def load():
            return load_captioner(params.kind, params.model, captioners, defaults, device, dtype,
                                  tagger_model=params.tagger_model, sentence_kind=params.sentence_kind,
                                  log=lambda repo: job.info(job.t("lora_data.log.caption_download", model=repo)))
        return ctx.models.load(owner, key, load)

    def on_batch(done: list[str]) -> None:  # what a resume of this job will skip
        write_json_atomic(job.workdir / PROGRESS_FILE, {"done": done})

    try:
        report = caption_project(project, params.concept or None, factory, caption_options(params), job=job,
                                 skip=_done_before(job, params.resume_from), on_batch=on_batch)
    finally:
        ctx.models.release(owner, include_kept=True)  # never stays loaded: training comes next
    _write_report(job, "caption_report.json", report.to_json())
    s = report.summary()
    job.info(job.t("lora_data.log.caption_done", **s))
    return {**s, "project_dir": str(project.dir)}


def resume_caption(old: dict, old_id: str, ctx) -> dict:
    """A stopped caption job continues: same settings, the images it wrote are skipped."""
    return {**old, "resume_from": old_id}


DATA_JOB_KINDS = [
    JobKind(name="lora.prepare", params=PrepareParams, run=run_prepare, gpu=False, title_key="lora_data.job.prepare"),
    JobKind(name="lora.caption", params=CaptionParams, run=run_caption, gpu=True, title_key="lora_data.job.caption",
            resume=resume_caption),
]
