"""CLI: the same jobs as the UI and REST API, with a console log and progress.

    python -m modules.frame_interpolation video clip.mp4 --multi 2
    python -m modules.frame_interpolation video clip.mp4 --fps 60000/1001 --scale 0.5 --crf 16
    python -m modules.frame_interpolation video clip.mp4 --slowmo 4 -o slow.mp4
    python -m modules.frame_interpolation pair a.png b.png --timestep 0.3 --frames 15
    python -m modules.frame_interpolation models

Ctrl+C asks for a stop (the partial video is closed and playable); a second Ctrl+C aborts.
"""
from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m modules.frame_interpolation",
                                 description="RIFE frame interpolation (Practical-RIFE 4.x weights)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("-m", "--model", default="", help="weights under RIFE_DIR, or a path (default: newest)")
        p.add_argument("--scale", type=float, default=1.0, help="flow scale: 0.5 for 4K")
        p.add_argument("--precision", default="auto", choices=["auto", "fp16", "fp32"])
        p.add_argument("--batch", type=int, default=1, help="timesteps per forward pass")
        p.add_argument("-q", "--quiet", action="store_true")

    v = sub.add_parser("video", help="interpolate a video")
    v.add_argument("input")
    v.add_argument("-o", "--output", default="", help="file under OUTPUTS_DIR")
    mode = v.add_mutually_exclusive_group()
    mode.add_argument("--multi", type=int, help="2, 4, ... N times the frame rate (default 2)")
    mode.add_argument("--fps", help="target frame rate, e.g. 60 or 60000/1001")
    mode.add_argument("--slowmo", type=float, help="N times slower, frame rate kept (no audio)")
    v.add_argument("--scene", default="hist", choices=["off", "hist", "ssim"], help="scene-cut detection")
    v.add_argument("--scene-threshold", type=float, default=0.3)
    v.add_argument("--dedupe", action="store_true", help="drop repeated frames first")
    v.add_argument("--codec", default="h264", choices=["h264", "hevc"])
    v.add_argument("--crf", type=int, default=18)
    v.add_argument("--preset", default="medium", choices=["ultrafast", "veryfast", "fast", "medium", "slow"])
    v.add_argument("--no-audio", action="store_true")
    model_args(v)

    p = sub.add_parser("pair", help="frames between two images (PNG + GIF/MP4 preview)")
    p.add_argument("image_a")
    p.add_argument("image_b")
    p.add_argument("--timestep", type=float, default=0.5)
    p.add_argument("--frames", type=int, default=7)
    p.add_argument("--fps", type=float, default=12.0)
    p.add_argument("--no-boomerang", action="store_true")
    p.add_argument("--no-gif", action="store_true")
    p.add_argument("--no-mp4", action="store_true")
    p.add_argument("-o", "--output-dir", default="", help="folder under OUTPUTS_DIR")
    model_args(p)

    sub.add_parser("models", help="list the weights in RIFE_DIR with their detected variant")
    return ap


def _params(a):
    from modules.frame_interpolation.params import InterpolatePairParams, InterpolateVideoParams

    common = dict(model=a.model, scale=a.scale, precision=a.precision, batch=a.batch)
    if a.cmd == "video":
        mode = "fps" if a.fps else "slowmo" if a.slowmo else "multiply"
        return "rife.interpolate_video", InterpolateVideoParams(
            input=a.input, output=a.output, mode=mode, multiplier=a.multi or 2, target_fps=a.fps or "60",
            slowmo=a.slowmo or 2.0, scene_detect=a.scene, scene_threshold=a.scene_threshold, dedupe=a.dedupe,
            codec=a.codec, crf=a.crf, preset=a.preset, keep_audio=not a.no_audio, **common)
    return "rife.interpolate_pair", InterpolatePairParams(
        image_a=a.image_a, image_b=a.image_b, timestep=a.timestep, frames=a.frames, fps=a.fps,
        boomerang=not a.no_boomerang, gif=not a.no_gif, mp4=not a.no_mp4, output_dir=a.output_dir, **common)


def _list_models(ctx) -> int:
    from core.errors import StudioError
    from modules.frame_interpolation.weights import list_models, load_ifnet

    folder = ctx.path("RIFE_DIR")
    names = list_models(folder)
    if not names:
        print(ctx.t("rife.no_models", folder=folder))
        return 0
    for name in names:
        try:
            cfg = load_ifnet(folder / name).config
            print(f"{name}\tRIFE {cfg.variant}\tblocks {list(cfg.block_channels)}")
        except StudioError as exc:
            print(f"{name}\t{exc.render(ctx.t)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from core.cli import run_direct
    from core.context import build_context
    from core.errors import field_errors
    from modules.frame_interpolation.jobs import run_interpolate_pair, run_interpolate_video

    a = _parser().parse_args(argv)
    ctx = build_context(load_modules=False)
    try:
        if a.cmd == "models":
            return _list_models(ctx)
        try:
            kind, params = _params(a)
        except ValidationError as exc:
            print("\n".join(field_errors(exc, ctx.t)), file=sys.stderr)
            return 2
        run = run_interpolate_video if kind == "rife.interpolate_video" else run_interpolate_pair
        return run_direct(ctx, kind, params, run, verbose=not a.quiet)
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
