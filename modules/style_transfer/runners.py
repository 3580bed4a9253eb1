"""The style jobs: glue between the job handle and the engines (`job.*` in, files out).

Each `run_*(job, params, ctx)` resolves and checks paths, loads weights through the model
manager, calls the engine with the job's callbacks (progress, metrics, previews,
`should_stop`) and records every output with `job.artifact`. A Stop ends within one
step/frame and keeps what is done: the latest Gatys image, the finished files, the
network trained so far.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import StudioError
from modules.style_transfer import resources as res

if TYPE_CHECKING:  # pragma: no cover
    from core.context import StudioContext
    from core.jobs import Job
    from modules.style_transfer.params import ExportOnnxParams, FastApplyParams, FastTrainParams, GatysParams


def _metric_cb(job: "Job", desc: str):
    def on_step(step: int, total: int, parts: dict[str, float]) -> None:
        job.progress(step, total, desc)
        job.metric(step, **parts)
    return on_step


def run_gatys(job: "Job", p: "GatysParams", ctx: "StudioContext") -> dict[str, Any]:
    from core.media import load_image, safe_name, save_image
    from modules.style_transfer.gatys import GatysSettings, run_gatys as engine
    from modules.style_transfer.imageops import pil_to_tensor, tensor_to_pil

    content_path = res.existing_file(p.content)
    style_paths = [res.existing_file(s) for s in p.styles]
    weights = p.style_weights or [1.0] * len(style_paths)
    default = ctx.path("OUTPUTS_DIR") / "style" / f"{safe_name(content_path.stem)}_gatys_{job.id[-6:]}.png"
    out = res.output_path(ctx, p.output, default)
    content = pil_to_tensor(load_image(content_path))
    styles = [(pil_to_tensor(load_image(sp)), w) for sp, w in zip(style_paths, weights) if w > 0]
    vgg = res.load_vgg(ctx, p.vgg_weights, p.pool)
    s = GatysSettings(content_layers=tuple(p.content_layers), style_layers=tuple(p.style_layers),
                      style_layer_weights=tuple(p.style_layer_weights) if p.style_layer_weights else None,
                      content_weight=p.content_weight, style_weight=p.style_weight, tv_weight=p.tv_weight,
                      optimizer=p.optimizer, lr=p.lr, steps=p.steps, size=p.size, scales=p.scales,
                      style_scale=p.style_scale, init=p.init, original_colors=p.original_colors,
                      color_space=p.color_space, preview_every=p.preview_every, seed=p.seed)
    job.info(job.t("style.log.gatys_start", styles=len(styles), size=p.size, steps=p.steps, scales=p.scales,
                   optimizer=p.optimizer, device=ctx.models.device))
    result = engine(vgg, content, styles, s, ctx.models.device, on_step=_metric_cb(job, job.t("style.progress.steps")),
                    on_preview=lambda img, step: job.preview(tensor_to_pil(img), name=f"step_{step:05d}.png"),
                    should_stop=job.should_stop)
    save_image(tensor_to_pil(result.image), out, protect=[content_path, *style_paths])
    job.artifact(out, "image")
    if result.stopped:
        job.info(job.t("style.log.stopped_kept", steps=result.steps_done, path=str(out)))
    return {"output": str(out), "steps": result.steps_done, "total_steps": result.total_steps,
            "stopped": result.stopped, "final_loss": result.losses[-1] if result.losses else None}


def _collect(inputs: list[str], recursive: bool, on_skip=None) -> list[tuple[Path, Path, bool]]:
    """(source, relative output stem, is_video) for every file named or found in a folder
    (scanned by `core.folders.walk_files`: links leaving it are skipped, see there)."""
    from core.folders import walk_files
    from core.media import IMAGE_EXTS, is_image_file

    items: list[tuple[Path, Path, bool]] = []
    for text in inputs:
        src = res.existing_path(text)
        if src.is_dir():
            found = walk_files(src, recursive, on_skip=on_skip, suffixes=IMAGE_EXTS | res.VIDEO_EXTS)
            for video in (False, True):  # images first, then videos, as before
                items += [(f, Path(src.name) / f.relative_to(src).with_suffix(""), video) for f in found
                          if (f.suffix.lower() in res.VIDEO_EXTS) == video]
        elif src.suffix.lower() in res.VIDEO_EXTS:
            items.append((src, Path(src.stem), True))
        elif is_image_file(src):
            items.append((src, Path(src.stem), False))
        else:
            raise StudioError("style.not_media", path=str(src))
    return items


def run_fast_apply(job: "Job", p: "FastApplyParams", ctx: "StudioContext") -> dict[str, Any]:
    from core.media import load_image, save_image
    from modules.style_transfer.fast import ApplySettings, stylize_image

    net_path = res.network_path(ctx, p.model)
    net = ctx.models.load(job.id, f"style.fast:{net_path}", lambda: res.load_network(net_path).to(ctx.models.device))
    from core.folders import job_reporter

    items = _collect(p.inputs, p.recursive, on_skip=job_reporter(job))
    if not items:
        raise StudioError("style.no_inputs")
    out_dir = res.output_path(ctx, p.output_dir, ctx.path("OUTPUTS_DIR") / "style" / job.id, "output_dir")
    s = ApplySettings(p.max_side, p.original_colors, p.color_space, p.strength)
    total = sum(_frame_count(src) if video else 1 for src, _, video in items)
    done, written, failed, previews = 0, 0, 0, 0
    used: set[Path] = set()  # a.jpg and a.png given together must not write the same a.png
    job.info(job.t("style.log.apply_start", network=net_path.name, files=len(items), device=ctx.models.device))
    for src, rel, video in items:
        if job.should_stop():
            break
        if video:
            out = _unique(out_dir / rel.with_suffix(".mp4"), used)
            done = _apply_video(job, net, src, out, s, p, ctx, done, total)
            written += 1
            continue
        out = _unique(out_dir / rel.with_suffix("." + p.image_format), used)
        try:
            img = load_image(src, mode="RGBA" if p.image_format != "jpg" else "RGB")
            result = stylize_image(net, img, s, ctx.models.device)
            if result.mode == "RGBA" and result.getchannel("A").getextrema() == (255, 255):
                result = result.convert("RGB")  # no real transparency: keep files small
            save_image(result, out, protect=src)
        except StudioError as exc:  # a broken file is reported, the batch goes on
            failed += 1
            job.warning(exc.render(job.t))
            continue
        finally:
            done += 1
            job.progress(done, total, job.t("style.progress.files"))
        written += 1
        job.artifact(out, "image")
        if previews < 4:
            previews += 1
            job.preview(result.convert("RGB"))
    return {"output_dir": str(out_dir), "written": written, "failed": failed, "stopped": job.should_stop()}


def _unique(path: Path, used: set[Path]) -> Path:
    out, n = path, 1
    while out in used:
        n += 1
        out = path.with_name(f"{path.stem}_{n}{path.suffix}")
    used.add(out)
    return out


def _frame_count(path: Path) -> int:
    from core.media import VideoReader

    with VideoReader(path) as r:
        return max(1, int(r.frame_count))


def _apply_video(job: "Job", net, src: Path, out: Path, s, p: "FastApplyParams", ctx: "StudioContext",
                 done: int, total: int) -> int:
    """Stylise every frame (timestamps kept), mux the source audio; a Stop keeps a playable file."""
    from core.media import VideoReader, VideoWriter
    from modules.style_transfer.fast import stylize_frame

    with VideoReader(src) as reader:
        writer = VideoWriter(out, reader.fps, codec=p.codec, crf=p.crf, audio_from=src if reader.has_audio else None)
        first = True
        with writer:
            for frame, pts in reader:
                if job.should_stop():
                    break
                styled = stylize_frame(net, frame, s, ctx.models.device)
                writer.write(styled, pts_seconds=pts)
                if first:
                    job.preview(styled)
                    first = False
                done += 1
                job.progress(done, total, job.t("style.progress.frames"))
        for key, params in writer.warnings:
            job.warning(job.t(key, **params))
    if out.exists():
        job.artifact(out, "video")
    return done


def run_fast_train(job: "Job", p: "FastTrainParams", ctx: "StudioContext") -> dict[str, Any]:
    from core.media import list_images, load_image
    from core.paths import name_inside
    from modules.style_transfer.imageops import pil_to_tensor, tensor_to_pil
    from modules.style_transfer.train import FastTrainSettings, train_fast

    style_path = res.existing_file(p.style)
    content_dir = res.existing_path(p.content_dir)
    paths = list_images(content_dir, recursive=True) if content_dir.is_dir() else []
    if not paths:
        raise StudioError("style.no_content_images", folder=str(content_dir))
    init = res.load_network(res.network_path(ctx, p.init_from)) if p.init_from else None
    out = res.free_name(name_inside(ctx.path("STYLE_DIR"), f"{p.name}.pth", "name"))
    vgg = res.load_vgg(ctx, p.vgg_weights)
    s = FastTrainSettings(image_size=p.image_size, batch_size=p.batch_size, steps=p.steps, lr=p.lr,
                          content_weight=p.content_weight, style_weight=p.style_weight, tv_weight=p.tv_weight,
                          content_layer=p.content_layer, style_layers=tuple(p.style_layers), style_size=p.style_size,
                          preview_every=p.preview_every, checkpoint_every=p.checkpoint_every, seed=p.seed)
    job.info(job.t("style.log.train_start", images=len(paths), steps=p.steps, size=p.image_size,
                   batch=p.batch_size, device=ctx.models.device, path=str(out)))
    saved: list[int] = []

    def on_checkpoint(net, step: int, final: bool) -> None:
        if step == 0:
            return  # stopped before the first step: nothing was learned
        res.save_network(net, out)
        if not saved:
            job.artifact(out, "model")
        saved.append(step)
        job.info(job.t("style.log.saved", step=step, path=str(out)))

    result = train_fast(vgg, paths, pil_to_tensor(load_image(style_path)), s, load_image, ctx.models.device, net=init,
                        on_step=_metric_cb(job, job.t("style.progress.steps")),
                        on_preview=lambda img, step: job.preview(tensor_to_pil(img), name=f"step_{step:06d}.png"),
                        on_checkpoint=on_checkpoint, should_stop=job.should_stop,
                        on_skip=lambda path, exc: job.warning(job.t("style.log.skipped", path=str(path),
                                                                    error=str(exc)[:200])))
    return {"network": str(out) if saved else None, "steps": result.steps_done, "stopped": result.stopped,
            "final_loss": result.losses[-1] if result.losses else None}


def run_export_onnx(job: "Job", p: "ExportOnnxParams", ctx: "StudioContext") -> dict[str, Any]:
    import torch

    from core.onnx_export import export_onnx, onnxruntime_available, speed_ratio

    net_path = res.network_path(ctx, p.model)
    # default: next to the network when it lives in STYLE_DIR; a network given by a path
    # elsewhere gets its .onnx under OUTPUTS_DIR (nothing is written outside the studio)
    style_dir = ctx.path("STYLE_DIR").resolve()
    beside = net_path.with_suffix(".onnx")
    default = beside if style_dir in beside.resolve().parents else ctx.path("OUTPUTS_DIR") / "style" / beside.name
    out = res.output_path(ctx, p.output, default)
    net = res.load_network(net_path)
    job.progress(0, 2, job.t("style.progress.export"))
    x = torch.rand(1, 3, p.check_size, p.check_size, generator=torch.Generator().manual_seed(0)) * 255.0
    report = export_onnx(net, x, out, opset=p.opset, atol=p.atol, rtol=1e-4)
    job.info(job.t("style.log.onnx_checked", runtime=report.checked_with, diff=f"{report.max_abs_diff:.2e}"))
    if not report.ok:
        out.unlink(missing_ok=True)
        raise StudioError("style.onnx_mismatch", diff=f"{report.max_abs_diff:.3g}", atol=p.atol)
    job.artifact(out, "onnx")
    job.progress(1, 2, job.t("style.progress.export"))
    result: dict[str, Any] = {"onnx": str(out), **{k: v for k, v in report.to_dict().items() if k != "path"}}
    if p.benchmark and onnxruntime_available() and not job.should_stop():
        speed = speed_ratio(net, out, x, repeats=3)
        job.info(job.t("style.log.onnx_speed", torch_ms=f"{speed['torch_ms']:.0f}",
                       ort_ms=f"{speed['onnxruntime_ms']:.0f}", ratio=f"{speed['ratio']:.2f}"))
        result.update(speed)
    job.progress(2, 2, job.t("style.progress.export"))
    return result
