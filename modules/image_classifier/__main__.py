"""CLI: `python -m modules.image_classifier <command>`.

    train DATA_DIR --name NAME [--preset baseline] [--backbone PATH_OR_ID] [--epochs 10] ...
          (every training parameter is an option: see `train --help`)
    predict MODEL IMAGE [IMAGE ...] [--top-k 5] [--backend auto|torch|onnx]
    export-onnx MODEL [--opset 17]
    scan DATA_DIR        class counts of an ImageFolder dataset
    list                 saved classifiers

Runs the same engines as the tab, with a console job: logs on stderr, the result as JSON
on stdout, Ctrl+C asks the job to stop (the best checkpoint is kept).
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import typing

from pydantic import ValidationError


def _add_model_options(parser: argparse.ArgumentParser, model, skip: set[str]) -> None:
    """One option per pydantic field (bools get --x / --no-x)."""
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        ann = field.annotation
        choices = typing.get_args(ann) if typing.get_origin(ann) is typing.Literal else None
        kwargs = {"dest": name, "default": argparse.SUPPRESS, "help": field.description or ""}
        if ann is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif choices:
            parser.add_argument(flag, choices=choices, **kwargs)
        else:
            base = [a for a in typing.get_args(ann) if a is not type(None)] or [ann]
            parser.add_argument(flag, type=base[0] if base[0] in (int, float) else str, **kwargs)


def _run_console(kind: str, fn, params, ctx) -> int:
    from core.errors import StudioError
    from core.jobs import ConsoleJob

    job = ConsoleJob(kind, params, workdir=ctx.path("OUTPUTS_DIR") / "cli" / kind, t=ctx.t)
    box: dict = {}

    def work() -> None:
        try:
            box["result"] = fn(job, params, ctx)
        except StudioError as exc:
            box["error"] = exc.render(ctx.t)
        except Exception as exc:  # noqa: BLE001 - printed, exit code 1
            box["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    while thread.is_alive():
        try:
            thread.join(0.2)
        except KeyboardInterrupt:
            print(ctx.t("clf.cli.stopping"), file=sys.stderr, flush=True)
            job.request_stop()
    if "error" in box:
        print(box["error"], file=sys.stderr)
        return 1
    print(json.dumps(box.get("result"), indent=2, default=str))
    return 130 if job.should_stop() else 0


def main(argv: list[str] | None = None) -> int:
    from modules.image_classifier.params import ExportParams, TrainParams

    parser = argparse.ArgumentParser(prog="python -m modules.image_classifier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train or resume a classifier")
    tr.add_argument("data_dir")
    _add_model_options(tr, TrainParams, {"data_dir"})
    pr = sub.add_parser("predict", help="top-k classes of images")
    pr.add_argument("model")
    pr.add_argument("images", nargs="+")
    pr.add_argument("--top-k", type=int, default=5)
    pr.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto")
    ex = sub.add_parser("export-onnx", help="export a classifier to ONNX (checked against PyTorch)")
    ex.add_argument("model")
    _add_model_options(ex, ExportParams, {"model"})
    sc = sub.add_parser("scan", help="class counts of an ImageFolder dataset")
    sc.add_argument("data_dir")
    sub.add_parser("list", help="saved classifiers")
    args = vars(parser.parse_args(argv))
    cmd = args.pop("cmd")

    from core.context import build_context
    from core.errors import StudioError, field_errors

    ctx = build_context(load_modules=False)
    try:
        if cmd == "train":
            from modules.image_classifier.train import run_train

            return _run_console("clf.train", run_train, TrainParams(**args), ctx)
        if cmd == "export-onnx":
            from modules.image_classifier.onnx_io import run_export

            return _run_console("clf.export_onnx", run_export, ExportParams(**args), ctx)
        if cmd == "scan":
            from modules.image_classifier.data import scan_image_folder

            print(json.dumps(scan_image_folder(args["data_dir"]).counts, indent=2))
            return 0
        if cmd == "list":
            from modules.image_classifier.backbone import list_classifiers

            print("\n".join(list_classifiers(ctx.path("CLASSIFIERS_DIR"))))
            return 0
        from core.media import load_image
        from modules.image_classifier.backbone import model_folder
        from modules.image_classifier.predict import Predictor

        predictor = Predictor(model_folder(ctx, args["model"]), args["backend"], ctx.models.device)
        images = [load_image(p) for p in args["images"]]
        preds = predictor.predict(images, top_k=args["top_k"])
        print(json.dumps({p: r for p, r in zip(args["images"], preds)}, indent=2))
        return 0
    except ValidationError as exc:
        print("\n".join(field_errors(exc, ctx.t)), file=sys.stderr)
        return 2
    except StudioError as exc:
        print(exc.render(ctx.t), file=sys.stderr)
        return 1
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
