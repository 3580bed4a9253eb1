"""Small job functions used by the core tests (real loops, not mocks)."""
from __future__ import annotations

import time


def looping(n: int = 1000, dt: float = 0.01, record: list | None = None):
    def fn(job):
        for i in range(n):
            if job.should_stop():
                job.info(f"stopped at {i}")
                return {"last": i}
            if record is not None:
                record.append((job.id, "start", i, time.monotonic()))
            job.log("info", f"step {i}")
            job.metric(i, loss=1.0 / (i + 1))
            job.progress(i + 1, n, "steps")
            time.sleep(dt)
            if record is not None:
                record.append((job.id, "end", i, time.monotonic()))
        return {"last": n - 1}

    return fn
