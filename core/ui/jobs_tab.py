"""The Jobs tab: every run ever started (filter, inspect, stop, resume, delete), the
monitoring panel (jobs by status, durations, device and memory, disk), and the runs
comparison (overlay training curves, diff parameters)."""
from __future__ import annotations

import shutil
import time

import gradio as gr
import pandas as pd

from core.compare import common_metrics, compare_runs, overlay_rows
from core.errors import StudioError
from core.i18n import request_translator
from core.store import STATUSES
from core.system import system_info
from core.ui.job_panel import ACTIVE, FOLLOW_TAIL_JS, stop_button
from core.ui.job_view import fmt_seconds, format_logs, metric_frame, status_markdown

COLUMNS = ["id", "kind", "status", "created", "duration", "progress", "error"]  # the job id stays first


def jobs_table(store, status: str | None, kind: str | None, t=None) -> pd.DataFrame:
    """The jobs list; headers and statuses in the language of `t` (raw names without one)."""
    rows = store.list_jobs(status=status or None, kind_prefix=kind or None, limit=500)
    data = []
    for r in rows:
        dur = (r["finished"] or time.time()) - r["started"] if r["started"] else None
        prog = f"{r['progress_done']:g}/{r['progress_total']:g}" if r["progress_total"] else ""
        data.append([r["id"], r["kind"], t(f"jobs.status.{r['status']}") if t else r["status"],
                     time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created"])),
                     fmt_seconds(dur), prog, (r["error"] or "")[:120]])
    return pd.DataFrame(data, columns=[t(f"jobs.col.{c}") for c in COLUMNS] if t else COLUMNS)


def build_jobs_tab(ctx, demo: gr.Blocks) -> None:
    i18n, t, store = ctx.i18n, ctx.t, ctx.store
    with gr.Row():
        status_f = gr.Dropdown([""] + list(STATUSES), value="", label=i18n("jobs.filter_status"), scale=1)
        kind_f = gr.Textbox(label=i18n("jobs.filter_kind"), placeholder="lora.", scale=1)
        refresh = gr.Button(i18n("jobs.refresh"), scale=0)
    table = gr.Dataframe(value=lambda: jobs_table(store, None, None, t), interactive=False, wrap=True,
                         label=i18n("jobs.table"), elem_classes=["cb-jobs-table"])
    selected = gr.Textbox(label=i18n("panel.job_id"), elem_classes=["cb-jobs-selected"])
    with gr.Row():
        stop_b = gr.Button(i18n("panel.stop"), variant="secondary", size="sm", interactive=False)
        resume_b = gr.Button(i18n("jobs.resume"), size="sm")
        delete_b = gr.Button(i18n("jobs.delete"), size="sm")
    detail_status = gr.Markdown()
    with gr.Row():
        params = gr.JSON(label=i18n("jobs.params"))
        chart = gr.LinePlot(x="step", y="value", color="series", label=i18n("panel.chart"))
    log = gr.Textbox(label=i18n("panel.log"), lines=16, max_lines=30, interactive=False,
                     elem_classes=["cb-jobs-log"])
    with gr.Row():
        previews = gr.Gallery(label=i18n("panel.previews"), columns=6, height=220)
        outputs = gr.File(label=i18n("panel.outputs"), file_count="multiple", interactive=False)

    # Follows the selected job while it is pending/running (progress, log, chart, status at
    # the end), and goes quiet once it is final.
    follow = gr.Timer(1.0, active=False)

    def details(job_id: str, request: gr.Request = None):
        t = request_translator(ctx, request)
        row = store.get_job(job_id) if job_id else None
        if row is None:
            return t("panel.no_job"), None, None, "", [], None, gr.Timer(active=False), stop_button(False)
        rows, total = store.tail_logs(job_id, 2000)
        arts = store.artifacts(job_id)
        files = [a["path"] for a in arts if a["kind"] != "preview" and _is_file(a["path"])]
        active = row["status"] in ACTIVE
        return (status_markdown(row, t, ctx.jobs.queue_position(job_id)), row["params"],
                metric_frame(store.metrics(job_id)), format_logs(rows, total, keep=2000),
                [a["path"] for a in arts if a["kind"] == "preview" and _is_file(a["path"])][-24:], files or None,
                gr.Timer(active=active), stop_button(active))

    detail_outs = [detail_status, params, chart, log, previews, outputs, follow, stop_b]
    follow.tick(details, inputs=selected, outputs=detail_outs, show_progress="hidden")
    log.change(None, js=FOLLOW_TAIL_JS)

    def on_select(df: pd.DataFrame, evt: gr.SelectData):
        return df.iloc[evt.index[0], 0]  # the id column (its header is translated)

    def listing(s, k, request: gr.Request = None):
        return jobs_table(store, s, k, request_translator(ctx, request))

    def act(action, job_id):
        try:
            if action == "stop":
                ctx.jobs.stop(job_id)
            elif action == "resume":
                job_id = ctx.jobs.resume(job_id)
            elif action == "delete":
                row = store.get_job(job_id)
                if row and row["status"] in ("pending", "running"):
                    raise StudioError("jobs.still_active", id=job_id)
                store.delete_job(job_id)
                shutil.rmtree(ctx.jobs.jobs_dir / job_id, ignore_errors=True)
                job_id = ""
        except KeyError:
            raise gr.Error(t("jobs.unknown", id=job_id))
        except StudioError as exc:
            raise gr.Error(exc.render(t))
        return job_id

    table.select(on_select, inputs=table, outputs=selected)
    selected.change(details, inputs=selected, outputs=detail_outs)
    filt = [status_f, kind_f]
    for trigger in (refresh.click, status_f.change, kind_f.submit):
        trigger(listing, inputs=filt, outputs=table)
    for btn, name in ((stop_b, "stop"), (resume_b, "resume"), (delete_b, "delete")):
        btn.click(lambda j, _n=name: act(_n, j), inputs=selected, outputs=selected).then(
            listing, inputs=filt, outputs=table)

    with gr.Accordion(i18n("jobs.compare"), open=False):
        with gr.Row():
            pick = gr.Dropdown(multiselect=True, label=i18n("jobs.compare_pick"), choices=[], scale=3)
            metric = gr.Textbox(value="loss", label=i18n("jobs.compare_metric"), scale=1)
            go = gr.Button(i18n("jobs.compare_go"), scale=0)
        cmp_chart = gr.LinePlot(x="step", y="value", color="job")  # no fixed height: it clips the legend
        cmp_diff = gr.Dataframe(interactive=False, label=i18n("jobs.compare_diff"))

    def compare(ids, name):
        series, diff = compare_runs(store, ids or [], ctx.jobs.kinds)
        metric = name or (common_metrics(series) or ["loss"])[0]
        curves = pd.DataFrame(overlay_rows(series, metric), columns=["job", "step", "value"]).astype(
            {"step": "int64", "value": "float64"})
        table = pd.DataFrame([[k, *(v.get(j) for j in series)] for k, v in diff.items()],
                             columns=["param", *series])
        return curves, table

    go.click(compare, inputs=[pick, metric], outputs=[cmp_chart, cmp_diff])

    with gr.Accordion(i18n("jobs.monitoring"), open=False):
        mon = gr.JSON(label=i18n("jobs.monitoring"))
        mon_refresh = gr.Button(i18n("jobs.refresh"), size="sm")
    mon_refresh.click(lambda: system_info(ctx), outputs=mon)

    def on_load(request: gr.Request = None):
        choices = [r["id"] for r in store.list_jobs(limit=200) if store.metrics(r["id"], "loss")]
        return listing(None, None, request), gr.update(choices=choices), system_info(ctx)

    demo.load(on_load, outputs=[table, pick, mon])


def _is_file(p: str) -> bool:
    from pathlib import Path

    return Path(p).is_file()
