"""Florence-2 captioning through transformers' native classes (no remote code).

`resolve_model` finds the captioner: a folder path, a folder under CAPTIONERS_DIR (by
name, `owner/name` or `owner--name`), else a hub id that transformers fetches into its
normal cache when the machine is online. When none of that works the user gets one clear
message (`lora_data.captioner_missing`): what is missing and where to put it.

`caption_project` writes one `.txt` per prepared image: batched generation, the
processor's own `post_process_generation`, the trigger word first, existing captions kept
unless `overwrite`, progress after every batch, a stop request honoured between batches
(so within one image at batch size 1), and a batch that runs out of memory retried in
halves. The model is created lazily, only when at least one image needs a caption; the job
wrapper releases it from `ctx.models` at the end so it never sits in VRAM during training.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.errors import StudioError

from ..train.concepts import is_mask_path
from .fileio import clean_caption, read_caption, write_text_atomic
from .imaging import is_image_name, load_rgb_on_white
from .project import Project

TASKS = ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>")
NATIVE_HINT = "florence-community/Florence-2-base"  # converted for the native classes


def list_local_captioners(folder: Path) -> list[str]:
    """Model folders (with a config.json) directly under `folder` or one level deeper."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if (p / "config.json").is_file()]
    found += [q for p in folder.iterdir() if p.is_dir() for q in p.iterdir() if (q / "config.json").is_file()]
    return sorted(str(p.relative_to(folder)) for p in found)


def resolve_model(ref: str | None, captioners_dir: Path, default: str) -> tuple[str, bool]:
    """(folder or hub id, is_local). A path that names a missing folder is an error."""
    ref = (ref or "").strip() or (default or "").strip()
    if not ref:
        raise StudioError("lora_data.captioner_missing", name="?", folder=str(captioners_dir), hint=NATIVE_HINT)
    p = Path(ref).expanduser()
    if p.is_dir():
        return str(p), True
    for cand in (captioners_dir / ref, captioners_dir / ref.replace("/", "--"), captioners_dir / ref.split("/")[-1]):
        if (cand / "config.json").is_file():
            return str(cand), True
    looks_like_path = p.is_absolute() or ref.startswith((".", "~")) or "\\" in ref or ref.count("/") > 1
    if looks_like_path:
        raise StudioError("lora_data.captioner_missing", name=ref, folder=str(captioners_dir), hint=NATIVE_HINT)
    return ref, False


class FlorenceCaptioner:
    """A loaded Florence-2 model + processor on one device."""

    def __init__(self, model, processor, device: str, dtype) -> None:
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype

    def token_limit(self, wanted: int) -> int:
        """`wanted`, capped so the decoder never runs past its position table (an IndexError)."""
        text_cfg = getattr(self.model.config, "text_config", None)
        limit = getattr(text_cfg, "max_position_embeddings", None)
        return max(1, min(int(wanted), int(limit) - 2)) if limit else int(wanted)

    def caption(self, images: list, task: str = "<DETAILED_CAPTION>", max_new_tokens: int = 256,
                num_beams: int = 3) -> list[str]:
        import torch

        if task not in TASKS:
            raise StudioError("lora_data.bad_task", task=task)
        proc = self.processor
        inputs = proc(text=[task] * len(images), images=images, return_tensors="pt", padding=True)
        inputs = {k: (v.to(self.device, self.dtype) if k == "pixel_values" else v.to(self.device))
                  for k, v in inputs.items()}
        with torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=self.token_limit(max_new_tokens),
                                      num_beams=num_beams, do_sample=False)
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


def load_florence(ref: str | None, captioners_dir: Path, default: str, device: str, dtype) -> FlorenceCaptioner:
    """Load model + processor; a clear StudioError when missing offline or not Florence-2."""
    from transformers import Florence2ForConditionalGeneration, Florence2Processor

    source, local = resolve_model(ref, captioners_dir, default)
    try:
        processor = Florence2Processor.from_pretrained(source, trust_remote_code=False)
        model = Florence2ForConditionalGeneration.from_pretrained(source, dtype=dtype, trust_remote_code=False)
    except OSError as exc:  # not downloadable now (offline) or files missing from the folder
        raise StudioError("lora_data.captioner_missing", name=source, folder=str(captioners_dir),
                          hint=NATIVE_HINT) from exc
    except Exception as exc:  # noqa: BLE001 - e.g. a remote-code-only checkpoint: say which and why
        raise StudioError("lora_data.captioner_bad", name=source, hint=NATIVE_HINT,
                          error=f"{type(exc).__name__}: {exc}"[:300]) from exc
    model.to(device).eval()
    return FlorenceCaptioner(model, processor, device, dtype)


def apply_trigger(caption: str, trigger: str) -> str:
    """`trigger, caption`, unless the caption already starts with the trigger."""
    caption, trigger = clean_caption(caption), clean_caption(trigger).strip(", ")
    if not trigger:
        return caption
    if caption.lower() == trigger.lower() or caption.lower().startswith((trigger.lower() + ",",
                                                                         trigger.lower() + " ")):
        return caption
    return f"{trigger}, {caption}" if caption else trigger


@dataclass
class CaptionOptions:
    task: str = "<DETAILED_CAPTION>"
    trigger_word: str = ""
    overwrite: bool = False
    batch_size: int = 4
    max_new_tokens: int = 256
    num_beams: int = 3


@dataclass
class CaptionReport:
    written: list[str] = field(default_factory=list)  # "concept/file.png"
    kept: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False

    def summary(self) -> dict[str, Any]:
        return {"written": len(self.written), "kept": len(self.kept), "failed": len(self.failed),
                "stopped": self.stopped}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def prepared_images(project: Project, concept: str | None = None) -> list[Path]:
    """Every image in the project's concept folders (or one concept), sorted."""
    names = [project.concept_dir(concept).name] if concept else project.concepts()
    out: list[Path] = []
    for name in names:
        d = project.data_dir / name
        if d.is_dir():
            out += sorted(p for p in d.iterdir() if p.is_file() and is_image_name(p) and not p.name.startswith(".")
                          and not is_mask_path(p))  # loss masks are not captioned
    return out


def _has_caption(img: Path) -> bool:
    txt = img.with_suffix(".txt")
    if not txt.is_file():
        return False
    try:
        return bool(read_caption(txt)[0])
    except OSError:
        return False


def caption_project(project: Project, concept: str | None, captioner: Callable[[], FlorenceCaptioner],
                    options: CaptionOptions | None = None, job=None) -> CaptionReport:
    """Caption the prepared images; `captioner()` is called once, only if there is work."""
    opts = options or CaptionOptions()
    if opts.task not in TASKS:
        raise StudioError("lora_data.bad_task", task=opts.task)
    images = prepared_images(project, concept)
    if not images:
        raise StudioError("lora_data.nothing_to_caption", project=project.name)
    report = CaptionReport()
    todo = []
    for img in images:
        (todo.append(img) if opts.overwrite or not _has_caption(img) else report.kept.append(_rel(project, img)))
    if job is not None and report.kept:
        job.info(job.t("lora_data.caption.kept", count=len(report.kept)))
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
                report.failed.append({"file": _rel(project, p), "error": msg})
                if job is not None:
                    job.warning(msg)
        try:
            captions = model.caption(pics, opts.task, opts.max_new_tokens, opts.num_beams) if pics else []
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
            report.written.append(_rel(project, p))
            if job is not None:
                job.log("debug", f"{p.name}: {text}")
                job.progress(done + j + 1, total, job.t("lora_data.progress.caption"))
        done += len(chunk)
    _mark_captioned(project, report.written)
    return report


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _rel(project: Project, img: Path) -> str:
    return f"{img.parent.name}/{img.name}"


def _mark_captioned(project: Project, written: list[str]) -> None:
    if not written or not project.manifest_path.is_file():
        return

    def change(data: dict) -> None:
        for rel in written:
            concept, name = rel.split("/", 1)
            rec = data["concepts"].get(concept, {}).get("images", {}).get(name)
            if rec is not None:
                rec["caption_source"] = "florence"
    project.update_manifest(change)
