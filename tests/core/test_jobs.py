"""Job lifecycle: order of events, stop within one step, failures, GPU lease, queue."""
from __future__ import annotations

import threading
import time

import pytest

from core.errors import StudioError
from tests.core.jobhelpers import looping


def test_events_arrive_in_order_and_complete(bare_ctx):
    jid = bare_ctx.jobs.submit("t.loop", {}, looping(n=30, dt=0.0))
    row = bare_ctx.jobs.wait(jid)
    assert row["status"] == "completed"
    assert row["result"] == {"last": 29}
    msgs = [r["message"] for r in bare_ctx.store.logs(jid)]
    steps = [m for m in msgs if m.startswith("step ")]
    assert steps == [f"step {i}" for i in range(30)]
    assert msgs[0].startswith("Job t.loop started") and msgs[-1].startswith("Completed")
    ms = bare_ctx.store.metrics(jid, "loss")
    assert [m["step"] for m in ms] == list(range(30))
    assert ms[-1]["value"] == pytest.approx(1 / 30)
    assert row["progress_done"] == 30 and row["progress_total"] == 30


def test_stop_ends_within_one_step(bare_ctx):
    seen = []
    jid = bare_ctx.jobs.submit("t.loop", {}, looping(n=10_000, dt=0.02, record=seen))
    while len(seen) < 10:
        time.sleep(0.01)
    bare_ctx.jobs.stop(jid)
    at_stop = max(i for (_, ev, i, _) in seen if ev == "start")
    row = bare_ctx.jobs.wait(jid)
    assert row["status"] == "stopped"
    # the loop saw the stop before starting more than one further step
    assert row["result"]["last"] <= at_stop + 2
    assert any("stopped at" in r["message"] for r in bare_ctx.store.logs(jid))


def test_exception_becomes_failed_with_traceback(bare_ctx):
    def bad(job):
        job.info("about to fail")
        raise ValueError("boom 42")

    row = bare_ctx.jobs.wait(bare_ctx.jobs.submit("t.bad", {}, bad))
    assert row["status"] == "failed"
    assert "boom 42" in row["error"]
    logs = "\n".join(r["message"] for r in bare_ctx.store.logs(row["id"]))
    assert "Traceback" in logs and "ValueError" in logs


def test_studio_error_is_translated(bare_ctx):
    def bad(job):
        raise StudioError("jobs.unknown", id="xyz")

    row = bare_ctx.jobs.wait(bare_ctx.jobs.submit("t.bad", {}, bad))
    assert row["status"] == "failed"
    assert row["error"] == "No job with id xyz."
    # the traceback behind a translated error is for debugging: in the job's debug file only
    logs = bare_ctx.store.logs(row["id"])
    assert not any("Traceback" in r["message"] or r["level"] == "debug" for r in logs)
    debug = (bare_ctx.jobs.jobs_dir / row["id"] / "debug.log").read_text(encoding="utf-8")
    assert "Traceback" in debug and "StudioError" in debug


def test_gpu_jobs_never_overlap_and_queue_is_visible(bare_ctx):
    seen: list = []
    gate = threading.Event()

    def first(job):
        gate.wait(10)  # holds the lease until the queue behind it has been checked
        return looping(n=8, dt=0.01, record=seen)(job)

    a = bare_ctx.jobs.submit("t.a", {}, first, gpu=True)
    while a not in bare_ctx.jobs.running():
        time.sleep(0.005)
    b = bare_ctx.jobs.submit("t.b", {}, looping(n=8, dt=0.01, record=seen), gpu=True)
    c = bare_ctx.jobs.submit("t.c", {}, looping(n=8, dt=0.01, record=seen), gpu=True)
    assert (bare_ctx.jobs.queue_position(b), bare_ctx.jobs.queue_position(c)) == (1, 2)
    gate.set()
    for j in (a, b, c):
        assert bare_ctx.jobs.wait(j)["status"] == "completed"
    spans = {}
    for jid, _ev, _i, ts in seen:
        lo, hi = spans.get(jid, (ts, ts))
        spans[jid] = (min(lo, ts), max(hi, ts))
    ordered = sorted(spans.values())
    for (s1, e1), (s2, _e2) in zip(ordered, ordered[1:]):
        assert e1 <= s2, "two GPU jobs ran at the same time"


def test_cpu_job_runs_beside_gpu_job(bare_ctx):
    gate = threading.Event()

    def gpu_job(job):
        gate.wait(5)
        return {"ok": gate.is_set()}

    def cpu_job(job):
        gate.set()
        return {}

    g = bare_ctx.jobs.submit("t.gpu", {}, gpu_job, gpu=True)
    bare_ctx.jobs.submit("t.cpu", {}, cpu_job, gpu=False)
    assert bare_ctx.jobs.wait(g)["result"] == {"ok": True}


def test_cancel_queued_job_removes_it_from_queue(bare_ctx):
    a = bare_ctx.jobs.submit("t.a", {}, looping(n=10_000, dt=0.01), gpu=True)
    while a not in bare_ctx.jobs.running():
        time.sleep(0.01)
    b = bare_ctx.jobs.submit("t.b", {}, looping(n=5, dt=0.0), gpu=True)
    assert b in bare_ctx.jobs.queued() and bare_ctx.jobs.queue_position(b) == 1
    assert bare_ctx.jobs.stop(b) == "cancelled"
    assert b not in bare_ctx.jobs.queued()
    bare_ctx.jobs.stop(a)
    assert bare_ctx.jobs.wait(a)["status"] == "stopped"
    assert bare_ctx.store.get_job(b)["status"] == "cancelled"
    assert bare_ctx.store.logs(b) == []  # it never ran


def test_stop_in_one_job_does_not_stop_another(bare_ctx):
    a = bare_ctx.jobs.submit("t.a", {}, looping(n=40, dt=0.005), gpu=False)
    b = bare_ctx.jobs.submit("t.b", {}, looping(n=40, dt=0.005), gpu=False)
    while a not in bare_ctx.jobs.running():
        time.sleep(0.005)
    bare_ctx.jobs.stop(a)
    assert bare_ctx.jobs.wait(a)["status"] == "stopped"
    assert bare_ctx.jobs.wait(b)["status"] == "completed"


def test_registered_kind_validates_params_and_resume(bare_ctx):
    from pydantic import BaseModel, Field, ValidationError

    from core.module import JobKind

    class P(BaseModel):
        n: int = Field(3, ge=1, le=100)
        start_at: int = 0

    def run(job, p, ctx):
        for i in range(p.start_at, p.n):
            job.metric(i, loss=float(i))
        return {"from": p.start_at}

    bare_ctx.jobs.register(JobKind("t.kind", P, run, gpu=False,
                                   resume=lambda old, jid, ctx: {**old, "start_at": 2}))
    with pytest.raises(ValidationError):
        bare_ctx.jobs.submit("t.kind", {"n": 0})
    first = bare_ctx.jobs.wait(bare_ctx.jobs.submit("t.kind", {"n": 5}))
    assert first["params"] == {"n": 5, "start_at": 0}
    again = bare_ctx.jobs.wait(bare_ctx.jobs.resume(first["id"]))
    assert again["result"] == {"from": 2} and again["parent_id"] == first["id"]


def test_preview_and_artifact_recorded(bare_ctx, tmp_path):
    def fn(job):
        out = tmp_path / "out.txt"
        out.write_text("x")
        job.artifact(out, "output")
        return {}

    row = bare_ctx.jobs.wait(bare_ctx.jobs.submit("t.art", {}, fn))
    arts = bare_ctx.store.artifacts(row["id"])
    assert [(a["kind"], a["path"]) for a in arts] == [("output", str(tmp_path / "out.txt"))]


def test_panel_refresh_clears_the_previous_chart_and_stop_follows_state(bare_ctx):
    """Issue 18.6: a job with no metric yet returns None for the chart (clears the previous
    job's curves; an empty frame is never sent); Stop is only live while a job is active."""
    import gradio as gr

    from core.shell import make_i18n
    from core.ui.job_panel import JobPanel

    bare_ctx.i18n = make_i18n(bare_ctx)
    store = bare_ctx.store
    store.create_job("old", "t.x", {})
    store.write_events([("metric", "old", 0.0, 1, "loss", 0.5)])
    store.create_job("new", "t.x", {})
    with gr.Blocks():
        panel = JobPanel(bare_ctx, kind_prefix="t.", metrics=("loss",))
    out = panel.refresh("old")
    assert out[2] is not None and list(out[2]["series"]) == ["loss", "loss (smoothed)"]
    assert out[7].interactive is True  # pending: stoppable (cancel)
    out = panel.refresh("new")
    assert out[2] is None
    store.set_status("new", "stopped")
    out = panel.refresh("new")
    assert out[5] == "new:stopped" and out[7].interactive is False and out[7].variant == "secondary"
    assert panel.refresh("")[7].interactive is False
