"""Odd images in a style folder (issue 12 points 4 and 7): a 1x1 image and a 4 px strip are
stylised, a huge PNG is refused with its size and the limit, a broken file is reported, the
others are written; a job whose only image is bad ends failed with the reason."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core import media_budget
from modules.style_transfer.fast import ApplySettings, stylize_image, work_bytes
from modules.style_transfer.transformer_net import TransformerNet
from tests.style_transfer.helpers import pattern_image


@pytest.fixture
def net_ctx(ctx):
    torch.manual_seed(0)
    torch.save(TransformerNet().state_dict(), ctx.path("STYLE_DIR") / "candy.pth")
    media_budget.set_work_budget(2 * 10**9)
    yield ctx
    media_budget.set_work_budget(None)


@pytest.mark.parametrize("size", [(1, 1), (4, 200), (200, 4), (3, 3), (31, 2)])
def test_tiny_and_strip_images_are_stylised(size):
    torch.manual_seed(0)
    net = TransformerNet().eval()
    img = Image.new("RGB", size, (200, 40, 90))
    out = stylize_image(net, img, ApplySettings())
    assert out.size == size and out.mode == "RGB"
    # the network really ran (not a copy of the source)
    assert np.abs(np.asarray(out, np.int16) - np.asarray(img, np.int16)).max() > 0


def test_estimate_for_12000_square_is_far_over_a_desktop():
    assert work_bytes(12000, 12000, ApplySettings()) > 100e9
    # the hint in the message (a smaller network size) helps: what is left is the full-size arrays
    assert work_bytes(12000, 12000, ApplySettings(max_side=1024)) < 10e9


def _submit(ctx, inputs, **kw):
    jid = ctx.jobs.submit("style.fast_apply", {"model": "candy", "inputs": [str(i) for i in inputs], **kw})
    return ctx.jobs.wait(jid, timeout=120)


def test_folder_with_degenerate_and_huge_images(net_ctx, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("1", (12000, 12000)).save(src / "huge.png")  # valid, a few MB on disk
    Image.new("RGB", (1, 1), (9, 9, 9)).save(src / "dot.png")
    Image.new("RGB", (4, 2000), (9, 99, 9)).save(src / "strip.png")
    pattern_image(40, 32, 1).save(src / "ok.jpg")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    row = _submit(net_ctx, [src], output_dir="out")
    assert row["status"] == "completed", row
    res = row["result"]
    out = net_ctx.path("OUTPUTS_DIR") / "out" / "in"
    assert sorted(p.name for p in out.iterdir()) == ["dot.png", "ok.png", "strip.png"]
    assert Image.open(out / "dot.png").size == (1, 1) and Image.open(out / "strip.png").size == (4, 2000)
    assert res["written"] == 3 and res["failed"] == 2
    errors = {Path(f["path"]).name: f["error"] for f in res["failures"]}
    assert set(errors) == {"huge.png", "broken.png"}
    assert "12000x12000" in errors["huge.png"] and "2.0 GB" in errors["huge.png"]
    logs = " ".join(r["message"] for r in net_ctx.store.logs(row["id"]))
    assert "12000x12000" in logs and "broken.png" in logs


def test_single_bad_image_ends_failed_with_the_reason(net_ctx, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    row = _submit(net_ctx, [bad], output_dir="out2")
    out2 = net_ctx.path("OUTPUTS_DIR") / "out2"
    assert row["status"] == "failed", row
    assert "bad.png" in row["error"]
    assert not out2.exists() or not any(out2.rglob("*.png"))


def test_rest_single_huge_image_fails_with_size_and_limit(net_ctx, tmp_path):
    from fastapi.testclient import TestClient

    from core.api import create_api

    Image.new("1", (12000, 12000)).save(tmp_path / "huge.png")
    client = TestClient(create_api(net_ctx))
    r = client.post("/jobs", json={"kind": "style.fast_apply", "start": True,
                                   "params": {"model": "candy", "inputs": [str(tmp_path / "huge.png")]}})
    row = net_ctx.jobs.wait(r.json()["id"], timeout=60)
    assert row["status"] == "failed" and "12000x12000" in row["error"] and "2.0 GB" in row["error"], row


def test_gatys_refuses_a_size_over_budget(net_ctx, tmp_path, vgg_file):
    (net_ctx.path("STYLE_DIR") / vgg_file.name).symlink_to(vgg_file)
    pattern_image(400, 300, 1).save(tmp_path / "c.png")
    pattern_image(40, 40, 2).save(tmp_path / "s.png")
    media_budget.set_work_budget(50 * 10**6)
    jid = net_ctx.jobs.submit("style.gatys", {"content": str(tmp_path / "c.png"), "styles": [str(tmp_path / "s.png")],
                                              "size": 400, "steps": 1})
    row = net_ctx.jobs.wait(jid, timeout=60)
    assert row["status"] == "failed" and "400x300" in row["error"] and "50.0 MB" in row["error"], row
