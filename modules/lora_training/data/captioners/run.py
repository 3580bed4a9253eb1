"""Run a captioner over a project's prepared images: batched, stoppable, resumable.

`caption_project` writes one `.txt` per image (atomically): the trigger word first,
existing captions kept unless `overwrite`, progress after every image, a stop request
honoured between batches (within one image at batch size 1), and a batch that runs out of
memory retried in halves. Resumable: images listed in `skip` (those a stopped run of the
same job already wrote, see `jobs.run_caption`) are not captioned again, and `on_batch`
is told after every batch which images are done so a resume knows where to start. The
model is created lazily, only when at least one image needs a caption.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from core.errors import StudioError

from ..fileio import read_caption, write_text_atomic
from ..imaging import load_rgb_on_white
from ..project import Project, prepared_images
from .base import TASKS, CaptionOptions, Captioner, apply_trigger


@dataclass
class CaptionReport:
    written: list[str] = field(default_factory=list)  # "concept/file.png"
    kept: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)  # done by the run this one continues
    failed: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False

    def summary(self) -> dict[str, Any]:
        return {"written": len(self.written), "kept": len(self.kept), "resumed": len(self.resumed),
                "failed": len(self.failed), "stopped": self.stopped}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def has_caption(img: Path) -> bool:
    txt = img.with_suffix(".txt")
    if not txt.is_file():
        return False
    try:
        return bool(read_caption(txt)[0])
    except OSError:
        return False


def rel_name(img: Path) -> str:
    return f"{img.parent.name}/{img.name}"


def caption_project(project: Project, concept: str | None, captioner: Callable[[], Captioner],
                    options: CaptionOptions | None = None, job=None, skip: Iterable[str] = (),
                    on_batch: Callable[[list[str]], None] | None = None) -> CaptionReport:
    """Caption the prepared images; `captioner()` is called once, only if there is work."""
    opts = options or CaptionOptions()
    if opts.kind == "florence" and opts.task not in TASKS:
        raise StudioError("lora_data.bad_task", task=opts.task)
    images = prepared_images(project, concept)
    if not images:
        raise StudioError("lora_data.nothing_to_caption", project=project.name)
    report, skip = CaptionReport(), set(skip)
    todo = []
    for img in images:
        rel = rel_name(img)
        if rel in skip and has_caption(img):
            report.resumed.append(rel)
        elif opts.overwrite or not has_caption(img):
            todo.append(img)
        else:
            report.kept.append(rel)
    if job is not None and report.kept:
        job.info(job.t("lora_data.caption.kept", count=len(report.kept)))
    if job is not None and report.resumed:
        job.info(job.t("lora_data.caption.resumed", count=len(report.resumed)))
    if not todo:
        return report
    model = captioner()
    total, done, batch = len(todo), 0, max(1, opts.batch_size)
    while done < total:
        if job is not None and job.should_stop():
            report.stopped = True
            break
        chunk = todo[done:done + batch]
        pics, ok = [], []
        for p in chunk:
            try:
                pics.append(load_rgb_on_white(p))
                ok.append(p)
            except StudioError as exc:
                msg = exc.render(job.t) if job is not None else str(exc)
                report.failed.append({"file": rel_name(p), "error": msg})
                if job is not None:
                    job.warning(msg)
        try:
            captions = model.caption(pics, opts) if pics else []
        except Exception as exc:  # noqa: BLE001 - only OOM is recoverable here
            from core.models import ModelManager

            if ModelManager.is_oom(exc) and batch > 1:
                batch = max(1, batch // 2)
                _free_memory()
                if job is not None:
                    job.warning(job.t("lora_data.caption.oom_retry", batch=batch))
                continue
            raise
        for j, (p, cap) in enumerate(zip(ok, captions)):
            text = apply_trigger(cap, opts.trigger_word)
            write_text_atomic(p.with_suffix(".txt"), text)
            report.written.append(rel_name(p))
            if job is not None:
                job.log("debug", f"{p.name}: {text}")
                job.progress(done + j + 1, total, job.t("lora_data.progress.caption"))
        done += len(chunk)
        if on_batch is not None:
            on_batch(report.written + report.resumed)
    _mark_captioned(project, report.written, opts.kind)
    return report


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _mark_captioned(project: Project, written: list[str], source: str) -> None:
    if not written or not project.manifest_path.is_file():
        return

    def change(data: dict) -> None:
        for rel in written:
            concept, name = rel.split("/", 1)
            rec = data["concepts"].get(concept, {}).get("images", {}).get(name)
            if rec is not None:
                rec["caption_source"] = source
    project.update_manifest(change)
