"""Headless runs: any job kind from the command line, through the same runner and store
as the app (so the job shows in the Jobs tab), logs printed live, Ctrl+C = Stop."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from core.errors import StudioError


def read_params(arg: str | None) -> dict:
    if not arg:
        return {}
    p = Path(arg)
    text = p.read_text(encoding="utf-8") if p.is_file() else arg
    return json.loads(text)


def run_job_foreground(ctx, kind: str, params: dict, out=sys.stderr) -> int:
    """Submit, stream logs until final; returns 0 completed, 1 failed, 130 stopped."""
    try:
        job_id = ctx.jobs.submit(kind, params)
    except KeyError:
        print(ctx.t("jobs.unknown_kind", kind=kind), file=out)
        return 2
    except ValidationError as exc:
        for e in exc.errors():
            print(f"{'.'.join(map(str, e['loc']))}: {e['msg']}", file=out)
        return 2
    except StudioError as exc:
        print(exc.render(ctx.t), file=out)
        return 2
    after, stopping = 0, False
    try:
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
    finally:
        ctx.close()
