"""The tab builds in the real shell and its buttons submit real jobs; the CLI runs a job."""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pytest
import torch

from modules.style_transfer.__main__ import main
from modules.style_transfer.transformer_net import TransformerNet
from tests.style_transfer.helpers import pattern_image


def _handler(demo, name):
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    return next(f.fn for f in fns if getattr(f.fn, "__name__", "") == name)


def test_tab_builds_and_gatys_button_submits_a_job(style_ctx, tmp_path):
    from core.shell import build_app

    demo = build_app(style_ctx)
    ids = {b.elem_id for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    assert {"tab-style_transfer", "style-gatys", "style-apply", "style-train", "style-export"} <= ids
    pattern_image(40, 40, 1).save(tmp_path / "c.png")
    pattern_image(40, 40, 2).save(tmp_path / "s.png")
    submit = _handler(demo, "submit_gatys")
    job_id = submit(str(tmp_path / "c.png"), [str(tmp_path / "s.png")], "", 32, 2, 1, "adam", False, "ycbcr",
                    1.0, 1e6, 1.0, None, "relu2_1", "relu1_1, relu2_1", 1.0, "content", "max", 0, 0)
    row = style_ctx.jobs.wait(job_id, timeout=60)
    assert row["status"] == "completed" and row["params"]["style_layers"] == ["relu1_1", "relu2_1"]
    with pytest.raises(gr.Error):  # a bad field becomes a readable UI error, no job
        submit(str(tmp_path / "c.png"), [], "", 32, 2, 1, "adam", False, "ycbcr",
               1.0, 1e6, 1.0, None, "relu2_1", "relu1_1", 1.0, "content", "max", 0, 0)


def test_cli_export_and_networks(tmp_path, capsys):
    home = tmp_path / "home"
    style_dir = home / "models" / "style"
    style_dir.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(TransformerNet().state_dict(), style_dir / "wave.pth")
    assert main(["--home", str(home), "networks"]) == 0
    assert capsys.readouterr().out.split() == ["wave.pth"]
    rc = main(["--home", str(home), "export", "--model", "wave", "--check-size", "32", "--no-benchmark"])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(out)
    assert rc == 0 and result["status"] == "completed" and result["result"]["ok"]
    assert Path(result["result"]["onnx"]).resolve() == (style_dir / "wave.onnx").resolve()
    assert main(["--home", str(home), "export", "--model", "missing"]) == 1
