"""The LoRA training tab: data section (from `modules.lora_training.data`), training
settings with a VRAM preset and a live estimate, Prepare & Train / Train / Resume, the shared
JobPanel (log, loss chart raw + smoothed, validation loss, samples, Stop) and the LoRAs
already in LORAS_DIR.

Handlers are module functions taking `ctx` first, so tests call them without a browser.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic import ValidationError

from core.errors import StudioError, user_message
from modules.lora_training import ui_recipe
from modules.lora_training.ui_recipe import RECIPE_FIELDS

CKPT_COLS = ("file", "kind", "trainable", "v_pred", "ztsnr", "vae", "ema", "dtype", "gb")
# TrainParams fields of the settings form, in the order `_settings` returns their widgets
FIELDS = ["output_name", "base_model", "vram_preset", "epochs", "max_steps", "batch_size", "grad_accum", "lr_unet",
          "rank", "alpha", "dropout", "target", "network_type", "conv_rank", "conv_alpha", "lokr_factor",
          "train_text_encoder", "lr_te1", "lr_te2", "optimizer",
          "lr_scheduler", "warmup_steps", "precision", "gradient_checkpointing", "cache_latents", "min_snr_gamma",
          "noise_offset", "seed", "sample_prompts", "sample_every_steps", "validation_images",
          "validation_every_steps", "save_every_steps", "save_every_minutes", "save_every_epochs", "keep_last",
          "export_diffusers", *RECIPE_FIELDS]
FIELDS += ["vae", "prediction_type", "zero_terminal_snr", "init_lora"]  # base checkpoint options


def list_checkpoints(ctx) -> list[list[Any]]:
    """Rows (name, what it is, trainable, v-pred, zero SNR, VAE inside, EMA, dtype, GB) of
    CHECKPOINTS_DIR, from each file's header only (fast even for 7 GB files)."""
    from core.sdxl.detect import scan_folder

    yes = lambda b: "✓" if b else ""  # noqa: E731
    return [[Path(i.path).name, ctx.t(f"lora.model_kind.{i.kind}"), yes(i.trainable), yes(i.v_pred), yes(i.ztsnr),
             yes(i.has_vae), yes(i.has_ema), i.dtype, i.size_gb] for i in scan_folder(ctx.path("CHECKPOINTS_DIR"))]


def base_choices(ctx) -> list[str]:
    """The default base plus every trainable SDXL checkpoint (file or diffusers folder) of CHECKPOINTS_DIR."""
    from core.sdxl.detect import scan_folder

    found = [str(ctx.config.get("DEFAULT_SDXL_MODEL_FOR_LORA", ""))]
    found += [i.path for i in scan_folder(ctx.path("CHECKPOINTS_DIR")) if i.trainable]
    return [c for c in dict.fromkeys(found) if c]


def pick_checkpoint(ctx, rows: Any, evt: Any) -> str:
    """The base_model value of a clicked row of the checkpoints list (its path)."""
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    values = rows.values.tolist() if hasattr(rows, "values") else rows
    return str(ctx.path("CHECKPOINTS_DIR") / values[row][0])


def collect(project: str, trigger: str, resolution: Any, values: list[Any], extra: dict | None = None) -> dict:
    """Form values -> TrainParams dict (only fields the user can see; preset fills the rest).
    `extra`: fields of a loaded config / run the form has no widget for (ui_runs)."""
    from modules.lora_training.train.config import TrainParams

    params: dict[str, Any] = {**(extra or {}), "project": (project or "").strip(), "trigger_word": trigger or "",
                              "resolution": int(resolution or 1024)}
    defaults = TrainParams()
    for name, value in zip(FIELDS, values):
        if name in ("vae", "init_lora"):  # an empty dropdown sends None
            value = (value or "").strip()
        elif name == "sample_prompts":
            value = [line.strip() for line in (value or "").splitlines() if line.strip()]
        elif name in ("epochs", "max_steps", "batch_size", "grad_accum", "rank", "warmup_steps", "seed",
                      "conv_rank", "lokr_factor",
                      "sample_every_steps", "validation_images", "validation_every_steps", "save_every_steps",
                      "save_every_epochs", "keep_last"):
            value = int(value or 0)
        elif name == "save_every_minutes":
            value = float(value or 0)
        elif name in RECIPE_FIELDS:
            value = ui_recipe.convert(name, value)
        # a preset only overrides what the user did not set: send values that differ from defaults
        if value != getattr(defaults, name) or name in ("output_name", "base_model"):
            params[name] = value
    return params


def last_state_markdown(ctx, project: str) -> str:
    """When the newest resumable state of `project` was saved (what a crash now would keep)."""
    import json
    import time

    from core.paths import PathRefused, check_name

    project = (project or "").strip()
    try:
        valid = bool(project) and check_name(project, "project") == project  # the one name check
    except PathRefused:
        valid = False
    root = ctx.path("LORA_PROJECTS_DIR") / project / "checkpoints"
    best = None
    if valid and root.is_dir():
        for meta in root.rglob("meta.json"):  # step_*/ folders, flat or per run
            if meta.parent.name.startswith("."):
                continue  # a state being written
            try:
                m = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if best is None or float(m.get("saved_at", 0)) > float(best.get("saved_at", 0)):
                best = m
    if not project:
        return ""  # no project chosen yet: nothing to say about its states
    if best is None:
        return ctx.t("lora.ui.no_state", project=project)
    at = float(best.get("saved_at", 0))
    return ctx.t("lora.ui.last_state", project=project, step=best.get("step", "?"),
                 when=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)),
                 ago=max(0, round((time.time() - at) / 60)))


def estimate_markdown(ctx, params: dict) -> str:
    from modules.lora_training.train.config import TrainParams
    from modules.lora_training.train.estimate import plan

    try:
        est = plan(TrainParams.model_validate(params), ctx)
    except (StudioError, ValidationError) as exc:
        return "⚠️ " + _err(ctx, exc)
    t = ctx.t("lora.ui.time_unknown") if not est["seconds"] else f"{est['seconds'] / 60:.1f} min"
    return ctx.t("lora.ui.estimate_md", steps=est["steps"], images=est["images"], vram=est["vram_gib"],
                 lora_params=f"{est['lora_params']:,}", time=t)


def _err(ctx, exc: Exception) -> str:
    return user_message(exc, ctx.t)


def submit(ctx, kind: str, params: dict) -> str:
    try:
        return ctx.jobs.submit(kind, params)
    except (StudioError, ValidationError) as exc:
        raise gr.Error(_err(ctx, exc)) from exc


def submit_or_ask(ctx, kind: str, params: dict) -> tuple:
    """Submit; when a LoRA of that name exists, ask first instead of failing.

    Returns (job id, confirm box update, its message, the pending submission or None)."""
    try:
        return ctx.jobs.submit(kind, params), gr.update(visible=False), "", None
    except StudioError as exc:
        if exc.key != "lora.output_exists":
            raise gr.Error(_err(ctx, exc)) from exc
        return gr.update(), gr.update(visible=True), "⚠️ " + _err(ctx, exc), {"kind": kind, "params": params}
    except ValidationError as exc:
        raise gr.Error(_err(ctx, exc)) from exc


def confirm_overwrite(ctx, pending: dict | None) -> tuple:
    """The user confirmed: the same submission with `overwrite` set."""
    if not pending:
        return gr.update(), gr.update(visible=False), "", None
    params = dict(pending["params"])
    if pending["kind"] == "lora.prepare_and_train":
        params["train"] = {**params.get("train", {}), "overwrite": True}
    else:
        params["overwrite"] = True
    return submit(ctx, pending["kind"], params), gr.update(visible=False), "", None


def list_loras(ctx) -> list[list[Any]]:
    """Rows (name, MiB, modified, steps, rank, trigger, finished) of LORAS_DIR's .safetensors."""
    from safetensors import safe_open

    rows = []
    for p in sorted(ctx.path("LORAS_DIR").glob("*.safetensors"), key=lambda x: -x.stat().st_mtime):
        try:
            with safe_open(str(p), "pt") as f:
                meta = f.metadata() or {}
        except Exception:  # noqa: BLE001 - a foreign or damaged file is still listed
            meta = {}
        rows.append([p.name, round(p.stat().st_size / 2**20, 2),
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(p.stat().st_mtime)),
                     meta.get("ss_steps", ""), meta.get("ss_network_dim", ""), meta.get("ss_training_comment", ""),
                     meta.get("ss_training_finished", "")])
    return rows


def _settings(ctx, i18n, tools: dict | None = None) -> list:
    from modules.lora_training.train.config import TrainParams

    d = TrainParams()
    w: dict[str, Any] = {}
    tools = {} if tools is None else tools
    with gr.Row():
        # widths set so neither the name's placeholder nor the base path is squeezed (issue 18.8)
        w["output_name"] = gr.Textbox(label=i18n("lora.ui.output_name"), placeholder=i18n("lora.ui.output_name_ph"),
                                      scale=2, min_width=180)
        w["base_model"] = gr.Dropdown(base_choices(ctx), value=base_choices(ctx)[0] if base_choices(ctx) else None,
                                      allow_custom_value=True, label=i18n("lora.ui.base_model"), scale=4, min_width=240)
        # rescans every model folder of the tab (bases, LoRA files, captioners), like a page load
        tools["refresh_models"] = gr.Button(i18n("lora.ui.refresh"), size="sm", scale=0, min_width=90,
                                            elem_id="lora-refresh-models")
    with gr.Accordion(i18n("lora.ui.checkpoint"), open=False):
        with gr.Row():
            w["vae"] = gr.Textbox(label=i18n("lora.ui.vae"), placeholder=i18n("lora.ui.vae_ph"))
            w["init_lora"] = gr.Dropdown([p.name for p in sorted(ctx.path("LORAS_DIR").glob("*.safetensors"))],
                                         value=None, allow_custom_value=True, label=i18n("lora.ui.init_lora"),
                                         info=i18n("lora.ui.init_lora_info"))
        with gr.Row():
            w["prediction_type"] = gr.Dropdown(["auto", "epsilon", "v_prediction"], value=d.prediction_type,
                                               label=i18n("lora.ui.prediction_type"))
            w["zero_terminal_snr"] = gr.Dropdown(["auto", "on", "off"], value=d.zero_terminal_snr,
                                                 label=i18n("lora.ui.zero_terminal_snr"))
        # plain strings: a Dataframe's headers end up in Gradio's API description, which must be JSON
        ckpts = gr.Dataframe(headers=[ctx.t(f"lora.ui.ckpt_col.{c}") for c in CKPT_COLS], value=list_checkpoints(ctx),
                             interactive=False, elem_classes=["cb-lora-checkpoints"])
        refresh = gr.Button(i18n("lora.ui.refresh"), size="sm")
        refresh.click(lambda: (list_checkpoints(ctx), gr.update(choices=base_choices(ctx))),
                      outputs=[ckpts, w["base_model"]])

        def on_select(rows, evt: gr.SelectData):  # gradio passes the click only to an annotated parameter
            return pick_checkpoint(ctx, rows, evt)

        ckpts.select(on_select, inputs=ckpts, outputs=w["base_model"])
    w["vram_preset"] = gr.Radio(["none", "8", "12", "16", "24"], value="none", label=i18n("lora.ui.vram_preset"),
                                info=i18n("lora.ui.vram_preset_info"))
    with gr.Row():
        w["epochs"] = gr.Number(d.epochs, label=i18n("lora.ui.epochs"), precision=0, minimum=1)
        w["max_steps"] = gr.Number(d.max_steps, label=i18n("lora.ui.max_steps"), precision=0, minimum=0)
        w["batch_size"] = gr.Number(d.batch_size, label=i18n("lora.ui.batch_size"), precision=0, minimum=1)
        w["grad_accum"] = gr.Number(d.grad_accum, label=i18n("lora.ui.grad_accum"), precision=0, minimum=1)
    with gr.Row():
        w["lr_unet"] = gr.Number(d.lr_unet, label=i18n("lora.ui.lr_unet"), scale=2)
        # a slider's number box takes ~130 px of its label's line: wider sliders keep the label on one line
        w["rank"] = gr.Slider(1, 256, d.rank, step=1, label=i18n("lora.ui.rank"), scale=3, min_width=220)
        w["alpha"] = gr.Slider(1, 256, d.alpha, step=1, label=i18n("lora.ui.alpha"), scale=3, min_width=220)
    with gr.Accordion(i18n("lora.ui.advanced"), open=False):
        with gr.Row():
            w["dropout"] = gr.Slider(0, 0.5, d.dropout, step=0.01, label=i18n("lora.ui.dropout"))
            w["target"] = gr.Radio(["attn", "attn_mlp", "full"], value=d.target, label=i18n("lora.ui.target"))
        with gr.Row():  # network type (train/networks.py)
            w["network_type"] = gr.Dropdown(["lora", "locon", "loha", "lokr", "dora"], value=d.network_type,
                                            label=i18n("lora.ui.network_type"), info=i18n("lora.ui.network_type_info"))
            w["conv_rank"] = gr.Number(d.conv_rank, label=i18n("lora.ui.conv_rank"), precision=0, minimum=0)
            w["conv_alpha"] = gr.Number(d.conv_alpha, label=i18n("lora.ui.conv_alpha"), minimum=0)
            w["lokr_factor"] = gr.Number(d.lokr_factor, label=i18n("lora.ui.lokr_factor"), precision=0, minimum=-1)
        with gr.Row():
            w["train_text_encoder"] = gr.Checkbox(d.train_text_encoder, label=i18n("lora.ui.train_te"))
            w["lr_te1"] = gr.Number(d.lr_te1, label=i18n("lora.ui.lr_te1"))
            w["lr_te2"] = gr.Number(d.lr_te2, label=i18n("lora.ui.lr_te2"))
        with gr.Row():
            w["optimizer"] = gr.Dropdown(["adamw", "adamw8bit", "lion", "prodigy"], value=d.optimizer,
                                         label=i18n("lora.ui.optimizer"))
            w["lr_scheduler"] = gr.Dropdown(["constant", "constant_with_warmup", "linear", "cosine",
                                             "cosine_with_restarts", "polynomial"], value=d.lr_scheduler,
                                            label=i18n("lora.ui.scheduler"))
            w["warmup_steps"] = gr.Number(d.warmup_steps, label=i18n("lora.ui.warmup"), precision=0, minimum=0)
            w["precision"] = gr.Dropdown(["auto", "fp32", "fp16", "bf16"], value=d.precision,
                                         label=i18n("lora.ui.precision"))
        with gr.Row():
            w["gradient_checkpointing"] = gr.Checkbox(d.gradient_checkpointing, label=i18n("lora.ui.grad_ckpt"))
            w["cache_latents"] = gr.Checkbox(d.cache_latents, label=i18n("lora.ui.cache"))
            w["min_snr_gamma"] = gr.Number(d.min_snr_gamma, label=i18n("lora.ui.min_snr"), minimum=0)
            w["noise_offset"] = gr.Number(d.noise_offset, label=i18n("lora.ui.noise_offset"), minimum=0, maximum=1)
            w["seed"] = gr.Number(d.seed, label=i18n("lora.ui.seed"), precision=0, minimum=0)
        ui_recipe.build(w, d, i18n)
    with gr.Accordion(i18n("lora.ui.live"), open=False):
        w["sample_prompts"] = gr.Textbox(lines=3, label=i18n("lora.ui.sample_prompts"),
                                         placeholder=i18n("lora.ui.sample_prompts_ph"))
        with gr.Row():
            w["sample_every_steps"] = gr.Number(0, label=i18n("lora.ui.sample_every"), precision=0, minimum=0)
            w["validation_images"] = gr.Number(0, label=i18n("lora.ui.val_images"), precision=0, minimum=0)
            w["validation_every_steps"] = gr.Number(0, label=i18n("lora.ui.val_every"), precision=0, minimum=0)
        with gr.Row():
            w["save_every_steps"] = gr.Number(0, label=i18n("lora.ui.save_every_steps"), precision=0, minimum=0)
            w["save_every_minutes"] = gr.Number(d.save_every_minutes, label=i18n("lora.ui.save_every_minutes"),
                                                minimum=0)
            w["save_every_epochs"] = gr.Number(d.save_every_epochs, label=i18n("lora.ui.save_every_epochs"),
                                               precision=0, minimum=0)
            w["keep_last"] = gr.Number(d.keep_last, label=i18n("lora.ui.keep_last"), precision=0, minimum=1)
            w["export_diffusers"] = gr.Checkbox(False, label=i18n("lora.ui.export_diffusers"))
    return [w[name] for name in FIELDS]


def _follow_model_folders(ctx, buttons: list, settings: list, data: dict, loras) -> None:
    """Both Refresh buttons (and a page load) rescan every model list of the tab."""
    from core.ui.model_lists import follow_folders

    lists: list[tuple] = [(settings[FIELDS.index("base_model")], lambda: base_choices(ctx))]
    if "init_lora" in FIELDS:  # the LoRA files a run can start from
        lists.append((settings[FIELDS.index("init_lora")],
                      lambda: [p.name for p in sorted(ctx.path("LORAS_DIR").glob("*.safetensors"))], True))
    if data.get("caption_model") is not None:
        from modules.lora_training.data.ui_data import caption_model_choices

        lists.append((data["caption_model"], lambda: caption_model_choices(ctx)))
        if data.get("tagger_model") is not None:
            lists.append((data["tagger_model"], lambda: caption_model_choices(ctx, ("wd14",))))
    for i, button in enumerate(buttons):
        # the page-load rescan once is enough: only the first wiring registers it
        follow_folders(button, lists, extra=[(loras, lambda: list_loras(ctx))], on_load=i == 0)


def build_ui(ctx) -> None:
    from core.ui.job_panel import JobPanel
    from modules.lora_training.data import build_data_ui
    from modules.lora_training.ui_runs import build_runs_ui

    i18n = ctx.i18n
    with gr.Row():
        left = gr.Column(scale=3)
        right = gr.Column(scale=2)
    with right:
        panel = JobPanel(ctx, kind_prefix="lora.", metrics=("loss", "val_loss"))
    with left:
        data = build_data_ui(ctx, panel)
        with gr.Accordion(i18n("lora.ui.training"), open=True):
            project = data.get("project") or gr.Textbox("my_lora", label=i18n("lora.ui.project"))
            trigger = data.get("trigger_word") or gr.Textbox(label=i18n("lora.ui.trigger"))
            resolution = data.get("resolution") or gr.Number(1024, label=i18n("lora.ui.resolution"), precision=0)
            tools: dict[str, Any] = {}
            settings = _settings(ctx, i18n, tools)
            estimate = gr.Markdown(elem_classes=["cb-lora-estimate"])
            with gr.Row():
                # min widths: a long (French) label wraps the row, not the button's text
                est_btn = gr.Button(i18n("lora.ui.estimate"), size="sm", scale=0, min_width=110)
                prep_btn = gr.Button(i18n("lora.ui.prepare_and_train"), variant="primary", visible=bool(data),
                                     size="md", min_width=200)
                train_btn = gr.Button(i18n("lora.ui.train"), variant="primary" if not data else "secondary",
                                      size="md", min_width=140)
                resume_btn = gr.Button(i18n("lora.ui.resume"), size="md", min_width=170)
            first_project = getattr(project, "value", "") or ""
            last_state = gr.Markdown(lambda: last_state_markdown(ctx, first_project),
                                     elem_classes=["cb-lora-last-state"])
            with gr.Row(visible=False) as confirm_box:  # "a LoRA of that name exists: replace it?"
                confirm_msg = gr.Markdown()
                confirm_btn = gr.Button(i18n("lora.ui.overwrite_confirm"), variant="stop", size="sm")
                cancel_btn = gr.Button(i18n("lora.ui.overwrite_cancel"), size="sm")
            pending = gr.State(None)
    with gr.Accordion(i18n("lora.ui.loras"), open=False):
        cols = ("file", "size", "modified", "steps", "rank", "trigger", "finished")
        loras = gr.Dataframe(headers=[ctx.t(f"lora.ui.lora_col.{c}") for c in cols], value=list_loras(ctx),
                             interactive=False)
        loras_refresh = gr.Button(i18n("lora.ui.refresh"), size="sm")

    form = [project, trigger, resolution, *settings]
    _follow_model_folders(ctx, [tools["refresh_models"], loras_refresh], settings, data, loras)

    def params_of(*v):  # form values + the State of fields it does not show
        return collect(v[0], v[1], v[2], list(v[3:-1]), v[-1])

    with left:  # Resume replays a past run's own parameters; configs saved / loaded as JSON
        extra_state = build_runs_ui(ctx, form, FIELDS, panel, params_of, resume_btn)
    est_btn.click(lambda *v: estimate_markdown(ctx, params_of(*v)), inputs=[*form, extra_state], outputs=estimate)
    asked = [panel.job_id, confirm_box, confirm_msg, pending]
    train_btn.click(lambda *v: submit_or_ask(ctx, "lora.train", params_of(*v)), inputs=[*form, extra_state],
                    outputs=asked)
    confirm_btn.click(lambda p: confirm_overwrite(ctx, p), inputs=pending, outputs=asked)
    cancel_btn.click(lambda: (gr.update(), gr.update(visible=False), "", None), outputs=asked)
    if data:
        from modules.lora_training.data.ui_data import CAPTION_EXTRA, caption_settings

        extra = [data[k] for k in ("source_dir", "files", "concept", "mode", "caption_task", "caption_model",
                                   "overwrite", *CAPTION_EXTRA)]

        def prepare_and_train(*v):
            n = len(form) + 1  # the form, then the State of fields it does not show
            src, files, concept, mode, task, model, overwrite = v[n:n + 7]
            settings = caption_settings(dict(zip(CAPTION_EXTRA, v[n + 7:])))
            paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
            return submit_or_ask(ctx, "lora.prepare_and_train", {
                "train": params_of(*v[:n]), "source_dir": (src or "").strip(),
                "files": paths, "concept": concept or "default", "mode": mode, "caption": True,
                "caption_task": task, "caption_model": model or "", "overwrite_captions": bool(overwrite),
                "caption_settings": settings})

        prep_btn.click(prepare_and_train, inputs=form + [extra_state] + extra, outputs=asked)
    panel.job_id.change(lambda: list_loras(ctx), outputs=loras)
    # no timer of our own (it would keep the page busy): the list follows the panel's status
    panel.status.change(lambda: list_loras(ctx), outputs=loras, show_progress="hidden")
    # "last state saved" follows the project field and every job status change
    project.change(lambda v: last_state_markdown(ctx, v), inputs=project, outputs=last_state, show_progress="hidden")
    panel.status.change(lambda v: last_state_markdown(ctx, v), inputs=project, outputs=last_state,
                        show_progress="hidden")
