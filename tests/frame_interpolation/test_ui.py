"""The tab builds inside the real shell, lists the weights and submits validated jobs."""
from __future__ import annotations

import gradio as gr
import pytest

from tests.frame_interpolation.helpers import save_tiny_model


def test_tab_builds_and_submits(ctx, tmp_path):
    save_tiny_model(ctx.path("RIFE_DIR"))
    from core.shell import build_app

    demo = build_app(ctx)
    blocks = list(demo.blocks.values())
    ids = {getattr(b, "elem_id", None) for b in blocks}
    assert {"rife-start-video", "rife-start-pair", "rife-model"} <= ids
    model = next(b for b in blocks if getattr(b, "elem_id", None) == "rife-model")
    assert model.value == "4.25/flownet.pkl"
    panel = next(p for p in ctx.panels if p.kind_prefix == "rife.")
    with pytest.raises(gr.Error):  # a bad field becomes a readable error, no job is created
        panel.submit("rife.interpolate_video", {"input": "x.mp4", "target_fps": "fast", "mode": "fps"})
    assert ctx.store.list_jobs(kind_prefix="rife.", limit=5) == []
