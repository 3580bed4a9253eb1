"""The `sr.upscale` job: model + inputs (files, folders, videos) -> files in an output folder.

Used the same way by the UI, the REST API (`POST /api/jobs`, kind `sr.upscale`) and the CLI.
Folders are walked recursively and their relative names kept; files that are not images
are skipped (and listed). A broken image is logged and skipped, the batch goes on.
Stop is checked before every tile and frame: finished files stay, the image being worked
on is not written (nothing half-done ever lands under a final name).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import StudioError
from core.paths import inside
from modules.super_resolution.params import VIDEO_EXTS, WEIGHT_EXTS, UpscaleParams

if TYPE_CHECKING:  # pragma: no cover
    from core.context import StudioContext
    from core.jobs import Job


@dataclass
class Item:
    src: Path
    dst: Path
    video: bool = False


def list_models(folder: Path) -> list[str]:
    """Weight files under the upscalers folder, as names relative to it."""
    if not folder.is_dir():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in WEIGHT_EXTS and not p.name.startswith("."))


def resolve_model(name: str, folder: Path) -> Path:
    p = Path(name).expanduser()
    for cand in ([p] if p.is_absolute() else [folder / p, p]):
        if cand.is_file():
            return cand.resolve()
    raise StudioError("sr.model_missing", name=name, folder=str(folder))


def _out_name(src: Path, params: UpscaleParams, video: bool) -> str:
    ext = src.suffix if (params.format == "same" or video) else "." + params.format
    if not video and ext.lower() in (".gif", ".bmp", ".tga"):
        ext = ".png"  # upscaled stills go to a lossless format that keeps alpha and 16-bit
    return f"{src.stem}{params.suffix}{ext}"


def collect(params: UpscaleParams, out_dir: Path, on_skip=None) -> tuple[list[Item], list[str]]:
    """(work items, skipped non-image paths). Output never equals an input.

    Folders are scanned once by `core.folders.walk_files` (links leaving a folder, loops and
    broken links are skipped and reported to `on_skip`)."""
    from core.folders import walk_files
    from modules.super_resolution.files import is_image

    items: list[Item] = []
    skipped: list[str] = []
    folders = [Path(i).expanduser() for i in params.inputs if Path(i).expanduser().is_dir()]
    for raw in params.inputs:
        src = Path(raw).expanduser().resolve()
        if not src.exists():
            raise StudioError("sr.input_missing", path=raw)
        if src.is_dir():
            base = out_dir / src.name if len(folders) > 1 else out_dir
            for f in walk_files(src, recursive=True, on_skip=on_skip):
                if is_image(f):
                    rel = f.relative_to(src)
                    items.append(Item(f, base / rel.parent / _out_name(f, params, False)))
                else:
                    skipped.append(str(f))
        elif src.suffix.lower() in VIDEO_EXTS:
            items.append(Item(src, out_dir / _out_name(src, params, True), video=True))
        elif is_image(src):
            items.append(Item(src, out_dir / _out_name(src, params, False)))
        else:
            skipped.append(str(src))
    seen: set[Path] = set()
    for it in items:
        if it.dst.resolve() == it.src.resolve():
            raise StudioError("sr.same_as_input", path=str(it.src))
        if it.dst in seen:  # two inputs with one name: keep both
            n = 1
            while it.dst.with_name(f"{it.dst.stem}_{n}{it.dst.suffix}") in seen:
                n += 1
            it.dst = it.dst.with_name(f"{it.dst.stem}_{n}{it.dst.suffix}")
        seen.add(it.dst)
    return items, skipped


def run_upscale(job: "Job", params: UpscaleParams, ctx: "StudioContext") -> dict[str, Any]:
    from modules.super_resolution.engine import Upscaler
    from modules.super_resolution.tiling import TileStopped

    models_dir = ctx.path("UPSCALERS_DIR")
    weights = resolve_model(params.model, models_dir)
    # a typed output folder lies under OUTPUTS_DIR, whoever typed it (UI, REST, CLI)
    out_dir = inside(ctx.path("OUTPUTS_DIR"), params.output_dir, "output_dir") if params.output_dir \
        else ctx.path("OUTPUTS_DIR") / "upscaled" / job.id
    out_dir.mkdir(parents=True, exist_ok=True)
    from core.folders import job_reporter

    items, skipped = collect(params, out_dir, on_skip=job_reporter(job))
    if not items:
        raise StudioError("sr.no_inputs")
    for s in skipped:
        job.info(job.t("sr.log.skipped", path=s))

    device = ctx.models.device
    # auto on a GPU: fp16, as Real-ESRGAN does; bf16's 8-bit mantissa would cost visible
    # precision in the output (and all of 16-bit inputs' extra bits)
    precision = "fp16" if params.precision == "auto" and device != "cpu" else params.precision
    dtype = ctx.models.dtype(precision)
    key = f"sr:{weights}:{weights.stat().st_mtime_ns}:{device}:{dtype}"
    up: Upscaler = ctx.models.load(job.id, key, lambda: Upscaler.from_file(weights, device, dtype))
    job.info(job.t("sr.log.model", name=weights.name, desc=up.spec.describe(), device=device,
                   dtype=str(up.dtype).replace("torch.", "")))

    failed: list[dict[str, str]] = []
    frames: dict[Path, int] = {}
    for it in [it for it in items if it.video]:
        try:
            frames[it.src] = _frame_count(it.src)
        except StudioError as exc:  # an unreadable video fails alone, the rest still runs
            failed.append({"path": str(it.src), "error": exc.render(job.t)})
            job.warning(exc.render(job.t))
            items.remove(it)
    total = float(sum(1 for it in items if not it.video) + sum(frames.values()))
    state = {"done": 0.0}
    outputs: list[str] = []
    pairs: list[list[str]] = []  # [source, result] of images, for the before/after slider
    stopped = False
    started = time.time()
    for n, it in enumerate(items, 1):
        if job.should_stop():
            stopped = True
            break
        if params.skip_existing and it.dst.exists():
            job.info(job.t("sr.log.exists", path=str(it.dst)))
            state["done"] += frames.get(it.src, 1)
            continue
        base = state["done"]
        try:
            if it.video:
                from modules.super_resolution.video import upscale_video

                res = upscale_video(job, up, it.src, it.dst, params, state, total)
                if res is not None:
                    outputs.append(str(res))
                if job.should_stop():
                    stopped = True
                    break
            else:
                path = _one_image(job, up, it, params, state, total, n, len(items))
                outputs.append(str(path))
                if len(pairs) < 200:
                    pairs.append([str(it.src), str(path)])
        except TileStopped:
            stopped = True
            job.info(job.t("sr.log.stopped_in", path=str(it.src)))
            break
        except StudioError as exc:
            failed.append({"path": str(it.src), "error": exc.render(job.t)})
            job.warning(exc.render(job.t))
            state["done"] = base + frames.get(it.src, 1)
    if failed and not outputs and not stopped:
        raise StudioError("sr.all_failed", count=len(failed), first=failed[0]["error"])
    return {"outputs": outputs, "pairs": pairs, "output_dir": str(out_dir), "skipped": skipped, "failed": failed,
            "stopped": stopped, "model": up.spec.describe(), "scale": params.outscale or up.scale,
            "seconds": round(time.time() - started, 2)}


def _frame_count(path: Path) -> int:
    from modules.super_resolution.video import frame_count

    return max(1, frame_count(path))


def _one_image(job: "Job", up, it: Item, params: UpscaleParams, state: dict, total: float,
               n: int, count: int) -> Path:
    import numpy as np

    from modules.super_resolution.files import output_path, read_image, save_preview, write_image

    arr = read_image(it.src)
    desc = job.t("sr.progress.image", n=n, count=count, name=it.src.name)
    base = state["done"]
    job.progress(base, total, desc)

    def oom(tile: int) -> None:
        job.warning(job.t("sr.log.oom", tile=tile))

    out = up.upscale(arr, tile=params.tile, overlap=params.overlap, pad=params.pad, outscale=params.outscale,
                     alpha=params.alpha, should_stop=job.should_stop,
                     on_progress=lambda f: job.progress(base + f, total, desc), on_oom=oom,
                     on_precision=lambda d: job.warning(job.t("sr.log.fp16_overflow", dtype=d)))
    if out.dtype != np.uint8 and params.format in ("jpg", "webp"):
        out = (out.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)  # the user asked for an 8-bit format
        job.warning(job.t("sr.log.to_8bit", path=it.dst.name))
    path = write_image(out, output_path(it.dst, out), source=it.src)
    state["done"] = base + 1
    job.progress(state["done"], total, desc)
    job.artifact(path, "image")
    job.preview(save_preview(out, job.workdir / "previews" / f"{n:05d}_{it.src.stem}.png"))
    job.info(job.t("sr.log.done", src=it.src.name, dst=str(path), w=out.shape[1], h=out.shape[0]))
    return path
