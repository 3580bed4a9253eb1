"""The `sr.upscale` job end to end: folders, names, 16-bit files, stop, runner, CLI."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from core import media
from core.jobs import ConsoleJob
from modules.super_resolution.batch import run_upscale
from modules.super_resolution.params import UpscaleParams


def _img(path: Path, size=(12, 10), mode="RGB", seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)
    return arr


def _job(**kw) -> ConsoleJob:
    return ConsoleJob("sr.upscale", verbose=False, **kw)


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_folder_keeps_names_and_skips_junk(bare_ctx, tmp_path, nearest4):
    src = tmp_path / "in"
    b = _img(src / "a" / "b.png")
    _img(src / "a" / "c" / "d.jpg", seed=1)
    e = _img(src / "e.png", mode="RGBA", seed=2)
    _img(src / ".hidden" / "x.png")
    (src / "junk.txt").write_text("not an image")
    (src / "notes.md").write_text("# notes")
    (src / "broken.png").write_bytes(b"\x89PNG but not really")  # fails alone, the batch goes on
    out = bare_ctx.path("OUTPUTS_DIR") / "out"  # a typed output folder lies under OUTPUTS_DIR
    job = _job(workdir=tmp_path / "job")
    res = run_upscale(job, UpscaleParams(model=str(nearest4), inputs=[str(src)], output_dir="out"), bare_ctx)
    assert _files(out) == {"a/b.png", "a/c/d.jpg", "e.png"}
    assert sorted(Path(s).name for s in res["skipped"]) == ["junk.txt", "notes.md"]
    assert [Path(f["path"]).name for f in res["failed"]] == ["broken.png"] and "broken.png" in res["failed"][0]["error"]
    got = np.asarray(Image.open(out / "a" / "b.png"))
    np.testing.assert_array_equal(got, b.repeat(4, 0).repeat(4, 1))
    rgba = np.asarray(Image.open(out / "e.png"))
    assert rgba.shape == (40, 48, 4)
    np.testing.assert_array_equal(rgba, e.repeat(4, 0).repeat(4, 1))
    assert Image.open(out / "a" / "c" / "d.jpg").size == (48, 40)
    kinds = [ev for ev in job.events if ev[0] == "artifact"]
    assert {Path(ev[3]).name for ev in kinds if ev[4] == "image"} == {"b.png", "d.jpg", "e.png"}
    assert _files(src) >= {"a/b.png", "junk.txt"}  # sources untouched
    assert src.joinpath("a/b.png").stat().st_size > 0


def test_16bit_png_file_stays_16bit(bare_ctx, tmp_path, nearest4):
    arr = (np.arange(8 * 6 * 3, dtype=np.uint32).reshape(8, 6, 3) * 997 % 65536).astype(np.uint16)
    src = tmp_path / "deep.png"
    media.save_image(arr, src, bits=16)
    res = run_upscale(_job(workdir=tmp_path / "job"), UpscaleParams(model=str(nearest4), inputs=[str(src)],
                                                                    output_dir="o"), bare_ctx)
    back, info = media.load_image_array(res["outputs"][0])
    assert info["bits"] == 16 and back.shape == (32, 24, 3)
    np.testing.assert_array_equal((back * 65535 + 0.5).astype(np.uint16), arr.repeat(4, 0).repeat(4, 1))


class _StopOnSecond(ConsoleJob):
    """Asks for a stop as soon as the second image has made progress (mid-image)."""

    def progress(self, done, total, desc=""):
        super().progress(done, total, desc)
        if 1.0 < done < 2.0:
            self.request_stop()


def test_stop_mid_folder_keeps_finished_files(bare_ctx, tmp_path, nearest4):
    src = tmp_path / "in"
    for i in range(4):
        _img(src / f"img_{i}.png", size=(40, 40), seed=i)
    out = bare_ctx.path("OUTPUTS_DIR") / "out"
    job = _StopOnSecond("sr.upscale", verbose=False, workdir=tmp_path / "job")
    res = run_upscale(job, UpscaleParams(model=str(nearest4), inputs=[str(src)], output_dir="out", tile=16,
                                         overlap=4, pad=4), bare_ctx)
    assert res["stopped"] is True
    assert _files(out) == {"img_0.png"}  # finished kept; the interrupted one never written, no temp left
    assert Image.open(out / "img_0.png").size == (160, 160)
    # the stop was seen at the next tile: image 1 made exactly one tile of progress
    prog = [ev[2] for ev in job.events if ev[0] == "progress" and 1.0 < ev[2] < 2.0]
    assert len(prog) == 1


def test_job_through_runner_and_bad_model(ctx, nearest4, tmp_path):
    shutil.copy(nearest4, ctx.path("UPSCALERS_DIR") / "nearest_x4.pth")
    (ctx.path("UPSCALERS_DIR") / "broken.pth").write_bytes(b"garbage" * 10)
    src = _img(tmp_path / "p.png")
    out = ctx.path("OUTPUTS_DIR") / "out"
    jid = ctx.jobs.submit("sr.upscale", {"model": "nearest_x4.pth", "inputs": [str(tmp_path / "p.png")],
                                         "output_dir": "out", "outscale": 2})
    row = ctx.jobs.wait(jid, timeout=60)
    assert row["status"] == "completed", row
    arts = ctx.store.artifacts(jid)
    assert any(a["path"].endswith("p.png") and a["kind"] == "image" for a in arts)
    assert any(a["kind"] == "preview" for a in arts)
    assert Image.open(out / "p.png").size == (src.shape[1] * 2, src.shape[0] * 2)
    bad = ctx.jobs.submit("sr.upscale", {"model": "broken.pth", "inputs": [str(tmp_path / "p.png")]})
    row = ctx.jobs.wait(bad, timeout=60)
    assert row["status"] == "failed" and "broken.pth" in row["error"]
    with pytest.raises(ValidationError) as ei:
        ctx.jobs.submit("sr.upscale", {"model": "x", "inputs": ["a"], "tile": -5})
    assert "tile" in str(ei.value)


def test_cli(tmp_path, nearest4, monkeypatch, capsys):
    from modules.super_resolution.__main__ import main

    monkeypatch.setenv("CYBERBILL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CYBERBILL_UPSCALERS_DIR", str(nearest4.parent))
    _img(tmp_path / "q.png", size=(8, 6))
    assert main(["--list"]) == 0
    assert "nearest_x4.pth" in capsys.readouterr().out
    rc = main(["-m", "nearest_x4.pth", str(tmp_path / "q.png"), "-o", "cli_out",
               "--suffix", "_x4", "-q"])
    assert rc == 0  # -o is relative to OUTPUTS_DIR, not to the shell's folder
    assert Image.open(tmp_path / "home" / "outputs" / "cli_out" / "q_x4.png").size == (32, 24)
    assert main(["-m", "nearest_x4.pth", str(tmp_path / "q.png"), "-o", "../../escape", "-q"]) == 2
    assert "output_dir" in capsys.readouterr().err and not (tmp_path / "escape").exists()
    assert main(["-m", "nearest_x4.pth", str(tmp_path / "q.png"), "--tile", "-3", "-q"]) == 2


def test_tab_builds_and_compares(ctx, nearest4, tmp_path):
    """The tab builds inside the real shell (no fallback error) and the slider pair loads."""
    import gradio as gr

    from core.shell import build_app
    from modules.super_resolution.ui import _pair_images

    shutil.copy(nearest4, ctx.path("UPSCALERS_DIR") / "nearest_x4.pth")
    demo = build_app(ctx)
    comps = list(demo.blocks.values())
    assert any(isinstance(c, gr.ImageSlider) for c in comps)
    assert not any(isinstance(c, gr.Code) for c in comps)  # the shell shows a traceback for a broken tab
    src = tmp_path / "s.png"
    _img(src, size=(10, 8))
    media.save_image(np.zeros((32, 40, 3), np.uint8), tmp_path / "d.png")
    before, after = _pair_images(str(src), str(tmp_path / "d.png"))
    assert before.size == after.size == (40, 32)


def test_rest_api(ctx, nearest4, tmp_path):
    from fastapi.testclient import TestClient

    from core.api import create_api

    shutil.copy(nearest4, ctx.path("UPSCALERS_DIR") / "nearest_x4.pth")
    _img(tmp_path / "r.png")
    client = TestClient(create_api(ctx))
    bad = client.post("/jobs", json={"kind": "sr.upscale", "params": {"model": "x", "inputs": ["a"], "tile": -1}})
    assert bad.status_code == 422 and "tile" in str(bad.json())
    r = client.post("/jobs", json={"kind": "sr.upscale", "start": True,
                                   "params": {"model": "nearest_x4.pth", "inputs": [str(tmp_path / "r.png")],
                                              "output_dir": "api_out"}})
    assert r.status_code == 201
    row = ctx.jobs.wait(r.json()["id"], timeout=60)
    assert row["status"] == "completed"
    arts = client.get(f"/jobs/{row['id']}/artifacts").json()
    assert str(ctx.path("OUTPUTS_DIR") / "api_out" / "r.png") in [a["path"] for a in arts]
