"""Command line: the style jobs without the UI, through the same runner and store (the run
shows in the Jobs tab). Every parameter of a job kind is a flag, generated from its
pydantic model, so the CLI never drifts from the API.

    python -m modules.style_transfer gatys --content photo.jpg --styles starry.jpg --size 512
    python -m modules.style_transfer apply --model mosaic.pth --inputs photos/ clip.mp4
    python -m modules.style_transfer train --style wave.jpg --content-dir coco/ --name wave --steps 4000
    python -m modules.style_transfer export --model mosaic.pth
    python -m modules.style_transfer networks

Ctrl+C stops the job cleanly (the latest image / network is kept); a second Ctrl+C aborts.
"""
from __future__ import annotations

import argparse
import sys
import typing
from typing import Any

from pydantic import BaseModel

from modules.style_transfer import JOB_KINDS

COMMANDS = {"gatys": "style.gatys", "apply": "style.fast_apply", "train": "style.fast_train",
            "export": "style.export_onnx"}


def _add_fields(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        ann = field.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        base = args[0] if typing.get_origin(ann) is typing.Union and args else ann
        help_text = field.description or ""
        kw: dict[str, Any] = {"dest": name, "help": help_text, "default": argparse.SUPPRESS}
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(base) is list:
            item = (typing.get_args(base) or (str,))[0]
            if typing.get_origin(item) is typing.Annotated:  # e.g. Weight = Annotated[float, Field(...)]
                item = typing.get_args(item)[0]
            parser.add_argument(flag, nargs="+", type=item, required=field.is_required(), **kw)
        elif typing.get_origin(base) is typing.Literal:
            parser.add_argument(flag, choices=typing.get_args(base), **kw)
        else:
            parser.add_argument(flag, type=base if base in (int, float) else str, required=field.is_required(), **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modules.style_transfer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", help="studio home (default: CYBERBILL_HOME or the install folder)")
    sub = parser.add_subparsers(dest="command", required=True)
    kinds = {k.name: k for k in JOB_KINDS}
    for cmd, kind in COMMANDS.items():
        _add_fields(sub.add_parser(cmd, help=kind), kinds[kind].params)
    sub.add_parser("networks", help="list the fast style networks in STYLE_DIR")
    return parser


def main(argv: list[str] | None = None) -> int:
    from core.cli import run_job_foreground
    from core.context import build_context

    args = vars(build_parser().parse_args(argv))
    command, home = args.pop("command"), args.pop("home", None)
    ctx = build_context(home, load_modules=False)
    for kind in JOB_KINDS:
        ctx.jobs.register(kind)
    if command == "networks":
        from modules.style_transfer.resources import list_networks

        try:
            for name in list_networks(ctx):
                print(name)
        finally:
            ctx.close()
        return 0
    return run_job_foreground(ctx, COMMANDS[command], args)


if __name__ == "__main__":
    sys.exit(main())
