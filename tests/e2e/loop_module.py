"""A test-only tab (not shipped in modules/): a form, a Start button and the shared
JobPanel over a real looping job, to drive the shell's follow/stop/re-attach in a browser."""
from __future__ import annotations

import time

import gradio as gr
from pydantic import BaseModel, Field

from core.module import JobKind, Module
from core.ui.job_panel import JobPanel


class LoopParams(BaseModel):
    steps: int = Field(200, ge=1, le=100_000)
    delay: float = Field(0.05, ge=0, le=2)


def run_loop(job, p: LoopParams, ctx):
    for i in range(p.steps):
        if job.should_stop():
            job.info(f"stop seen at step {i}")
            return {"last": i}
        job.info(f"loop step {i}")
        job.metric(i, loss=1.0 / (i + 1))
        job.progress(i + 1, p.steps, "steps")
        time.sleep(p.delay)
    return {"last": p.steps - 1}


def build_ui(ctx):
    steps = gr.Number(value=200, label="steps", precision=0, elem_id="loop-steps")
    start = gr.Button("Start loop", elem_id="loop-start")
    panel = JobPanel(ctx, kind_prefix="test.", metrics=("loss",))
    start.click(lambda n: panel.submit("test.loop", {"steps": int(n), "delay": 0.05}), inputs=steps,
                outputs=panel.job_id)


KIND = JobKind("test.loop", LoopParams, run_loop, gpu=True)
MODULE = Module(id="test_loop", title_key="jobs.title", order=999, build_ui=build_ui, job_kinds=[KIND])


def install(ctx) -> None:
    ctx.jobs.register(KIND)
    ctx.modules.append(MODULE)
