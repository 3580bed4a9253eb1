"""Cheap real job kinds and a live studio for the reliability tests.

The kinds loop, report progress, check `should_stop()` every step and can be told to
fail, to run out of memory or to hit a full disk, so the runner sees the same
exceptions a real engine would raise.
"""
from __future__ import annotations

import errno
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from core.module import JobKind


class TinyParams(BaseModel):
    steps: int = Field(3, ge=1, le=400)
    delay: float = Field(0.0, ge=0, le=0.05)
    fail_at: int | None = Field(None, ge=0, le=400, description="raise a ValueError at this step")
    fault: Literal["none", "oom_cuda", "oom_runtime", "memory", "disk_full"] = "none"


def make_run(record: list | None = None, lock: threading.Lock | None = None):
    """A job function; `record` gets (job_id, 'start'|'end', monotonic time) per job."""
    lock = lock or threading.Lock()

    def run(job, p: TinyParams, ctx):
        if record is not None:
            with lock:
                record.append((job.id, "start", time.monotonic()))
        try:
            for i in range(p.steps):
                if job.should_stop():
                    return {"last": i, "stopped": True}
                if p.fail_at is not None and i == p.fail_at:
                    raise ValueError(f"planned failure at step {i}")
                if p.fault != "none" and i == p.steps - 1:
                    raise_fault(p.fault, job.workdir / "out.bin")
                job.log("info", f"step {i}")
                job.metric(i, loss=1.0 / (i + 1))
                job.progress(i + 1, p.steps, "steps")
                if p.delay:
                    time.sleep(p.delay)
            return {"last": p.steps - 1}
        finally:
            if record is not None:
                with lock:
                    record.append((job.id, "end", time.monotonic()))

    return run


def raise_fault(fault: str, path: Path) -> None:
    """The exceptions real engines get from torch, Python and the OS."""
    if fault == "oom_cuda":
        import torch

        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    if fault == "oom_runtime":
        raise RuntimeError("CUDA out of memory. Tried to allocate 512.00 MiB (GPU 0; 7.79 GiB total)")
    if fault == "memory":
        raise MemoryError()
    if fault == "disk_full":
        raise OSError(errno.ENOSPC, "No space left on device", str(path))


def register_kinds(ctx, record: list | None = None) -> None:
    run = make_run(record)
    ctx.jobs.register(JobKind("rel.cpu", TinyParams, run, gpu=False))
    ctx.jobs.register(JobKind("rel.gpu", TinyParams, run, gpu=True))


@contextmanager
def live_studio(home: Path, overrides: dict | None = None, record: list | None = None, auth=None, host="127.0.0.1"):
    """A real server on a free port with the test kinds; yields (base_url, ctx, demo)."""
    from core.context import build_context
    from core.shell import launch
    from tests.e2e.browser import free_port

    ctx = build_context(home, overrides=overrides, load_modules=False)
    register_kinds(ctx, record)
    port = free_port()
    demo = launch(ctx, host=host, port=port, auth=auth, block=False)
    try:
        yield f"http://127.0.0.1:{port}", ctx, demo
    finally:
        demo.close()
        ctx.close()


def wait_final(client, job_id: str, timeout: float = 30.0) -> dict:
    """Poll the REST API until the job is in a final state."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = client.get(f"/jobs/{job_id}").json()
        if state["status"] in ("completed", "failed", "stopped", "cancelled", "interrupted"):
            return state
        time.sleep(0.02)
    raise TimeoutError(f"{job_id} not final after {timeout}s: {state}")
