"""Import a folder (or uploaded files) into a project concept, ready for SDXL training.

For every source image, in a stable (sorted) order: hash the bytes (exact duplicates and
re-imports), decode it (EXIF orientation, CMYK/palette/16-bit, alpha on white), skip it
when its short side is under `min_size`, compare its dHash with what was kept (near
duplicates), plan the bucket (or the square crop), resize down, crop, write a PNG
atomically, copy a `.txt` caption found next to it (tolerant decoding), and record sizes
and crop offsets in the project manifest. The source is only ever read.

Every skipped file is listed with a reason; every soft problem (upscale needed, caption in
a legacy encoding) is a warning. A stop request is honoured between two images; what was
imported by then is kept and recorded.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from core.errors import StudioError

from .buckets import bucket_list, plan_bucket, plan_center_crop
from .dedupe import DuplicateIndex, dhash, sha256_file
from .fileio import read_caption, write_text_atomic
from .imaging import is_image_name, load_rgb_on_white, save_png_atomic
from .project import ImageRecord, Project

MANIFEST_FLUSH_EVERY = 20  # images; bounds what a hard crash can lose from the manifest


@dataclass
class ImportOptions:
    resolution: int = 1024
    mode: str = "buckets"  # "buckets" (aspect-ratio buckets) or "crop" (square center crop)
    min_size: int = 256  # shorter side in pixels; smaller images are skipped
    upscale_small: bool = False  # False: small images keep their size (floored to 64)
    dedupe: bool = True
    dhash_threshold: int = 4
    copy_captions: bool = True
    recursive: bool = True
    max_aspect: float = 4.0


@dataclass
class ImportReport:
    project: str
    concept: str
    imported: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {source, reason, detail}
    warnings: list[dict[str, Any]] = field(default_factory=list)  # {source, reason, detail}
    buckets: dict[str, int] = field(default_factory=dict)  # "WxH" -> count
    captions_copied: int = 0
    stopped: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        return {"project": self.project, "concept": self.concept, "imported": len(self.imported),
                "skipped": len(self.skipped), "warnings": len(self.warnings),
                "captions_copied": self.captions_copied, "buckets": self.buckets, "stopped": self.stopped}


def collect_sources(source_dir: str | Path | None = None, files: list[str | Path] | None = None,
                    recursive: bool = True, on_skip=None) -> tuple[list[Path], dict[Path, Path], list[Path]]:
    """(images, {image: caption .txt}, other files) from a folder and/or a list of files.

    The folder is scanned by `core.folders.walk_files`: links leaving it, loops and broken
    links are skipped and reported to `on_skip(path, reason)`."""
    from core.folders import walk_files

    candidates: list[Path] = []
    if source_dir:
        src = Path(source_dir).expanduser()
        if not src.is_dir():
            raise StudioError("lora_data.source_missing", path=str(src))
        candidates += sorted(walk_files(src, recursive, on_skip=on_skip))
    for f in files or []:
        p = Path(f)
        if not p.is_file():
            raise StudioError("lora_data.source_missing", path=str(p))
        candidates.append(p)
    images = [p for p in candidates if is_image_name(p)]
    texts = [p for p in candidates if p.suffix.lower() == ".txt"]
    others = [p for p in candidates if not is_image_name(p) and p.suffix.lower() != ".txt"]
    # a caption sits next to its image; uploads land in separate temp folders: match by stem
    by_stem = {t.stem: t for t in texts}
    captions: dict[Path, Path] = {}
    for img in images:
        beside = img.with_suffix(".txt")
        if beside.is_file():
            captions[img] = beside
        elif files and img.stem in by_stem:
            captions[img] = by_stem[img.stem]
    return images, captions, others


def _out_name(stem: str, used: set[str]) -> str:
    base = re.sub(r"[^\w\-]+", "_", stem, flags=re.UNICODE).strip("_.")[:80] or "image"
    name, n = f"{base}.png", 1
    while name.lower() in used:
        n += 1
        name = f"{base}_{n}.png"
    used.add(name.lower())
    return name


def _render(exc: StudioError, job) -> str:
    return exc.render(job.t) if job is not None else str(exc)


def import_images(project: Project, concept: str, source_dir: str | Path | None = None,
                  files: list[str | Path] | None = None, options: ImportOptions | None = None,
                  job=None) -> ImportReport:
    """Prepare images into `project/data/<concept>/`; see the module docstring."""
    opts = options or ImportOptions()
    if opts.mode not in ("buckets", "crop"):
        raise StudioError("lora_data.bad_mode", mode=opts.mode)
    concept_dir = project.concept_dir(concept)
    cname = concept_dir.name
    for src in [source_dir] if source_dir else []:
        resolved = Path(src).expanduser().resolve()
        if resolved == project.dir or project.dir in resolved.parents or resolved in project.dir.parents:
            raise StudioError("lora_data.source_is_project", path=str(resolved))
    from core.folders import job_reporter

    link_skips: list[tuple[Path, str]] = []  # links skipped by the scan, listed in the report
    keep = lambda path, reason: link_skips.append((path, reason))  # noqa: E731
    on_skip = job_reporter(job, extra=keep) if job is not None else keep
    images, captions, others = collect_sources(source_dir, files, opts.recursive, on_skip=on_skip)
    if not images:
        raise StudioError("lora_data.no_images", path=str(source_dir or ", ".join(map(str, files or []))))
    project.create()
    concept_dir.mkdir(parents=True, exist_ok=True)
    report = ImportReport(project.name, cname)
    for p, reason in link_skips:
        report.skipped.append({"source": str(p), "reason": reason, "detail": ""})
    for p in others:
        report.skipped.append({"source": str(p), "reason": "not_image", "detail": p.suffix})

    manifest = project.load_manifest()
    existing = manifest["concepts"].get(cname, {}).get("images", {})
    known_sha = {rec.get("sha256"): name for name, rec in existing.items()}
    used = {p.name.lower() for p in concept_dir.iterdir()} | {n.lower() for n in existing}
    index = DuplicateIndex(threshold=opts.dhash_threshold if opts.dedupe else -1)
    for name, rec in existing.items():
        try:
            index.add(rec["sha256"], int(rec["dhash"], 16), name)
        except (KeyError, ValueError):
            continue
    buckets = bucket_list(opts.resolution, opts.max_aspect)
    new_records: dict[str, dict] = {}

    def flush() -> None:
        def change(data: dict) -> None:
            c = data["concepts"].setdefault(cname, {})
            c.setdefault("images", {}).update(new_records)
            c["import"] = {"options": asdict(opts), **report.summary()}
        project.update_manifest(change)

    def skip(src: Path, reason: str, detail: str = "", **extra: Any) -> None:
        report.skipped.append({"source": str(src), "reason": reason, "detail": detail, **extra})
        if job is not None:
            job.warning(job.t(f"lora_data.skip.{reason}", file=src.name, detail=detail, **extra))

    def warn(src: Path, reason: str, detail: str = "") -> None:
        report.warnings.append({"source": str(src), "reason": reason, "detail": detail})
        if job is not None:
            job.warning(job.t(f"lora_data.warn.{reason}", file=src.name, detail=detail))

    total = len(images)
    try:
        for i, src in enumerate(images):
            if job is not None and job.should_stop():
                report.stopped = True
                break
            _import_one(src, captions.get(src), project, cname, opts, buckets, index, known_sha, used,
                        new_records, report, skip, warn, job)
            if job is not None:
                job.progress(i + 1, total, job.t("lora_data.progress.import"))
            if len(new_records) and len(new_records) % MANIFEST_FLUSH_EVERY == 0:
                flush()
    finally:
        flush()
    return report


def _import_one(src: Path, caption_src: Path | None, project: Project, cname: str, opts: ImportOptions,
                buckets, index: DuplicateIndex, known_sha: dict, used: set[str], new_records: dict,
                report: ImportReport, skip, warn, job) -> None:
    try:
        sha = sha256_file(src)
    except OSError as exc:
        skip(src, "unreadable", f"{type(exc).__name__}: {exc}"[:200])
        return
    if sha in known_sha:
        skip(src, "already_imported", known_sha[sha])
        return
    if opts.dedupe and (first := index.check_exact(sha)) is not None:
        skip(src, "duplicate", first)
        return
    try:
        img = load_rgb_on_white(src)
    except StudioError as exc:
        skip(src, "empty" if ("empty" in exc.key or "zero" in exc.key) else "unreadable",
             _render(exc, job))
        return
    w, h = img.size
    if min(w, h) < opts.min_size:
        skip(src, "too_small", f"{w}x{h}", min_size=opts.min_size)
        return
    hval = dhash(img)
    if opts.dedupe and (first := index.check_similar(hval)) is not None:
        skip(src, "near_duplicate", first)
        return
    plan = (plan_bucket(w, h, opts.resolution, opts.upscale_small, buckets) if opts.mode == "buckets"
            else plan_center_crop(w, h, opts.resolution, opts.upscale_small))
    if plan.resized != plan.original:
        img = img.resize(plan.resized, Image.Resampling.LANCZOS)
    tw, th = plan.target
    img = img.crop((plan.crop_left, plan.crop_top, plan.crop_left + tw, plan.crop_top + th))
    name = _out_name(src.stem, used)
    out = project.data_dir / cname / name
    try:
        save_png_atomic(img, out)
    except OSError as exc:  # disk full, permissions: stop here, what is done stays recorded
        raise StudioError("lora_data.write_failed", path=str(out), error=str(exc)[:200]) from exc
    notes: list[str] = []
    if plan.upscaled:
        notes.append("upscaled")
        warn(src, "upscaled", f"{w}x{h} -> {tw}x{th}")
    elif plan.too_small_for_bucket:
        notes.append("small_for_bucket")
        warn(src, "small_for_bucket", f"{w}x{h} -> {tw}x{th}")
    caption_source = "none"
    text = ""
    if opts.copy_captions and caption_src is not None:
        try:
            text, enc = read_caption(caption_src)
            if enc not in ("utf-8", "utf-16"):
                notes.append("caption_encoding")
                warn(caption_src, "caption_encoding", enc)
        except OSError as exc:
            warn(caption_src, "caption_unreadable", f"{type(exc).__name__}: {exc}"[:200])
    if text:
        try:
            write_text_atomic(out.with_suffix(".txt"), text)
        except OSError as exc:
            raise StudioError("lora_data.write_failed", path=str(out.with_suffix(".txt")),
                              error=str(exc)[:200]) from exc
        caption_source = "copied"
        report.captions_copied += 1
    index.add(sha, hval, name)
    rec = ImageRecord(file=name, concept=cname, source=str(src), sha256=sha, dhash=f"{hval:016x}",
                      original_size_hw=plan.original_size_hw, resized_size_hw=plan.resized_size_hw,
                      crop_top_left_yx=plan.crop_top_left_yx, target_size_hw=plan.target_size_hw,
                      upscaled=plan.upscaled, caption_source=caption_source, warnings=notes)
    new_records[name] = rec.to_json()
    report.imported.append(name)
    key = f"{tw}x{th}"
    report.buckets[key] = report.buckets.get(key, 0) + 1
