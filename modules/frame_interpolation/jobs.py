"""Job functions: ``rife.interpolate_video`` and ``rife.interpolate_pair``.

Both take ``(job, params, ctx)`` and are what the UI, the REST API and the CLI run. They
resolve paths and the model, open media through `core.media`, run the engine, record
every output as an artifact and return a small JSON-able summary. A Stop ends within one
frame (video) or one timestep (pair) and keeps what was written.
"""
from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

from core.errors import StudioError
from core.paths import inside
from modules.frame_interpolation.params import InterpolatePairParams, InterpolateVideoParams, parse_fps

PREVIEW_EVERY_S = 5.0


def _interpolator(job, params, ctx):
    """Load (once per job) the interpolator for the chosen model/scale/precision."""
    from modules.frame_interpolation.engine import make_interpolator
    from modules.frame_interpolation.weights import resolve_model

    path = resolve_model(params.model, ctx.path("RIFE_DIR"))
    device = ctx.models.device
    key = f"rife:{path}:{device}:{params.precision}:{params.scale}:{params.batch}"
    interp = ctx.models.load(job.id, key, lambda: make_interpolator(path, device, params.precision,
                                                                    params.scale, params.batch))
    job.info(job.t("rife.log.model", name=path.name, variant=interp.variant, device=device,
                   dtype=str(interp.dtype).replace("torch.", ""), scale=params.scale))
    return interp, path


def _unique(path: Path) -> Path:
    if not path.exists():
        return path
    for i in range(2, 10_000):
        p = path.with_name(f"{path.stem}_{i}{path.suffix}")
        if not p.exists():
            return p
    raise StudioError("rife.output_exists", path=str(path))


def _log_media_warnings(job, writer) -> None:
    for key, params in getattr(writer, "warnings", []):
        job.warning(job.t(key, **params))


def _input(path_text: str) -> Path:
    p = Path(path_text).expanduser()
    if not p.is_file():
        raise StudioError("rife.input_missing", path=str(p))
    return p.resolve()


def plan_output(p: InterpolateVideoParams, fps_in: Fraction) -> tuple[Fraction, Fraction, str]:
    """(output fps, slow-motion factor, file-name tag) for the chosen mode."""
    if p.mode == "multiply":
        return fps_in * p.multiplier, Fraction(1), f"{p.multiplier}x"
    if p.mode == "fps":
        fps = parse_fps(p.target_fps)
        return fps, Fraction(1), f"{float(fps):.3g}fps"
    slow = Fraction(str(p.slowmo)).limit_denominator(1000)
    return fps_in, slow, f"slowmo{float(slow):g}x"


def run_interpolate_video(job, p: InterpolateVideoParams, ctx) -> dict:
    from core.media import VideoReader

    src = _input(p.input)
    reader = VideoReader(src)  # a damaged or non-video file fails here, clearly (media.*)
    try:
        return _interpolate_video(job, p, ctx, src, reader)
    finally:
        reader.close()  # after the pipeline has joined its decode thread


def _interpolate_video(job, p: InterpolateVideoParams, ctx, src: Path, reader) -> dict:
    from PIL import Image

    from core.media import VideoWriter
    from modules.frame_interpolation.pipeline import VideoPipeline
    from modules.frame_interpolation.scenes import SceneDetector

    fps_in = Fraction(reader.fps)
    fps_out, slowmo, tag = plan_output(p, fps_in)
    keep_audio = p.keep_audio and reader.has_audio and slowmo == 1
    if p.keep_audio and reader.has_audio and slowmo != 1:
        job.warning(job.t("rife.log.no_audio_slowmo"))
    interp, _ = _interpolator(job, p, ctx)
    # a typed output lies under OUTPUTS_DIR (never the process' working folder)
    out = inside(ctx.path("OUTPUTS_DIR"), p.output, "output") if p.output else \
        ctx.path("OUTPUTS_DIR") / "rife" / f"{src.stem}_{tag}.mp4"
    if out.resolve() == src:
        raise StudioError("rife.output_is_input", path=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    out = _unique(out)
    job.info(job.t("rife.log.video", src=src.name, w=reader.width, h=reader.height, fps_in=f"{float(fps_in):.3f}",
                   fps_out=f"{float(fps_out):.3f}", frames=reader.frame_count))
    writer = VideoWriter(out, fps_out, codec=p.codec, crf=p.crf, audio_from=src if keep_audio else None,
                         preset=p.preset)
    started, last_preview, desc = time.time(), [0.0], job.t("rife.progress.frames")

    def progress(done: int, total: int) -> None:
        job.progress(done, total, desc)
        if done % 25 == 0:
            job.metric(done, fps=done / max(time.time() - started, 1e-6))

    def preview(frame, n: int) -> None:
        if time.time() - last_preview[0] >= PREVIEW_EVERY_S:
            last_preview[0] = time.time()
            job.preview(Image.fromarray(frame))

    pipe = VideoPipeline(interp, fps_out, slowmo,
                         SceneDetector(p.scene_detect, p.scene_threshold, p.dedupe, p.dedupe_threshold),
                         job.should_stop, progress, preview)
    stats = pipe.run(reader, writer, reader.duration, fps_in)
    _log_media_warnings(job, writer)
    if stats.written == 0:
        if stats.stopped:
            return {**stats.as_dict(), "output": None}
        raise StudioError("rife.no_frames", path=src.name)
    job.artifact(out, "video")
    if stats.stopped:
        job.warning(job.t("rife.log.stopped", written=stats.written, expected=stats.expected))
    job.info(job.t("rife.log.done", written=stats.written, interpolated=stats.interpolated, cuts=stats.scene_cuts,
                   dropped=stats.dropped_duplicates, fps=f"{stats.written / max(stats.seconds, 1e-6):.2f}"))
    result = stats.as_dict()
    result.update(output=str(out), fps_out=str(fps_out), audio=keep_audio)
    return result


def pair_timesteps(frames: int) -> list[float]:
    return [i / (frames + 1) for i in range(1, frames + 1)]


def run_interpolate_pair(job, p: InterpolatePairParams, ctx) -> dict:
    import numpy as np
    from PIL import Image

    from core.media import VideoWriter, atomic_path, load_image, save_image

    a_path, b_path = _input(p.image_a), _input(p.image_b)
    img_a, img_b = load_image(a_path, "RGB"), load_image(b_path, "RGB")
    if img_a.size != img_b.size:
        job.warning(job.t("rife.log.resized", b=b_path.name, size=f"{img_a.width}x{img_a.height}"))
        img_b = img_b.resize(img_a.size, Image.Resampling.LANCZOS)
    a, b = np.asarray(img_a), np.asarray(img_b)
    interp, _ = _interpolator(job, p, ctx)
    folder = inside(ctx.path("OUTPUTS_DIR"), p.output_dir, "output_dir") if p.output_dir else ctx.path("OUTPUTS_DIR") / "rife"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{a_path.stem}_{b_path.stem}"
    pa, pb = interp.prepare(a), interp.prepare(b)
    ts = pair_timesteps(p.frames)
    total, result = len(ts) + 1, {"outputs": []}

    single = interp.interpolate(pa, pb, [p.timestep])[0]
    still = _unique(folder / f"{stem}_t{p.timestep:.3f}.png")
    save_image(Image.fromarray(single), still)
    job.artifact(still, "image")
    job.preview(Image.fromarray(single))
    result["outputs"].append(str(still))
    job.progress(1, total, job.t("rife.progress.timesteps"))
    mids: list[np.ndarray] = []
    for i, t in enumerate(ts):
        if job.should_stop():
            break
        mids.extend(interp.interpolate(pa, pb, [t]))
        job.progress(i + 2, total, job.t("rife.progress.timesteps"))
    seq = [a, *mids, b]
    if p.boomerang:
        seq += seq[-2:0:-1]  # back again without repeating the two ends
    result["frames"] = len(seq)
    result["stopped"] = job.should_stop()
    if p.gif:
        gif = _unique(folder / f"{stem}_{p.frames}f.gif")
        with atomic_path(gif) as tmp:
            ims = [Image.fromarray(f) for f in seq]
            ims[0].save(tmp, format="GIF", save_all=True, append_images=ims[1:], loop=0,
                        duration=round(1000 / p.fps), disposal=2)
        job.artifact(gif, "animation")
        result["outputs"].append(str(gif))
    if p.mp4:
        mp4 = _unique(folder / f"{stem}_{p.frames}f.mp4")
        writer = VideoWriter(mp4, Fraction(str(p.fps)).limit_denominator(1001), codec="h264", crf=16)
        try:
            for f in seq:
                writer.write(f)  # odd sizes are padded by the writer (4:2:0)
        finally:
            writer.close()
        _log_media_warnings(job, writer)
        job.artifact(mp4, "video")
        result["outputs"].append(str(mp4))
    return result
