"""A soak of a few hundred small jobs through the REST API, checking for leaks.

Mix per 20 jobs: 13 complete on the CPU pool, 1 completes on the GPU queue, 2 fail,
2 are stopped mid-run, 2 are cancelled while queued behind a GPU job. After the soak,
the process must be back to its baseline threads and file descriptors, the runner must
hold no job objects, and RSS growth must stay under a bound (measured: see
docs/RELIABILITY.md). The baseline is taken after a warm-up batch, so one-off costs
(lazy imports, SQLite page cache, server thread pools) are not counted as leaks.
"""
from __future__ import annotations

import gc
import threading
import time

import httpx
import psutil

from tests.reliability.helpers import live_studio

SOAK_JOBS = 300
BATCH = 50
RSS_BOUND_MB = 25  # measured growth: +1.5 MiB over 300 jobs (docs/RELIABILITY.md); this leaves margin
FINAL = ("completed", "failed", "stopped", "cancelled", "interrupted")


def plan(i: int) -> tuple[str, dict, str]:
    """(kind, params, expected final status) of the i-th job."""
    r = i % 20
    if r % 10 == 7:
        return "rel.cpu", {"steps": 5, "fail_at": 1}, "failed"
    if r % 10 == 8:
        return "rel.cpu", {"steps": 400, "delay": 0.005}, "stopped"
    if r == 9:
        return "rel.gpu", {"steps": 3}, "completed"
    if r % 10 == 5:
        return "rel.gpu", {"steps": 2}, "cancelled"  # stopped while still queued
    return "rel.cpu", {"steps": 1 + i % 8}, "completed"


def run_batch(c: httpx.Client, start: int, n: int) -> dict[str, dict]:
    """Create+start n jobs, stop the planned ones, follow all to the end; return finals."""
    # a slow GPU job first, so the planned cancellations really are queued behind it
    blocker = c.post("/jobs", json={"kind": "rel.gpu", "params": {"steps": 400, "delay": 0.005}, "start": True})
    jobs = {}
    for i in range(start, start + n):
        kind, params, expect = plan(i)
        r = c.post("/jobs", json={"kind": kind, "params": params, "start": True})
        assert r.status_code == 201, r.text
        jobs[r.json()["id"]] = (params, expect)
    for jid, (_, expect) in jobs.items():
        if expect == "cancelled":
            assert c.post(f"/jobs/{jid}/stop").json()["status"] == "cancelled"
    for jid, (_, expect) in jobs.items():
        if expect == "stopped":
            while c.get(f"/jobs/{jid}").json()["progress_done"] < 1:
                time.sleep(0.01)
            assert c.post(f"/jobs/{jid}/stop").status_code == 200
    c.post(f"/jobs/{blocker.json()['id']}/stop")
    finals = {}
    deadline = time.time() + 60
    while len(finals) < len(jobs):
        assert time.time() < deadline, "soak batch did not finish"
        for jid in jobs:
            if jid not in finals:
                state = c.get(f"/jobs/{jid}").json()
                if state["status"] in FINAL:
                    finals[jid] = state
        time.sleep(0.02)
    for jid, (params, expect) in jobs.items():
        state = finals[jid]
        assert state["status"] == expect, (jid, params, state)
        if expect == "completed":
            assert state["result"] == {"last": params["steps"] - 1}
            steps = [x for x in c.get(f"/jobs/{jid}/logs").json() if x["message"].startswith("step ")]
            assert len(steps) == params["steps"]
        elif expect == "failed":
            assert "planned failure at step 1" in state["error"]
        elif expect == "stopped":
            assert state["result"]["stopped"] is True and 1 <= state["result"]["last"] < 400
    return finals


def snapshot(proc: psutil.Process) -> dict:
    gc.collect()
    return {"threads": threading.active_count(), "fds": proc.num_fds(), "rss_mb": proc.memory_info().rss / 2**20,
            "runner_threads": sorted(t.name for t in threading.enumerate() if t.name.startswith("job-"))}


def test_soak_of_small_jobs_leaks_nothing(tmp_path):
    proc = psutil.Process()
    with live_studio(tmp_path / "home") as (base, ctx, _), httpx.Client(base_url=base + "/api", timeout=30) as c:
        run_batch(c, 0, BATCH)  # warm-up, not counted
        time.sleep(0.5)
        before = snapshot(proc)
        t0 = time.time()
        finals: dict[str, dict] = {}
        for start in range(0, SOAK_JOBS, BATCH):
            finals.update(run_batch(c, start, BATCH))
        elapsed = time.time() - t0
        assert len(finals) == SOAK_JOBS
        # the runner holds nothing for finished jobs
        assert ctx.jobs.running() == [] and ctx.jobs.queued() == []
        assert all(ctx.jobs.get(j) is None for j in finals) and not ctx.jobs._fns  # noqa: SLF001
        # idle server worker threads (anyio's pool) retire after 10 s: wait for them
        deadline = time.time() + 20
        after = snapshot(proc)
        while (after["threads"] > before["threads"] or after["fds"] > before["fds"]) and time.time() < deadline:
            time.sleep(0.5)
            after = snapshot(proc)
        counts = ctx.store.count_by_status()
    growth = after["rss_mb"] - before["rss_mb"]
    print(f"\nsoak: {SOAK_JOBS} jobs (+{BATCH + 1 + SOAK_JOBS // BATCH} warm-up/blockers) in "
          f"{elapsed:.1f}s; threads {before['threads']}->{after['threads']}, fds {before['fds']}->{after['fds']}, "
          f"RSS {before['rss_mb']:.1f}->{after['rss_mb']:.1f} MiB ({growth:+.1f}); statuses {counts}")
    assert after["runner_threads"] == before["runner_threads"] == ["job-cpu-0", "job-cpu-1", "job-events", "job-gpu"]
    assert after["threads"] <= before["threads"], (before, after)
    assert after["fds"] <= before["fds"], (before, after)
    assert growth < RSS_BOUND_MB, (before, after)
