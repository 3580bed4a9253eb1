"""The tab builds inside the shell; "Try it" buttons exist where a LoRA run is shown (the LoRA
tab's job panel and the Jobs tab) and nowhere else; the form's text parsing."""
from __future__ import annotations

import gradio as gr

from modules.lora_lab.ui import parse_loras, parse_strengths


def _open_buttons(demo):
    return [b for b in demo.blocks.values() if isinstance(b, gr.Button)
            and "cb-open-lora_lab" in (b.elem_classes or [])]


def test_try_it_buttons_in_lora_panel_and_jobs_tab(ctx):
    from core.shell import build_app

    demo = build_app(ctx)
    buttons = _open_buttons(demo)
    assert len(buttons) == 2 and all(b.visible for b in buttons)  # LoRA tab panel + Jobs tab, not SR/style/...
    ids = {b._id for b in buttons}
    clicks = [f for f in demo.fns.values() if any(t[0] in ids and t[1] == "click" for t in f.targets)]
    assert len(clicks) == 2  # the shell wired both to the lab's form and the tab switch
    for f in clicks:
        assert [type(o).__name__ for o in f.outputs][-1] == "Tabs" and len(f.outputs) == 8


def test_parse_loras_and_strengths(ctx):
    assert parse_loras(ctx, "my lora.safetensors 0.5\nmine\n\n/x/y-000500.safetensors -1") == [
        {"path": "my lora.safetensors", "strength": 0.5}, {"path": "mine", "strength": 1.0},
        {"path": "/x/y-000500.safetensors", "strength": -1.0}]
    assert parse_strengths(ctx, "0, 0.5;1") == [0.0, 0.5, 1.0]
    import pytest

    with pytest.raises(gr.Error):
        parse_strengths(ctx, "0, half")
