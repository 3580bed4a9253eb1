"""Headless runs: any job kind from the command line, through the same runner and store
as the app (so the job shows in the Jobs tab), logs printed live, Ctrl+C = Stop."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from core.errors import StudioError, field_errors
from core.safetext import dumps


def read_params(arg: str | None) -> dict:
    if not arg:
        return {}
    p = Path(arg)
    text = p.read_text(encoding="utf-8") if p.is_file() else arg
    return json.loads(text)


def run_job_foreground(ctx, kind: str, params: dict, out=None) -> int:
    """Submit, stream logs until final; returns 0 completed, 1 failed, 130 stopped, 2 refused.

    Closes `ctx` in every case (a refused job too: a context left open keeps its threads and
    the data folder's lock)."""
    try:
        return _follow_in_foreground(ctx, kind, params, out or sys.stderr)  # stderr looked up now: tests swap it
    finally:
        ctx.close()


def _follow_in_foreground(ctx, kind: str, params: dict, out) -> int:
    try:
        job_id = ctx.jobs.submit(kind, params)
    except KeyError:
        print(ctx.t("jobs.unknown_kind", kind=kind), file=out)
        return 2
    except ValidationError as exc:
        print("\n".join(field_errors(exc, ctx.t)), file=out)
        return 2
    except StudioError as exc:
        print(exc.render(ctx.t), file=out)
        return 2
    after, stopping = 0, False
    while True:
        try:
            for row in ctx.store.logs(job_id, after):
                after = row["id"]
                print(f"[{row['level']}] {row['message']}", file=out, flush=True)
            job = ctx.store.get_job(job_id)
            if job["status"] not in ("pending", "running") and ctx.jobs.get(job_id) is None:
                ctx.jobs.flush()
                for row in ctx.store.logs(job_id, after):
                    print(f"[{row['level']}] {row['message']}", file=out, flush=True)
                print(json.dumps({"id": job_id, "status": job["status"], "result": job["result"]}))
                return {"completed": 0, "stopped": 130}.get(job["status"], 1)
            time.sleep(0.3)
        except KeyboardInterrupt:
            if stopping:
                raise
            stopping = True
            ctx.jobs.stop(job_id)
            print(ctx.t("cli.stopping"), file=out, flush=True)


def run_direct(ctx, kind: str, params, run, verbose: bool = True, out=None) -> int:
    """Run an engine in this thread with a ConsoleJob (no runner, no store): Ctrl+C asks
    for a stop (a second one aborts), a StudioError prints its translated message, the
    result is printed as JSON on stdout.

    Returns the exit code: 0 done, 1 failed, 3 stopped.
    """
    import signal

    from core.jobs import ConsoleJob

    out = out or sys.stderr

    job = ConsoleJob(kind, params, workdir=ctx.path("OUTPUTS_DIR") / "cli", t=ctx.t, verbose=verbose)
    job.workdir.mkdir(parents=True, exist_ok=True)

    def on_sigint(_sig, _frame):
        if job.should_stop():
            raise KeyboardInterrupt
        print(ctx.t("cli.stopping"), file=out, flush=True)
        job.request_stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = run(job, params, ctx)
    except StudioError as exc:
        print(exc.render(ctx.t), file=out)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
        ctx.models.release(job.id)
    print(dumps(result, indent=2, ensure_ascii=False))  # safe: a non-UTF-8 file name must not crash stdout
    return 3 if job.should_stop() else 0
