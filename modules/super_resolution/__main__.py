"""CLI: `python -m modules.super_resolution -m RealESRGAN_x4plus.pth photo.jpg folder/ clip.mp4 -o out/`.

Runs the same `sr.upscale` job as the UI and REST API, printing its log and progress;
Ctrl+C asks for a stop (finished files are kept), a second Ctrl+C aborts.
`--list` shows the weights found in UPSCALERS_DIR.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    from core.cli import run_direct
    from core.context import build_context
    from core.errors import field_errors
    from modules.super_resolution.batch import list_models
    from modules.super_resolution.params import UpscaleParams

    ctx = build_context(load_modules=False)
    t = ctx.t
    ap = argparse.ArgumentParser(prog="python -m modules.super_resolution", description=t("sr.cli.description"))
    ap.add_argument("inputs", nargs="*", help="images, folders (recursive) and/or videos")
    ap.add_argument("-m", "--model", help="weights file name in UPSCALERS_DIR, or a path")
    ap.add_argument("-o", "--output-dir", help="folder under OUTPUTS_DIR (default OUTPUTS_DIR/upscaled/<job>)")
    ap.add_argument("-s", "--outscale", type=float, help="final scale (Lanczos after the model), e.g. 2")
    ap.add_argument("--tile", type=int, default=0, help="tile size in input pixels, 0 = automatic")
    ap.add_argument("--overlap", type=int, default=8)
    ap.add_argument("--pad", type=int, default=16)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    ap.add_argument("--alpha", default="model", choices=["model", "lanczos"])
    ap.add_argument("--format", default="same", choices=["same", "png", "jpg", "webp", "tif"])
    ap.add_argument("--suffix", default="")
    ap.add_argument("--skip-existing", action="store_true")
    ap.add_argument("--video-codec", default="h264", choices=["h264", "hevc"])
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--list", action="store_true", help="list the weights in UPSCALERS_DIR and exit")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    try:
        folder = ctx.path("UPSCALERS_DIR")
        if a.list:
            names = list_models(folder)
            print(t("sr.cli.list", folder=folder))
            print("\n".join(names) if names else t("sr.cli.none", folder=folder))
            return 0
        if not a.model or not a.inputs:
            ap.error("--model and at least one input are required")
        try:
            # inputs typed in a shell are relative to the shell's folder; the output folder,
            # like everywhere in the studio, is relative to OUTPUTS_DIR (core.paths)
            out = a.output_dir or None
            params = UpscaleParams(model=a.model, inputs=[str(Path(i).expanduser().resolve()) for i in a.inputs],
                                   output_dir=out, outscale=a.outscale,
                                   tile=a.tile, overlap=a.overlap, pad=a.pad, precision=a.precision,
                                   alpha=a.alpha, format=a.format, suffix=a.suffix,
                                   skip_existing=a.skip_existing, video_codec=a.video_codec, crf=a.crf)
        except ValidationError as exc:
            print("\n".join(field_errors(exc, ctx.t)), file=sys.stderr)
            return 2
        from modules.super_resolution.batch import run_upscale

        return run_direct(ctx, "sr.upscale", params, run_upscale, verbose=not a.quiet)
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
