"""The tab builds, its form maps to valid params, the estimate shows, LoRAs are listed."""
from __future__ import annotations

from tests.lora_training.helpers import data, params, quiet_job


def test_tab_builds_and_handlers(ctx, tiny_sdxl, tmp_path):
    import gradio as gr

    from core.i18n import gradio_i18n, missing_keys
    from modules.lora_training import MODULE, ui
    from modules.lora_training.train.trainer import train

    assert not {k for keys in missing_keys().values() for k in keys if k.startswith("lora.")}
    ctx.i18n = gradio_i18n()
    with gr.Blocks():
        MODULE.build_ui(ctx)
    assert ctx.panels and ctx.panels[0].kind_prefix == "lora."

    from modules.lora_training.train.config import TrainParams

    d = TrainParams()
    values = [getattr(d, f) if f != "sample_prompts" else "a\n\n b " for f in ui.FIELDS]
    values[ui.FIELDS.index("base_model")] = str(tiny_sdxl)
    values[ui.FIELDS.index("rank")] = 8
    p = ui.collect("p", "sks", 64, values)
    assert p["rank"] == 8 and p["sample_prompts"] == ["a", "b"] and "batch_size" not in p  # default left to preset
    assert TrainParams.model_validate(p).resolution == 64
    data(ctx, n=2)
    md = ui.estimate_markdown(ctx, {**p, "epochs": 3})
    assert "**6**" not in md and "6 steps" in md and "GiB" in md
    assert "⚠️" in ui.estimate_markdown(ctx, {**p, "base_model": str(tmp_path / "missing")})

    train(quiet_job(tmp_path), params(tiny_sdxl, max_steps=1, trigger_word="sks"), ctx)
    rows = ui.list_loras(ctx)
    assert rows[0][0] == "p.safetensors" and rows[0][3] == "1" and rows[0][5] == "sks" and rows[0][6] == "true"
