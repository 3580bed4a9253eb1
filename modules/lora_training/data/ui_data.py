"""Gradio section for LoRA data: import, automatic captions (Florence-2, WD14 tagger, VLM,
tags + sentence), and the caption editor (`ui_editor`).

Built by `build_data_ui(ctx)` inside the LoRA tab (the trainer's `ui.py` places it and may
reuse its components, returned by name). Buttons submit `lora.prepare` / `lora.caption`
jobs to the shell's job runner (so they appear in the Jobs tab, survive a page reload and
can be stopped); when a job ends its summary appears below the forms. The captioner kind
picks which settings are shown and which local models are listed.
Handlers are plain module functions taking `ctx` first, so tests call them directly.
"""
from __future__ import annotations

from typing import Any

import gradio as gr
from pydantic import ValidationError

from core.errors import StudioError, user_message

from .captioners import DEFAULT_MODELS, TASKS, list_local_captioners
from .jobs import CaptionParams, PrepareParams, caption_defaults
from .project import Project, list_projects
from .ui_editor import build_editor, wire_editor

CAPTION_EXTRA = ("caption_kind", "tagger_model", "sentence_kind", "prompt", "max_new_tokens", "general_threshold",
                 "character_threshold", "include_rating", "blacklist", "tag_order")

def _i18n(ctx):
    if ctx.i18n is None:
        from core.i18n import gradio_i18n

        ctx.i18n = gradio_i18n()
    return ctx.i18n


def _err(ctx, exc: Exception) -> str:
    return "⚠️ " + user_message(exc, ctx.t)


# -- jobs ------------------------------------------------------------------------------
def start_prepare(ctx, project, concept, source_dir, files, resolution, mode, min_size, upscale, dedupe,
                  copy_captions, repeats=1, kohya_folders=False) -> tuple[str, str]:
    try:
        if not (source_dir or "").strip() and not files:
            return "", "⚠️ " + ctx.t("lora_data.ui.need_source")
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
        params = PrepareParams(project=project or "", concept=concept or "default", source_dir=(source_dir or "").strip(),
                               files=paths, resolution=int(resolution), mode=mode, min_size=int(min_size),
                               upscale_small=bool(upscale), dedupe=bool(dedupe), copy_captions=bool(copy_captions),
                               kohya_folders=bool(kohya_folders),
                               **({"repeats": int(repeats)} if int(repeats or 1) != 1 else {}))
        Project.from_ctx(ctx, params.project).concept_dir(params.concept)  # name errors now, not in the job
        job_id = ctx.jobs.submit("lora.prepare", params)
    except (StudioError, ValidationError) as exc:
        return "", _err(ctx, exc)
    return job_id, ctx.t("lora_data.ui.started", job=job_id)


def caption_settings(values: dict) -> dict:
    """Form values of CAPTION_EXTRA -> CaptionSettings fields: `caption_kind` is `kind`, and a
    field the browser sent no value for (None, e.g. in a hidden group) keeps its default."""
    return {("kind" if k == "caption_kind" else k): v for k, v in values.items() if v is not None}


def start_caption(ctx, project, concept, model, task, trigger, overwrite, batch_size, **extra) -> tuple[str, str]:
    """Submit `lora.caption`; `extra`: the other CaptionParams fields (`caption_kind` = `kind`)."""
    try:
        fields = caption_settings(extra)
        params = CaptionParams(project=project or "", concept=concept or "", model=model or "", task=task,
                               trigger_word=trigger or "", overwrite=bool(overwrite), batch_size=int(batch_size),
                               **fields)
        project = Project.from_ctx(ctx, params.project)
        if not project.data_dir.is_dir():
            raise StudioError("lora_data.project_missing", project=project.name, path=str(project.dir))
        job_id = ctx.jobs.submit("lora.caption", params)
    except (StudioError, ValidationError) as exc:
        return "", _err(ctx, exc)
    return job_id, ctx.t("lora_data.ui.started", job=job_id)


def model_choices(ctx, kind: str) -> tuple[list[str], str]:
    """(models listed for a captioner kind, the value to show): local folders, then the default."""
    folder = ctx.path("CAPTIONERS_DIR")
    defaults = caption_defaults(ctx)
    if kind == "combined":
        kinds = ("florence", "vlm")
    else:
        kinds = (kind if kind in DEFAULT_MODELS else "florence",)
    local = [m for k in kinds for m in list_local_captioners(folder, k)]
    extra = [defaults[k] for k in kinds if defaults.get(k) and defaults[k] not in local]
    return local + extra, (local[0] if local else (extra[0] if extra else ""))


def on_kind(ctx, kind: str):
    """Kind changed: the model list and which settings are visible."""
    choices, value = model_choices(ctx, kind)
    tag_choices, tag_value = model_choices(ctx, "wd14")
    uses_tags, uses_text = kind in ("wd14", "combined"), kind != "wd14"
    return (gr.update(choices=choices, value=value, visible=uses_text or kind == "wd14"),
            gr.update(choices=tag_choices, value=tag_value, visible=kind == "combined"),
            gr.update(visible=kind == "combined"), gr.update(visible=kind == "florence"),
            gr.update(visible=kind == "vlm"), gr.update(visible=uses_tags))


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


# -- layout ----------------------------------------------------------------------------------
def caption_model_choices(ctx, kinds: tuple[str, ...] = ("florence", "vlm")) -> list[str]:
    """The captioners of these kinds found in CAPTIONERS_DIR, then the defaults (rescanned on Refresh)."""
    return list(dict.fromkeys(m for k in kinds for m in model_choices(ctx, k)[0]))


def build_data_ui(ctx, panel=None) -> dict[str, Any]:
    """Build the section inside the current Blocks context; returns components by name.

    `panel`: a `core.ui.job_panel.JobPanel` to follow the jobs started here (the trainer's,
    so one panel shows prepare, caption and training); when None the section makes its own.
    """
    t = _i18n(ctx)
    root = ctx.path("LORA_PROJECTS_DIR")
    c: dict[str, Any] = {}
    # the project row stands outside the Group: inside one, the Group's grey shows around a small button
    with gr.Row():
        c["project"] = gr.Dropdown(choices=list_projects(root), value=None, allow_custom_value=True,
                                   label=t("lora_data.ui.project"), info=t("lora_data.ui.project_info"))
        c["concept"] = gr.Textbox(value="default", label=t("lora_data.ui.concept"))
        c["refresh"] = gr.Button(t("lora_data.ui.refresh"), size="sm", scale=0, min_width=90)
    with gr.Group():
        with gr.Accordion(t("lora_data.ui.import"), open=True):
            c["source_dir"] = gr.Textbox(label=t("lora_data.ui.source_dir"),
                                         placeholder=ctx.t("core.ui.placeholder_folder"))
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
                c["repeats"] = gr.Number(value=1, minimum=1, maximum=10_000, precision=0,
                                         label=t("lora_data.ui.repeats"))
                c["kohya_folders"] = gr.Checkbox(value=False, label=t("lora_data.ui.kohya_folders"),
                                                 info=t("lora_data.ui.kohya_folders_info"))
            c["prepare_btn"] = gr.Button(t("lora_data.ui.prepare"), variant="secondary")
        with gr.Accordion(t("lora_data.ui.captions"), open=True):
            _caption_form(ctx, t, c)
        c["status"] = gr.Markdown()
        if panel is None:
            from core.ui.job_panel import JobPanel

            panel = JobPanel(ctx, kind_prefix="lora.", metrics=())
        c["panel"], c["job_id"] = panel, panel.job_id
        build_editor(ctx, t, c)
    _wire(ctx, c)
    return c


def _caption_form(ctx, t, c: dict[str, Any]) -> None:
    kinds = [(t("lora_data.ui.kind_florence"), "florence"), (t("lora_data.ui.kind_wd14"), "wd14"),
             (t("lora_data.ui.kind_vlm"), "vlm"), (t("lora_data.ui.kind_combined"), "combined")]
    c["caption_kind"] = gr.Radio(choices=kinds, value="florence", label=t("lora_data.ui.caption_kind"))
    choices, value = model_choices(ctx, "florence")
    tag_choices, tag_value = model_choices(ctx, "wd14")
    with gr.Row():
        c["caption_model"] = gr.Dropdown(choices=choices, value=value, allow_custom_value=True,
                                         label=t("lora_data.ui.caption_model"))
        c["tagger_model"] = gr.Dropdown(choices=tag_choices, value=tag_value, allow_custom_value=True,
                                        label=t("lora_data.ui.tagger_model"), visible=False)
        c["sentence_kind"] = gr.Radio(choices=[(t("lora_data.ui.kind_florence"), "florence"),
                                               (t("lora_data.ui.kind_vlm"), "vlm")], value="florence",
                                      label=t("lora_data.ui.sentence_kind"), visible=False)
    with gr.Group(visible=True) as c["florence_group"]:
        labels = ("lora_data.ui.task_caption", "lora_data.ui.task_detailed", "lora_data.ui.task_more_detailed")
        c["caption_task"] = gr.Dropdown(choices=[(t(k), task) for k, task in zip(labels, TASKS)],
                                        value="<DETAILED_CAPTION>", label=t("lora_data.ui.caption_task"))
    with gr.Group(visible=False) as c["vlm_group"]:
        c["prompt"] = gr.Textbox(value=CaptionParams.model_fields["prompt"].default, lines=2,
                                 label=t("lora_data.ui.prompt"))
        c["max_new_tokens"] = gr.Slider(8, 1024, value=256, step=8, label=t("lora_data.ui.max_new_tokens"))
    with gr.Group(visible=False) as c["tagger_group"]:
        with gr.Row():
            c["general_threshold"] = gr.Slider(0.0, 1.0, value=0.35, step=0.01,
                                               label=t("lora_data.ui.general_threshold"))
            c["character_threshold"] = gr.Slider(0.0, 1.0, value=0.85, step=0.01,
                                                 label=t("lora_data.ui.character_threshold"))
        with gr.Row():
            c["include_rating"] = gr.Checkbox(value=False, label=t("lora_data.ui.include_rating"))
            c["tag_order"] = gr.Radio(choices=[(t("lora_data.ui.order_booru"), "booru"),
                                               (t("lora_data.ui.order_confidence"), "confidence")],
                                      value="booru", label=t("lora_data.ui.tag_order"))
            c["blacklist"] = gr.Textbox(label=t("lora_data.ui.blacklist"), placeholder="simple background, ...")
    with gr.Row():
        c["trigger_word"] = gr.Textbox(label=t("lora_data.ui.trigger_word"), placeholder="sks")
        c["overwrite"] = gr.Checkbox(value=False, label=t("lora_data.ui.overwrite"))
        c["batch_size"] = gr.Slider(1, 32, value=4, step=1, label=t("lora_data.ui.batch_size"))
    c["caption_btn"] = gr.Button(t("lora_data.ui.caption"), variant="secondary")


def _wire(ctx, c: dict[str, Any]) -> None:
    c["refresh"].click(lambda: gr.update(choices=list_projects(ctx.path("LORA_PROJECTS_DIR"))), None, c["project"])
    c["prepare_btn"].click(lambda *a: start_prepare(ctx, *a),
                           [c[k] for k in ("project", "concept", "source_dir", "files", "resolution", "mode",
                                           "min_size", "upscale_small", "dedupe", "copy_captions", "repeats",
                                           "kohya_folders")],
                           [c["job_id"], c["status"]])
    base = ("project", "concept", "caption_model", "caption_task", "trigger_word", "overwrite", "batch_size")
    c["caption_btn"].click(lambda *a: start_caption(ctx, *a[:len(base)], **dict(zip(CAPTION_EXTRA, a[len(base):]))),
                           [c[k] for k in base + CAPTION_EXTRA], [c["job_id"], c["status"]])
    c["caption_kind"].change(lambda k: on_kind(ctx, k), c["caption_kind"],
                             [c["caption_model"], c["tagger_model"], c["sentence_kind"], c["florence_group"],
                              c["vlm_group"], c["tagger_group"]])
    # The summary appears when the panel reports the job final (no polling of our own).
    c["panel"].finished.change(lambda _f, j: job_status(ctx, j) if j else gr.skip(),
                               [c["panel"].finished, c["job_id"]], c["status"], show_progress="hidden")
    wire_editor(ctx, c)
