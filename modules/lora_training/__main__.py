"""Headless LoRA training: `python -m modules.lora_training train --config cfg.json`.

The config is the JSON of `TrainParams` (the same fields as the tab and `POST /api/jobs`
with kind `lora.train`), or of `PrepareAndTrainParams` (a `"train"` object plus import and
caption fields) to run the whole Prepare & Train chain. `--set key=value` overrides a field.
Ctrl+C asks for a clean stop (LoRA + resumable state saved); a second Ctrl+C aborts.
`--stop-file PATH`: the same clean stop as soon as PATH exists (for runs without a terminal,
e.g. under `accelerate launch`, whose launcher may terminate its workers on Ctrl+C before
they have saved).

Several GPUs: `accelerate launch -m modules.lora_training train --config cfg.json`. With
WORLD_SIZE > 1 the run uses an `accelerate.Accelerator` (DDP on the UNet; N processes x
batch b train what one process x batch N*b would; rank 0 fills the caches first and alone
writes checkpoints, samples, the LoRA and the result); otherwise it is one plain process.
Tested on CPU with `accelerate launch --cpu --num_processes 2` (gloo).
`estimate --config cfg.json` prints the plan (steps, VRAM) without loading any weights.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path


def _load_params(path: str, overrides: list[str]):
    from modules.lora_training.train.config import TrainParams
    from modules.lora_training.train.prepare_and_train import PrepareAndTrainParams

    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    for item in overrides:
        key, _, value = item.partition("=")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        target = raw["train"] if "train" in raw and key in TrainParams.model_fields else raw
        target[key] = parsed
    return PrepareAndTrainParams.model_validate(raw) if "train" in raw else TrainParams.model_validate(raw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m modules.lora_training", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["train", "estimate"])
    ap.add_argument("--config", required=True, help="JSON file of TrainParams or PrepareAndTrainParams")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field")
    ap.add_argument("--home", default=None, help="studio home (default: CYBERBILL_HOME or the install folder)")
    ap.add_argument("--stop-file", default=None, help="stop cleanly (LoRA + state saved) when this file exists")
    args = ap.parse_args(argv)

    from pydantic import ValidationError

    from core.context import build_context
    from core.errors import StudioError
    from core.jobs import ConsoleJob

    try:
        params = _load_params(args.config, args.set)
    except ValidationError as exc:  # a field per line, reasons translated (e.g. core.paths')
        from core.config import Settings
        from core.errors import field_errors
        from core.i18n import Translator, resolve_language

        t = Translator(resolve_language(Settings(Path(args.home) if args.home else None).get("LANGUAGE")))
        print("\n".join(f"error: {line}" for line in field_errors(exc, t)), file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rank = int(os.environ.get("RANK", "0"))
    rank_data = None
    if rank > 0:  # one studio instance per data folder (core.instance): the other ranks of an
        # accelerate run get a throwaway store, so rank 0 alone holds the lock and writes rows
        rank_data = tempfile.mkdtemp(prefix=f"cyberbill-rank{rank}-")
    ctx = build_context(args.home, overrides={"DATA_DIR": rank_data} if rank_data else None, load_modules=False)
    job = None
    try:
        if args.command == "estimate":
            print(json.dumps(_estimate(params, ctx), indent=2))
            return 0
        job = ConsoleJob("lora.train", params, workdir=ctx.path("OUTPUTS_DIR") / "cli" / "lora_training", t=ctx.t)
        job.workdir.mkdir(parents=True, exist_ok=True)

        def on_sigint(*_):
            if job.should_stop():
                raise KeyboardInterrupt
            job.request_stop()
            print("stopping after the current step (Ctrl+C again to abort)", file=sys.stderr)

        signal.signal(signal.SIGINT, on_sigint)
        if args.stop_file:
            _watch_stop_file(Path(args.stop_file), job)
        result = _run(job, params, ctx)
        if int(os.environ.get("RANK", "0")) == 0:  # one result, not one per process
            print(json.dumps(result, indent=2, default=str))
        return 0
    except StudioError as exc:
        print(f"error: {exc.render(ctx.t)}", file=sys.stderr)
        return 1
    finally:
        if job is not None:
            ctx.models.release(job.id, include_kept=True)
        ctx.close()
        if rank_data:
            shutil.rmtree(rank_data, ignore_errors=True)


def _watch_stop_file(path: Path, job) -> None:
    import threading

    def watch() -> None:
        while not job.should_stop():
            if path.exists():
                job.request_stop()
                return
            time.sleep(0.2)

    threading.Thread(target=watch, name="stop-file", daemon=True).start()


def _run(job, params, ctx) -> dict:
    from modules.lora_training.train.prepare_and_train import PrepareAndTrainParams, run_prepare_and_train
    from modules.lora_training.train.trainer import train

    dist = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import Accelerator

        dist = Accelerator()
        job.info(ctx.t("lora.log.distributed", world=dist.num_processes, rank=dist.process_index))
    if isinstance(params, PrepareAndTrainParams):
        return run_prepare_and_train(job, params, ctx)
    return train(job, params, ctx, dist=dist)


def _estimate(params, ctx) -> dict:
    from modules.lora_training.train.estimate import plan

    tp = getattr(params, "train", params)
    return plan(tp, ctx)


if __name__ == "__main__":
    sys.exit(main())
