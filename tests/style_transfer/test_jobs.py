"""The style job kinds through the studio's real runner and store (as the UI/REST use them)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from core.jobs import ConsoleJob
from modules.style_transfer.params import GatysParams
from modules.style_transfer.runners import run_gatys
from modules.style_transfer.transformer_net import TransformerNet
from tests.style_transfer.helpers import StopAfter, pattern_image

SMALL = dict(size=40, steps=4, style_layers=["relu1_1", "relu2_1", "relu3_1"], content_layers=["relu3_1"],
             preview_every=2)


def test_kinds_registered_and_params_validated(style_ctx):
    assert {"style.gatys", "style.fast_apply", "style.fast_train", "style.export_onnx"} <= set(style_ctx.jobs.kinds)
    with pytest.raises(ValidationError) as err:
        style_ctx.jobs.submit("style.gatys", {"content": "a.png", "styles": ["b.png"], "size": 5})
    assert err.value.errors()[0]["loc"] == ("size",)
    with pytest.raises(ValidationError):
        GatysParams(content="a", styles=["b", "c"], style_weights=[1.0])


def test_gatys_job_end_to_end(style_ctx, tmp_path):
    pattern_image(56, 40, 1).save(tmp_path / "content.jpg")
    pattern_image(40, 40, 2).save(tmp_path / "s1.png")
    pattern_image(40, 40, 3).save(tmp_path / "s2.png")
    job_id = style_ctx.jobs.submit("style.gatys", {
        "content": str(tmp_path / "content.jpg"), "styles": [str(tmp_path / "s1.png"), str(tmp_path / "s2.png")],
        "style_weights": [1.0, 3.0], "original_colors": True, "color_space": "yiq", **SMALL})
    row = style_ctx.jobs.wait(job_id, timeout=90)
    assert row["status"] == "completed", row
    out = Path(row["result"]["output"])
    assert out.is_file() and out.parent == style_ctx.path("OUTPUTS_DIR") / "style"
    assert Image.open(out).size == (40, 29)
    arts = style_ctx.store.artifacts(job_id)
    assert [a["kind"] for a in arts].count("preview") == 2 and any(a["kind"] == "image" for a in arts)
    steps = [m["step"] for m in style_ctx.store.metrics(job_id) if m["name"] == "loss"]
    assert steps == [1, 2, 3, 4]


def test_gatys_job_stop_keeps_latest_image(style_ctx, tmp_path):
    pattern_image(48, 48, 1).save(tmp_path / "c.png")
    pattern_image(48, 48, 2).save(tmp_path / "s.png")
    p = GatysParams(content=str(tmp_path / "c.png"), styles=[str(tmp_path / "s.png")],
                    output="mine/result.png", **{**SMALL, "steps": 200})
    job = ConsoleJob("style.gatys", p, workdir=tmp_path / "job", verbose=False)
    job.should_stop = StopAfter(2)
    out = run_gatys(job, p, style_ctx)
    assert out["stopped"] and out["steps"] == 2
    assert Path(out["output"]) == style_ctx.path("OUTPUTS_DIR") / "mine" / "result.png"
    assert Image.open(out["output"]).size == (40, 40)


def test_gatys_job_without_vgg_weights_fails_clearly(ctx, tmp_path):
    pattern_image(32, 32, 1).save(tmp_path / "c.png")
    job_id = ctx.jobs.submit("style.gatys", {"content": str(tmp_path / "c.png"), "styles": [str(tmp_path / "c.png")],
                                             "size": 32, "steps": 1})
    row = ctx.jobs.wait(job_id, timeout=30)
    assert row["status"] == "failed" and "VGG19" in row["error"] and str(ctx.path("STYLE_DIR")) in row["error"]


def test_export_onnx_job(style_ctx):
    torch.manual_seed(0)
    torch.save(TransformerNet().state_dict(), style_ctx.path("STYLE_DIR") / "udnie.pth")
    job_id = style_ctx.jobs.submit("style.export_onnx", {"model": "udnie.pth", "check_size": 48, "benchmark": True})
    row = style_ctx.jobs.wait(job_id, timeout=90)
    assert row["status"] == "completed", row
    r = row["result"]
    assert r["ok"] and r["max_abs_diff"] < 1e-2 and Path(r["onnx"]) == style_ctx.path("STYLE_DIR") / "udnie.onnx"
    assert r["checked_with"] == "onnxruntime" and r["ratio"] > 0
    assert any(a["kind"] == "onnx" for a in style_ctx.store.artifacts(job_id))


def test_export_onnx_of_a_network_elsewhere_writes_under_outputs(style_ctx, tmp_path):
    torch.manual_seed(0)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    torch.save(TransformerNet().state_dict(), elsewhere / "mine.pth")
    job_id = style_ctx.jobs.submit("style.export_onnx", {"model": str(elsewhere / "mine.pth"), "check_size": 32,
                                                         "benchmark": False})
    row = style_ctx.jobs.wait(job_id, timeout=90)
    assert row["status"] == "completed", row
    assert Path(row["result"]["onnx"]) == style_ctx.path("OUTPUTS_DIR") / "style" / "mine.onnx"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["mine.pth"]  # nothing written beside it


def test_rest_create_names_the_bad_field_and_runs_export(style_ctx):
    from fastapi.testclient import TestClient

    from core.api import create_api

    torch.manual_seed(0)
    torch.save(TransformerNet().state_dict(), style_ctx.path("STYLE_DIR") / "candy.pth")
    client = TestClient(create_api(style_ctx))
    bad = client.post("/jobs", json={"kind": "style.fast_apply", "params": {"model": "candy", "inputs": ["x"],
                                                                             "strength": 2}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "params", "strength"]
    ok = client.post("/jobs", json={"kind": "style.export_onnx", "start": True,
                                    "params": {"model": "candy", "check_size": 32, "benchmark": False}})
    assert ok.status_code == 201
    row = style_ctx.jobs.wait(ok.json()["id"], timeout=60)
    assert row["status"] == "completed" and Path(row["result"]["onnx"]).is_file()
