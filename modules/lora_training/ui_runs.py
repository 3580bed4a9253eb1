"""The LoRA tab's runs and configs: Resume replays a past run (its own saved parameters, as
the Jobs tab does), "load settings of run X" fills the form from a past run, and a training
config is saved / loaded as a JSON file (validated by `TrainParams`, so a misspelt or unknown
key is one clear message).

The form is the ordered list `FORM_NAMES` (project, trigger word, resolution, then the
settings of `ui.FIELDS`); loaded values the form has no widget for are kept in a `gr.State`
and sent with the next run, so nothing of a loaded config is silently dropped.
Handlers are plain functions taking `ctx` first, so tests call them without a browser.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic import ValidationError

from core.errors import StudioError, user_message
from core.i18n import request_translator

TRAIN_KINDS = ("lora.train", "lora.prepare_and_train")
RESUMABLE = ("stopped", "failed", "interrupted")
MAX_CONFIG_BYTES = 1 << 20


def form_names(fields: list[str]) -> list[str]:
    return ["project", "trigger_word", "resolution", *fields]


def train_params_of(row: dict) -> dict:
    """The TrainParams dict of a lora.train / lora.prepare_and_train job row."""
    p = row.get("params") or {}
    return dict(p.get("train") or {}) if row.get("kind") == "lora.prepare_and_train" else dict(p)


def run_choices(ctx, t=None) -> list[tuple[str, str]]:
    """(label, job id) of the past training runs, newest first."""
    t = t or ctx.t
    out = []
    for row in ctx.store.list_jobs(kind_prefix="lora.", limit=200):
        if row["kind"] not in TRAIN_KINDS:
            continue
        p = train_params_of(row)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created"]))
        steps = f"{row.get('progress_done') or 0:.0f}/{row.get('progress_total') or 0:.0f}"
        label = t("lora.runs.choice", name=p.get("output_name") or p.get("project") or "?",
                  status=t(f"jobs.status.{row['status']}"), steps=steps, rank=p.get("rank", "?"), when=when)
        out.append((label, row["id"]))
    return out


def pick_run(ctx, chosen: str | None, followed: str | None, project: str | None) -> str:
    """The run Resume continues: the one picked, else the one the panel follows, else the
    newest resumable run of the form's project."""
    for job_id in (chosen, followed):
        row = ctx.store.get_job(job_id) if job_id else None
        if row is not None and row["kind"] in TRAIN_KINDS:
            return job_id
    for row in ctx.store.list_jobs(kind_prefix="lora.", limit=200):
        if row["kind"] in TRAIN_KINDS and row["status"] in RESUMABLE and \
                (not project or train_params_of(row).get("project") == project):
            return row["id"]
    raise StudioError("lora.runs.none_to_resume", project=project or "")


def resume_run(ctx, chosen: str | None, followed: str | None, project: str | None) -> str:
    """Start a job continuing the run with its own saved parameters (parent_id joins the curves)."""
    job_id = pick_run(ctx, chosen, followed, project)
    return ctx.jobs.resume(job_id)


def settings_of_run(ctx, job_id: str | None) -> dict:
    row = ctx.store.get_job(job_id) if job_id else None
    if row is None or row["kind"] not in TRAIN_KINDS:
        raise StudioError("lora.runs.pick_one")
    return {k: v for k, v in train_params_of(row).items() if k != "resume_from"}


def form_values(params: dict, fields: list[str], default_base: str = "") -> tuple[list[Any], dict]:
    """(values in form order, the fields the form has no widget for) of a TrainParams dict.

    A run that left the base empty trained on the configured default: the form shows that
    default (`default_base`) rather than an empty base field that looks like a missing one."""
    from modules.lora_training.train.config import TrainParams

    full = TrainParams.model_validate(params).model_dump(mode="json")
    if not full["base_model"]:
        full["base_model"] = default_base
    names = form_names(fields)
    values = []
    for name in names:
        v = full[name]
        values.append("\n".join(v) if name == "sample_prompts" else v)
    defaults = TrainParams().model_dump(mode="json")
    extra = {k: v for k, v in full.items() if k not in names and k != "resume_from" and v != defaults.get(k)}
    return values, extra


def config_json(params: dict) -> str:
    """The config file's text: every TrainParams field (defaults included), no resume."""
    from modules.lora_training.train.config import TrainParams

    full = TrainParams.model_validate(params).model_dump(mode="json")
    full.pop("resume_from", None)
    return json.dumps(full, indent=2, ensure_ascii=False)


def write_config(params: dict) -> str:
    """A downloadable copy of the config, named after the run (a temp file the browser fetches)."""
    text = config_json(params)
    name = params.get("output_name") or params.get("project") or "lora"  # SafeName, checked by TrainParams
    folder = Path(tempfile.mkdtemp(prefix="cb_lora_config_"))
    out = folder / f"{name}.train.json"
    tmp = out.with_suffix(".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return str(out)


def read_config(path: str | Path) -> dict:
    """A config file -> validated TrainParams dict; a clear StudioError / ValidationError else."""
    from modules.lora_training.train.config import TrainParams

    p = Path(path)
    try:
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise StudioError("lora.config.too_big", name=p.name)
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StudioError("lora.config.unreadable", name=p.name, error=type(exc).__name__) from exc
    if not isinstance(data, dict):
        raise StudioError("lora.config.not_object", name=p.name)
    data.pop("resume_from", None)  # a config is settings; what to resume is chosen in the tab
    return TrainParams.model_validate(data).model_dump(mode="json")


def build_runs_ui(ctx, form: list, fields: list[str], panel, collect_params, resume_btn) -> gr.State:
    """The runs/config row under the form. `collect_params(*form_values, extra)` -> params.
    Returns the State holding loaded fields the form does not show (send it with every run)."""
    i18n = ctx.i18n
    extra = gr.State({})
    with gr.Accordion(i18n("lora.runs.title"), open=False):
        with gr.Row():
            run = gr.Dropdown(run_choices(ctx), value=None, label=i18n("lora.runs.run"), scale=4,
                              info=i18n("lora.runs.run_info"))
            load_run = gr.Button(i18n("lora.runs.load_settings"), size="sm", scale=1, min_width=120)
            refresh = gr.Button(i18n("lora.ui.refresh"), size="sm", scale=0, min_width=80)
        with gr.Row():
            save_cfg = gr.Button(i18n("lora.runs.save_config"), size="sm", min_width=120)
            load_cfg = gr.UploadButton(i18n("lora.runs.load_config"), file_types=[".json"], size="sm",
                                       min_width=120)
        cfg_file = gr.File(label=i18n("lora.runs.config_file"), interactive=False, visible=False,
                           elem_classes=["cb-lora-config-file"])
        note = gr.Markdown(elem_classes=["cb-lora-runs-note"])

    def fail(exc: Exception, request) -> gr.Error:
        return gr.Error(user_message(exc, request_translator(ctx, request)))

    def fill(params: dict, request: gr.Request = None):
        values, kept = form_values(params, fields, str(ctx.config.get("DEFAULT_SDXL_MODEL_FOR_LORA", "")))
        t = request_translator(ctx, request)
        msg = t("lora.runs.loaded", name=params.get("output_name") or params.get("project") or "?",
                kept=", ".join(sorted(kept)) or "—")
        return (*values, kept, msg)

    def on_load_run(job_id, request: gr.Request = None):
        try:
            return fill(settings_of_run(ctx, job_id), request)
        except (StudioError, ValidationError) as exc:
            raise fail(exc, request) from exc

    def on_load_cfg(file, request: gr.Request = None):
        path = file if isinstance(file, str) else getattr(file, "name", str(file))
        try:
            return fill(read_config(path), request)
        except (StudioError, ValidationError) as exc:
            raise fail(exc, request) from exc

    def on_save_cfg(*v, request: gr.Request = None):
        try:
            params = collect_params(*v)
            return gr.update(value=write_config(params), visible=True)
        except (StudioError, ValidationError) as exc:
            raise fail(exc, request) from exc

    def on_resume(chosen, followed, project, request: gr.Request = None):
        try:
            return resume_run(ctx, chosen, followed, (project or "").strip())
        except (StudioError, ValidationError) as exc:
            raise fail(exc, request) from exc

    def choices(request: gr.Request = None):
        return gr.update(choices=run_choices(ctx, request_translator(ctx, request)))

    load_run.click(on_load_run, inputs=run, outputs=[*form, extra, note])
    load_cfg.upload(on_load_cfg, inputs=load_cfg, outputs=[*form, extra, note])
    save_cfg.click(on_save_cfg, inputs=[*form, extra], outputs=cfg_file)
    resume_btn.click(on_resume, inputs=[run, panel.job_id, form[0]], outputs=panel.job_id)
    refresh.click(choices, outputs=run)
    # the list follows new runs and their ends (also after a page reload: the panel re-attaches)
    panel.job_id.change(choices, outputs=run, show_progress="hidden")
    panel.finished.change(choices, outputs=run, show_progress="hidden")
    return extra
