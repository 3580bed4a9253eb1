"""The Settings view: folders and options (saved to the user's settings file), which
modules loaded and which failed to, and the security state of this server."""
from __future__ import annotations

import gradio as gr

from core import registry

EDITABLE = ("LANGUAGE", "PRECISION", "LORAS_DIR", "LORA_PROJECTS_DIR", "MODELS_DIR", "OUTPUTS_DIR",
            "DEFAULT_SDXL_MODEL_FOR_LORA", "DEFAULT_CAPTION_MODEL", "TRUST_REMOTE_CODE",
            "MLFLOW_ENABLED", "MLFLOW_TRACKING_URI", "TENSORBOARD_ENABLED")


def build_settings_tab(ctx) -> None:
    i18n, cfg = ctx.i18n, ctx.config
    gr.Markdown(i18n("settings.intro"))
    fields = {}
    with gr.Column():
        for key in EDITABLE:
            value = cfg.get(key)
            # A readable label; the raw key (what config files and env vars use) as the hint.
            label, info = i18n(f"settings.key.{key}"), key
            if isinstance(value, bool):
                fields[key] = gr.Checkbox(value=value, label=label, info=info)
            elif key == "LANGUAGE":
                fields[key] = gr.Dropdown(["auto", "en", "fr"], value=value, label=label, info=info)
            elif key == "PRECISION":
                fields[key] = gr.Dropdown(["auto", "bf16", "fp16", "fp32"], value=value, label=label, info=info)
            else:
                fields[key] = gr.Textbox(value=str(value), label=label, info=info)
    save = gr.Button(i18n("settings.save"), variant="primary")
    saved = gr.Markdown()

    def on_save(*values):
        cfg.save_user(dict(zip(EDITABLE, values)))
        return ctx.t("settings.saved", path=str(cfg.user_file))

    save.click(on_save, inputs=list(fields.values()), outputs=saved)
    loaded = ", ".join(m.id for m in ctx.modules) or "-"
    text = ctx.t("settings.modules", loaded=loaded)
    if registry.broken:
        text += "\n\n" + ctx.t("settings.broken", names=", ".join(sorted(registry.broken)))
    gr.Markdown(text)
