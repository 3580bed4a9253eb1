"""Gradio section for LoRA data: import, Florence-2 captions, caption editor.

Built by `build_data_ui(ctx)` inside the LoRA tab (the trainer's `ui.py` places it and may
reuse its components, returned by name). Buttons submit `lora.prepare` / `lora.caption`
jobs to the shell's job runner (so they appear in the Jobs tab, survive a page reload and
can be stopped); when a job ends its summary appears below the forms. The editor works on an
in-memory copy of the captions and writes only what changed when Save is clicked.
Handlers are plain module functions taking `ctx` first, so tests call them directly.
"""
from __future__ import annotations

from typing import Any

import gradio as gr
from pydantic import ValidationError

from core.errors import StudioError, user_message

from . import captions as ops
from .captioner import TASKS, list_local_captioners
from .jobs import CaptionParams, PrepareParams
from .project import Project, list_projects

def _i18n(ctx):
    if ctx.i18n is None:
        from core.i18n import gradio_i18n

        ctx.i18n = gradio_i18n()
    return ctx.i18n


def _err(ctx, exc: Exception) -> str:
    return "⚠️ " + user_message(exc, ctx.t)


# -- jobs ------------------------------------------------------------------------------
def start_prepare(ctx, project, concept, source_dir, files, resolution, mode, min_size, upscale, dedupe,
                  copy_captions) -> tuple[str, str]:
    try:
        if not (source_dir or "").strip() and not files:
            return "", "⚠️ " + ctx.t("lora_data.ui.need_source")
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
        params = PrepareParams(project=project or "", concept=concept or "default", source_dir=(source_dir or "").strip(),
                               files=paths, resolution=int(resolution), mode=mode, min_size=int(min_size),
                               upscale_small=bool(upscale), dedupe=bool(dedupe), copy_captions=bool(copy_captions))
        Project.from_ctx(ctx, params.project).concept_dir(params.concept)  # name errors now, not in the job
        job_id = ctx.jobs.submit("lora.prepare", params)
    except (StudioError, ValidationError) as exc:
        return "", _err(ctx, exc)
    return job_id, ctx.t("lora_data.ui.started", job=job_id)


def start_caption(ctx, project, concept, model, task, trigger, overwrite, batch_size) -> tuple[str, str]:
    try:
        params = CaptionParams(project=project or "", concept=concept or "", model=model or "", task=task,
                               trigger_word=trigger or "", overwrite=bool(overwrite), batch_size=int(batch_size))
        project = Project.from_ctx(ctx, params.project)
        if not project.data_dir.is_dir():
            raise StudioError("lora_data.project_missing", project=project.name, path=str(project.dir))
        job_id = ctx.jobs.submit("lora.caption", params)
    except (StudioError, ValidationError) as exc:
        return "", _err(ctx, exc)
    return job_id, ctx.t("lora_data.ui.started", job=job_id)


def job_status(ctx, job_id: str) -> str:
    """Markdown summary of a finished data job (the job panel shows live progress/logs)."""
    row = ctx.store.get_job(job_id) if job_id else None
    if row is None or row["status"] in ("pending", "running") or not row["kind"].startswith("lora."):
        return ""
    res = row.get("result") or {}
    if row["kind"] == "lora.prepare" and res:
        head = ctx.t("lora_data.log.import_done", imported=res.get("imported", 0), skipped=res.get("skipped", 0),
                     warnings=res.get("warnings", 0), captions=res.get("captions_copied", 0),
                     buckets=", ".join(f"{k}: {v}" for k, v in (res.get("buckets") or {}).items()))
        return "\n".join([head, *_skipped_table(ctx, job_id)])
    if row["kind"] == "lora.caption" and res:
        return ctx.t("lora_data.log.caption_done", written=res.get("written", 0), kept=res.get("kept", 0),
                     failed=res.get("failed", 0))
    return f"⚠️ {row['error']}" if row.get("error") else ""


def _skipped_table(ctx, job_id: str, limit: int = 30) -> list[str]:
    """The skipped files of a finished import, read from its report artifact."""
    import json
    from pathlib import Path

    for art in ctx.store.artifacts(job_id, "report"):
        try:
            report = json.loads(Path(art["path"]).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        rows = [f"| {Path(s['source']).name} | {ctx.t('lora_data.reason.' + s['reason'])} | {s.get('detail', '')} |"
                for s in report.get("skipped", [])[:limit]]
        return ["", "| | | |", "|---|---|---|", *rows] if rows else []
    return []


# -- editor ------------------------------------------------------------------------------
def _gallery(captions: dict[str, str]) -> list[tuple[str, str]]:
    return [(path, text) for path, text in captions.items()]


def _changed_msg(ctx, n: int, captions: dict, original: dict) -> str:
    pending = sum(captions.get(k) != original.get(k) for k in captions)
    return ctx.t("lora_data.ui.changed", count=n, pending=pending)


def load_editor(ctx, project, concept):
    try:
        items = ops.load_items(Project.from_ctx(ctx, project or ""), (concept or "").strip() or None)
    except StudioError as exc:
        return [], {}, {}, "", _err(ctx, exc)
    caps = {str(i.image): i.caption for i in items}
    return _gallery(caps), caps, dict(caps), "", ctx.t("lora_data.ui.loaded", count=len(caps))


def select_image(captions: dict, evt: gr.SelectData):
    keys = list(captions)
    if evt is None or evt.index is None or not 0 <= int(evt.index) < len(keys):
        return "", ""
    key = keys[int(evt.index)]
    return key, captions[key]


def apply_edit(ctx, selected, text, captions, original):
    if not selected or selected not in captions:
        return gr.skip(), captions, ctx.t("lora_data.ui.no_selection")
    caps, n = ops.set_caption(captions, selected, text or "")
    return _gallery(caps), caps, _changed_msg(ctx, n, caps, original)


def replace_all(ctx, find, replace, regex, case, captions, original):
    try:
        caps, n = ops.find_replace(captions, find or "", replace or "", bool(regex), bool(case))
    except StudioError as exc:
        return gr.skip(), captions, _err(ctx, exc)
    return _gallery(caps), caps, _changed_msg(ctx, n, caps, original)


def tag_all(ctx, tag, position, remove, captions, original, trigger=""):
    caps, n = (ops.remove_tag(captions, tag or "") if remove
               else ops.add_tag(captions, tag or "", position, keep_first=trigger or ""))
    return _gallery(caps), caps, _changed_msg(ctx, n, caps, original)


def save_all(ctx, project, captions, original):
    try:
        written = ops.save_captions(Project.from_ctx(ctx, project or ""), captions, original)
    except StudioError as exc:
        return original, _err(ctx, exc)
    return dict(captions), ctx.t("lora_data.ui.saved", count=len(written))


# -- layout ----------------------------------------------------------------------------------
def caption_model_choices(ctx) -> list[str]:
    """The captioners found in CAPTIONERS_DIR, then the configured default (rescanned on Refresh)."""
    default_model = ctx.config.get("DEFAULT_CAPTION_MODEL", "")
    models = list_local_captioners(ctx.path("CAPTIONERS_DIR"))
    return list(dict.fromkeys(models + [default_model])) if default_model else models


def build_data_ui(ctx, panel=None) -> dict[str, Any]:
    """Build the section inside the current Blocks context; returns components by name.

    `panel`: a `core.ui.job_panel.JobPanel` to follow the jobs started here (the trainer's,
    so one panel shows prepare, caption and training); when None the section makes its own.
    """
    t = _i18n(ctx)
    root = ctx.path("LORA_PROJECTS_DIR")
    c: dict[str, Any] = {}
    with gr.Group():
        with gr.Row():
            c["project"] = gr.Dropdown(choices=list_projects(root), value=None, allow_custom_value=True,
                                       label=t("lora_data.ui.project"), info=t("lora_data.ui.project_info"))
            c["concept"] = gr.Textbox(value="default", label=t("lora_data.ui.concept"))
            c["refresh"] = gr.Button(t("lora_data.ui.refresh"), size="sm", scale=0)
        with gr.Accordion(t("lora_data.ui.import"), open=True):
            c["source_dir"] = gr.Textbox(label=t("lora_data.ui.source_dir"), placeholder="/path/to/images")
            c["files"] = gr.File(label=t("lora_data.ui.files"), file_count="multiple", type="filepath")
            with gr.Row():
                # No browser-side bounds: the params model checks them and its message names the field.
                c["resolution"] = gr.Number(value=1024, step=64, precision=0,
                                            label=t("lora_data.ui.resolution"))
                c["mode"] = gr.Radio(choices=[(t("lora_data.ui.mode_buckets"), "buckets"),
                                              (t("lora_data.ui.mode_crop"), "crop")],
                                     value="buckets", label=t("lora_data.ui.mode"))
                c["min_size"] = gr.Number(value=256, minimum=64, maximum=4096, precision=0,
                                          label=t("lora_data.ui.min_size"))
            with gr.Row():
                c["upscale_small"] = gr.Checkbox(value=False, label=t("lora_data.ui.upscale_small"))
                c["dedupe"] = gr.Checkbox(value=True, label=t("lora_data.ui.dedupe"))
                c["copy_captions"] = gr.Checkbox(value=True, label=t("lora_data.ui.copy_captions"))
            c["prepare_btn"] = gr.Button(t("lora_data.ui.prepare"), variant="secondary")
        with gr.Accordion(t("lora_data.ui.captions"), open=True):
            default_model = ctx.config.get("DEFAULT_CAPTION_MODEL", "")
            models = list_local_captioners(ctx.path("CAPTIONERS_DIR"))
            with gr.Row():
                c["caption_model"] = gr.Dropdown(choices=caption_model_choices(ctx),
                                                 value=models[0] if models else default_model,
                                                 allow_custom_value=True, label=t("lora_data.ui.caption_model"))
                labels = ("lora_data.ui.task_caption", "lora_data.ui.task_detailed", "lora_data.ui.task_more_detailed")
                c["caption_task"] = gr.Dropdown(choices=[(t(k), task) for k, task in zip(labels, TASKS)],
                                                value="<DETAILED_CAPTION>", label=t("lora_data.ui.caption_task"))
            with gr.Row():
                c["trigger_word"] = gr.Textbox(label=t("lora_data.ui.trigger_word"), placeholder="sks")
                c["overwrite"] = gr.Checkbox(value=False, label=t("lora_data.ui.overwrite"))
                c["batch_size"] = gr.Slider(1, 32, value=4, step=1, label=t("lora_data.ui.batch_size"))
            c["caption_btn"] = gr.Button(t("lora_data.ui.caption"), variant="secondary")
        c["status"] = gr.Markdown()
        if panel is None:
            from core.ui.job_panel import JobPanel

            panel = JobPanel(ctx, kind_prefix="lora.", metrics=())
        c["panel"], c["job_id"] = panel, panel.job_id
        with gr.Accordion(t("lora_data.ui.editor"), open=False):
            c["load_btn"] = gr.Button(t("lora_data.ui.load"), size="sm")
            c["gallery"] = gr.Gallery(label=t("lora_data.ui.gallery"), columns=6, height=360, allow_preview=False)
            c["captions"], c["original"], c["selected"] = gr.State({}), gr.State({}), gr.State("")
            c["caption_box"] = gr.Textbox(label=t("lora_data.ui.caption_box"), lines=3)
            c["apply_btn"] = gr.Button(t("lora_data.ui.apply"), size="sm")
            with gr.Row():
                c["find"] = gr.Textbox(label=t("lora_data.ui.find"))
                c["replace"] = gr.Textbox(label=t("lora_data.ui.replace"))
                c["regex"] = gr.Checkbox(value=False, label=t("lora_data.ui.regex"))
                c["case"] = gr.Checkbox(value=True, label=t("lora_data.ui.case_sensitive"))
                c["replace_btn"] = gr.Button(t("lora_data.ui.replace_all"), size="sm")
            with gr.Row():
                c["tag"] = gr.Textbox(label=t("lora_data.ui.tag"))
                c["position"] = gr.Radio(choices=[(t("lora_data.ui.pos_start"), "start"),
                                                  (t("lora_data.ui.pos_end"), "end")],
                                         value="start", label=t("lora_data.ui.position"))
                c["add_tag_btn"] = gr.Button(t("lora_data.ui.add_tag"), size="sm")
                c["remove_tag_btn"] = gr.Button(t("lora_data.ui.remove_tag"), size="sm")
            c["save_btn"] = gr.Button(t("lora_data.ui.save"), variant="primary")
            c["editor_status"] = gr.Markdown()
    _wire(ctx, c)
    return c


def _wire(ctx, c: dict[str, Any]) -> None:
    c["refresh"].click(lambda: gr.update(choices=list_projects(ctx.path("LORA_PROJECTS_DIR"))), None, c["project"])
    c["prepare_btn"].click(lambda *a: start_prepare(ctx, *a),
                           [c[k] for k in ("project", "concept", "source_dir", "files", "resolution", "mode",
                                           "min_size", "upscale_small", "dedupe", "copy_captions")],
                           [c["job_id"], c["status"]])
    c["caption_btn"].click(lambda *a: start_caption(ctx, *a),
                           [c[k] for k in ("project", "concept", "caption_model", "caption_task", "trigger_word",
                                           "overwrite", "batch_size")],
                           [c["job_id"], c["status"]])
    # The summary appears when the panel reports the job final (no polling of our own).
    c["panel"].finished.change(lambda _f, j: job_status(ctx, j) if j else gr.skip(),
                               [c["panel"].finished, c["job_id"]], c["status"], show_progress="hidden")
    state = [c["captions"], c["original"]]
    c["load_btn"].click(lambda p, k: load_editor(ctx, p, k), [c["project"], c["concept"]],
                        [c["gallery"], *state, c["selected"], c["editor_status"]])
    c["gallery"].select(select_image, c["captions"], [c["selected"], c["caption_box"]])
    c["apply_btn"].click(lambda *a: apply_edit(ctx, *a), [c["selected"], c["caption_box"], *state],
                         [c["gallery"], c["captions"], c["editor_status"]])
    c["replace_btn"].click(lambda *a: replace_all(ctx, *a),
                           [c["find"], c["replace"], c["regex"], c["case"], *state],
                           [c["gallery"], c["captions"], c["editor_status"]])
    c["add_tag_btn"].click(lambda tg, pos, cap, orig, trig: tag_all(ctx, tg, pos, False, cap, orig, trig),
                           [c["tag"], c["position"], *state, c["trigger_word"]],
                           [c["gallery"], c["captions"], c["editor_status"]])
    c["remove_tag_btn"].click(lambda tg, pos, cap, orig: tag_all(ctx, tg, pos, True, cap, orig),
                              [c["tag"], c["position"], *state], [c["gallery"], c["captions"], c["editor_status"]])
    c["save_btn"].click(lambda p, cap, orig: save_all(ctx, p, cap, orig), [c["project"], *state],
                        [c["original"], c["editor_status"]])
