"""Video upscaling: every frame through the model, same frame rate, the source's audio copied.

Frames come from `core.media.VideoReader` and go to `core.media.VideoWriter` (which writes
a temporary file, muxes the source audio and renames). Progress counts frames, with the
frame rate and the ETA in the log every few seconds. On Stop the frames done so far are
kept as `<name>_partial.<ext>` (a valid, shorter video), never under the final name.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import StudioError

if TYPE_CHECKING:  # pragma: no cover
    from core.jobs import Job
    from modules.super_resolution.engine import Upscaler
    from modules.super_resolution.params import UpscaleParams

LOG_EVERY_S = 5.0


def _media():
    try:
        import core.media as media
    except ImportError as exc:
        raise StudioError("sr.video_unavailable") from exc
    return media


def frame_count(path: Path) -> int:
    media = _media()
    reader = media.VideoReader(path)
    try:
        return int(reader.frame_count or 0)
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()


def upscale_video(job: "Job", up: "Upscaler", src: Path, dst: Path, params: "UpscaleParams",
                  state: dict, total: float) -> Path | None:
    """Upscale one video into `dst`; returns the written path (partial on stop) or None."""
    from modules.super_resolution.files import save_preview
    from modules.super_resolution.tiling import TileStopped

    from modules.super_resolution.batch import check_fits

    media = _media()
    reader = media.VideoReader(src)
    try:
        check_fits(up, src.name, (reader.height, reader.width), params)  # per frame, before any writing
    except StudioError:
        reader.close()
        raise
    n_frames = int(reader.frame_count or 0)
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(f"{dst.stem}_partial{dst.suffix}")
    writer = media.VideoWriter(dst, fps=reader.fps, codec=params.video_codec, crf=params.crf,
                               audio_from=src if reader.has_audio else None)
    desc = job.t("sr.progress.video", name=src.name)
    base = state["done"]
    done, t0, last_log = 0, time.time(), time.time()
    stopped = False
    job.info(job.t("sr.log.video", name=src.name, frames=n_frames, fps=float(reader.fps),
                   w=reader.width, h=reader.height))
    # variable frame rate sources keep each frame's own time; constant ones a clean grid
    vfr = bool(getattr(reader, "is_vfr", False))
    try:
        for frame, pts in reader:
            if job.should_stop():
                stopped = True
                break
            out = up.upscale(frame, tile=params.tile, overlap=params.overlap, pad=params.pad,
                             outscale=params.outscale, should_stop=job.should_stop,
                             on_precision=lambda d: job.warning(job.t("sr.log.fp16_overflow", dtype=d)))
            # odd sizes are edge-padded by the writer (4:2:0 needs even)
            writer.write(out, pts_seconds=max(0.0, pts - reader.start_time) if vfr else None)
            done += 1
            state["done"] = base + done
            job.progress(state["done"], total, desc)
            now = time.time()
            if now - last_log >= LOG_EVERY_S:
                last_log = now
                fps = done / max(now - t0, 1e-6)
                eta = job.eta_seconds()
                job.info(job.t("sr.log.frames", done=done, total=n_frames, fps=round(fps, 2),
                               eta=int(eta) if eta is not None else "?"))
                job.preview(save_preview(out, job.workdir / "previews" / f"{src.stem}_{done:06d}.png"))
    except TileStopped:
        stopped = True
    except BaseException:
        _abort(writer)
        raise
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()
    if done == 0:
        _abort(writer)
        return None
    if stopped:  # a stopped run is kept, playable, but never under the final name
        writer.path = partial
    writer.close()
    for key, params_ in getattr(writer, "warnings", []):
        job.warning(job.t(key, **params_))
    if stopped:
        job.artifact(partial, "video")
        job.info(job.t("sr.log.video_partial", path=str(partial), frames=done))
        return partial
    # account for a container that announced more frames than it held
    state["done"] = base + max(done, n_frames)
    job.artifact(dst, "video")
    job.info(job.t("sr.log.done", src=src.name, dst=str(dst), w=out.shape[1], h=out.shape[0]))
    return dst


def _abort(writer) -> None:
    abort = getattr(writer, "abort", None)
    try:
        if abort is not None:
            abort()
        else:
            writer.close()
    except Exception:  # noqa: BLE001 - cleaning up after an earlier error
        pass
