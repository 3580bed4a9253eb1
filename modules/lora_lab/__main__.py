"""CLI: SDXL generation and LoRA grids, the same `lab.generate` / `lab.grid` jobs as the tab.

    python -m modules.lora_lab generate -b models/checkpoints/sdxl -p "sks, a cat" -l my_lora:0.8 -n 2
    python -m modules.lora_lab grid -b sdxl -p "sks, a cat" -p "sks, a dog" --run <job id> -s 0,0.5,1
    python -m modules.lora_lab grid -b sdxl -p "sks" -r a.safetensors -r b.safetensors
    python -m modules.lora_lab info image.png        # print the A1111 parameters of a PNG

`--run` takes a LoRA training job id: its step checkpoints and final file become the rows
(and its base, sample prompts are used when -b / -p are not given). Ctrl+C asks for a stop
(finished cells are kept); a second Ctrl+C aborts.
"""
from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError


def _lora(text: str) -> dict:
    """'path[:strength]'; the strength is the part after the last ':' when it is a number."""
    head, sep, tail = text.rpartition(":")
    try:
        return {"path": head, "strength": float(tail)} if sep and head else {"path": text, "strength": 1.0}
    except ValueError:
        return {"path": text, "strength": 1.0}


def _common(ap: argparse.ArgumentParser) -> None:
    from modules.lora_lab.samplers import SAMPLER_NAMES

    ap.add_argument("-b", "--base", default="", help="SDXL folder, single file or hub id (default: config)")
    ap.add_argument("-p", "--prompt", action="append", default=[], help="prompt (repeat for several grids)")
    ap.add_argument("-N", "--negative", default="")
    ap.add_argument("--sampler", default="DPM++ 2M Karras", choices=SAMPLER_NAMES)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--cfg", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=-1)
    ap.add_argument("-W", "--width", type=int, default=1024)
    ap.add_argument("-H", "--height", type=int, default=1024)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    ap.add_argument("-o", "--output-dir", default="")
    ap.add_argument("-q", "--quiet", action="store_true")


def main(argv: list[str] | None = None) -> int:
    from core.cli import run_direct
    from core.context import build_context
    from core.errors import StudioError, field_errors

    ap = argparse.ArgumentParser(prog="python -m modules.lora_lab", description="SDXL generation and LoRA grids")
    ap.add_argument("--home", default="", help="studio folder (default: CYBERBILL_HOME or the install folder)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="txt2img with LoRAs")
    _common(g)
    g.add_argument("-l", "--lora", action="append", default=[], help="LoRA file or name[:strength], repeatable")
    g.add_argument("-n", "--batch", type=int, default=1)
    r = sub.add_parser("grid", help="rows = LoRA files, columns = strengths")
    _common(r)
    r.add_argument("-r", "--row", action="append", default=[], help="a LoRA file per row, repeatable")
    r.add_argument("--run", default="", help="a LoRA training job id: its checkpoints become the rows")
    r.add_argument("-s", "--strengths", default="0,0.5,0.75,1")
    r.add_argument("--no-labels", action="store_true")
    i = sub.add_parser("info", help="print the A1111 parameters stored in a PNG")
    i.add_argument("png")
    a = ap.parse_args(argv)
    if a.cmd == "info":
        from modules.lora_lab.infotext import read_png

        print(read_png(a.png))
        return 0
    ctx = build_context(a.home or None, load_modules=False)
    try:
        common = dict(base_model=a.base, negative_prompt=a.negative, sampler=a.sampler, steps=a.steps, cfg=a.cfg,
                      seed=a.seed, width=a.width, height=a.height, precision=a.precision, output_dir=a.output_dir)
        try:
            if a.cmd == "generate":
                from modules.lora_lab.jobs import run_generate as run
                from modules.lora_lab.params import GenerateParams

                kind = "lab.generate"
                params = GenerateParams(**common, prompt=" ".join(a.prompt), batch=a.batch,
                                        loras=[_lora(x) for x in a.lora])
            else:
                from modules.lora_lab.jobs import run_grid as run
                from modules.lora_lab.params import GridParams
                from modules.lora_lab.runs import run_info

                kind, rows, prompts = "lab.grid", list(a.row), list(a.prompt)
                if a.run:
                    info = run_info(ctx, a.run)
                    rows = rows or info.checkpoints
                    prompts = prompts or info.prompts or [info.trigger]
                    common["base_model"] = common["base_model"] or info.base_model
                params = GridParams(**common, prompts=prompts, rows=rows, label=not a.no_labels,
                                    strengths=[float(x) for x in a.strengths.split(",") if x.strip()])
        except ValidationError as exc:
            print("\n".join(field_errors(exc)), file=sys.stderr)
            return 2
        except StudioError as exc:
            print(exc.render(ctx.t), file=sys.stderr)
            return 2
        return run_direct(ctx, kind, params, run, verbose=not a.quiet)
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
