"""`JobPanel`: the follow-a-job widget every tab embeds (status, progress + ETA, log,
metric chart, previews, outputs, Stop).

It follows by polling the store on a `gr.Timer`, so it works identically for a job just
started, a job started in another browser tab, and after a page reload (on load it
re-attaches to the newest running job of its kinds).

Usage inside a module's `build_ui(ctx)`:

    panel = JobPanel(ctx, kind_prefix="sr.", metrics=("loss",))
    run.click(lambda a, b: panel.submit("sr.upscale", {"x": a, "y": b}),
              inputs=[a, b], outputs=panel.job_id)

`panel.finished` (hidden) becomes "<id>:<status>" when the job ends: hook `.change` on it to
refresh lists. `submit` validates params against the kind's model and turns a bad field or a
StudioError into a translated `gr.Error` (the form stays as the user left it).
"""
from __future__ import annotations

from typing import Any

import gradio as gr
from pydantic import ValidationError

from core.errors import StudioError, user_message
from core.i18n import request_translator
from core.ui.job_view import format_logs, metric_frame, status_markdown

ACTIVE = ("pending", "running")
# Gradio's autoscroll only follows typing, not a value set by the server: scroll job logs to
# their tail after every update so the newest line is what the user sees.
FOLLOW_TAIL_JS = ("() => { document.querySelectorAll('.cb-job-log textarea, .cb-jobs-log textarea')"
                  ".forEach(t => { t.scrollTop = t.scrollHeight; }); }")


PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def series_colors(metrics: tuple[str, ...]) -> dict[str, str]:
    names = [n for m in metrics for n in (m, m + " (smoothed)")]
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def validation_message(ctx, exc: ValidationError) -> str:
    return user_message(exc, ctx.t)


class JobPanel:
    def __init__(self, ctx, kind_prefix: str, metrics: tuple[str, ...] = (), previews: bool = True,
                 outputs: bool = True, log_lines: int = 14, poll_s: float = 1.0) -> None:
        self.ctx = ctx
        self.kind_prefix = kind_prefix
        self.metrics = metrics
        i18n = ctx.i18n
        with gr.Group():
            self.job_id = gr.Textbox(label=i18n("panel.job_id"), interactive=False, max_lines=1,
                                     elem_classes=["cb-job-id"])
            self.status = gr.Markdown(i18n("panel.no_job"), elem_classes=["cb-job-status"])
            with gr.Row():
                # Red and clickable only while there is something to stop.
                self.stop_btn = gr.Button(i18n("panel.stop"), variant="secondary", size="sm", interactive=False,
                                          elem_classes=["cb-stop"])
            self.log = gr.Textbox(label=i18n("panel.log"), lines=log_lines, max_lines=log_lines, autoscroll=True,
                                  interactive=False, elem_classes=["cb-job-log"])
            # A fixed colour per series: the chart keeps the colour domain of the first frame it
            # gets, so series that appear later (smoothed loss, validation) need one up front.
            # No fixed height: Gradio clips the legend (the series names) of a fixed-height plot.
            self.chart = gr.LinePlot(x="step", y="value", color="series", label=i18n("panel.chart"),
                                     visible=bool(metrics), color_map=series_colors(metrics))
            self.gallery = gr.Gallery(label=i18n("panel.previews"), columns=4, height=260, visible=previews)
            self.files = gr.File(label=i18n("panel.outputs"), file_count="multiple", interactive=False,
                                 visible=outputs)
        # Set to "<job id>:<status>" once the followed job is final; tabs hook `.change` on it
        # to refresh what the job produced (e.g. a model list).
        self.finished = gr.Textbox(visible=False)
        # Polls only while the followed job is pending/running: an idle tab sends nothing.
        self.timer = gr.Timer(poll_s, active=False)
        self.views = [self.status, self.log, self.chart, self.gallery, self.files, self.finished, self.timer,
                      self.stop_btn]
        self.timer.tick(self.refresh, inputs=self.job_id, outputs=self.views, show_progress="hidden")
        self.job_id.change(self.refresh, inputs=self.job_id, outputs=self.views, show_progress="hidden")
        self.stop_btn.click(self.stop, inputs=self.job_id, outputs=self.status)
        self.log.change(None, js=FOLLOW_TAIL_JS)
        ctx.panels.append(self)  # the shell re-attaches every panel on page load

    # -- actions ------------------------------------------------------------
    def submit(self, kind: str, params: dict[str, Any]) -> str:
        try:
            return self.ctx.jobs.submit(kind, params)
        except ValidationError as exc:
            raise gr.Error(validation_message(self.ctx, exc)) from exc
        except StudioError as exc:
            raise gr.Error(exc.render(self.ctx.t)) from exc

    def stop(self, job_id: str, request: gr.Request = None) -> str:
        t = request_translator(self.ctx, request)
        if not job_id:
            return t("panel.no_job")
        try:
            self.ctx.jobs.stop(job_id)
        except KeyError:
            pass
        return status_markdown(self.ctx.store.get_job(job_id), t)

    def latest_job(self) -> str:
        """The job to re-attach to on page load: newest active one of this tab, else newest."""
        rows = self.ctx.store.list_jobs(kind_prefix=self.kind_prefix, limit=20)
        for row in rows:
            if row["status"] in ACTIVE:
                return row["id"]
        return rows[0]["id"] if rows else ""

    def attach_on_load(self, demo: gr.Blocks) -> None:
        demo.load(self.latest_job, outputs=self.job_id)

    # -- polling ------------------------------------------------------------
    def refresh(self, job_id: str, request: gr.Request = None):
        store, t = self.ctx.store, request_translator(self.ctx, request)
        row = store.get_job(job_id) if job_id else None
        if row is None:
            return t("panel.no_job"), "", None, [], None, "", gr.Timer(active=False), stop_button(False)
        final = f"{job_id}:{row['status']}" if row["status"] not in ACTIVE else ""
        status = status_markdown(row, t, self.ctx.jobs.queue_position(job_id))
        logs = format_logs(*store.tail_logs(job_id))
        chart = metric_frame(store.metrics(job_id), self.metrics or None) if self.metrics else None
        if chart is not None and chart.empty:
            # None clears the previous job's curves; an empty frame would fix the axes early.
            chart = None
        previews = [a["path"] for a in store.artifacts(job_id, "preview")][-12:]
        outs = [a["path"] for a in store.artifacts(job_id) if a["kind"] != "preview"]
        outs = [p for p in outs if _exists(p)][-50:] or None
        return status, logs, chart, previews, outs, final, gr.Timer(active=not final), stop_button(not final)


def stop_button(active: bool):
    return gr.Button(variant="stop" if active else "secondary", interactive=active)


def _exists(path: str) -> bool:
    from pathlib import Path

    p = Path(path)
    return p.is_file()
