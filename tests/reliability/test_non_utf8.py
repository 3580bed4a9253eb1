"""File names that are not valid UTF-8 (issue 12, point 2), and a store that refuses a job's
final state.

On Linux `os.fsdecode(b"caf\\xe9.png")` is "caf\\udce9.png": usable to open the file, refused
by every UTF-8 encoder. Such names go through the LoRA import (report + manifest), the job
log, artifacts, errors and results; nothing may be lost and no job may stay "running".
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import BaseModel

from core.errors import StudioError
from core.module import JobKind
from core.safetext import dumps, safe_text

CAFE = os.fsdecode(b"caf\xe9.png")  # "caf\udce9.png"
FFFE = os.fsdecode(b"\xff\xfe photo.png")


def test_safe_text():
    assert CAFE == "caf\udce9.png"
    assert safe_text(CAFE) == "caf\\xe9.png" and safe_text(FFFE) == "\\xff\\xfe photo.png"
    assert safe_text("lone \ud800") == "lone \\ud800"
    assert safe_text("déjà vu 🎨") == "déjà vu 🎨"
    assert safe_text(Path(CAFE)) == "caf\\xe9.png"
    data = json.loads(dumps({CAFE: [CAFE, 1, None, {"p": Path(FFFE)}]}, ensure_ascii=False))
    assert data == {"caf\\xe9.png": ["caf\\xe9.png", 1, None, {"p": "\\xff\\xfe photo.png"}]}
    dumps(data, ensure_ascii=False).encode("utf-8")


class Say(BaseModel):
    fail: bool = False


def _say(job, p: Say, ctx):
    job.info("before")
    job.info(f"reading {CAFE}")
    job.artifact(Path("/data") / CAFE, "image")
    job.progress(1, 2, f"file {CAFE}")
    job.metric(1, **{"loss": 0.5})
    job.info("after")
    if p.fail:
        raise StudioError("media.corrupt", path=CAFE, error="bad \udcff byte")
    return {"file": CAFE, "files": [FFFE]}


def test_store_keeps_every_line_and_the_api_serves_them(bare_ctx):
    from core.api import create_api

    bare_ctx.jobs.register(JobKind("t.say", Say, _say, gpu=False))
    ok = bare_ctx.jobs.wait(bare_ctx.jobs.submit("t.say", {}), 30)
    bad = bare_ctx.jobs.wait(bare_ctx.jobs.submit("t.say", {"fail": True}), 30)
    assert ok["status"] == "completed" and ok["result"] == {"file": "caf\\xe9.png", "files": ["\\xff\\xfe photo.png"]}
    assert bad["status"] == "failed" and "caf\\xe9.png" in bad["error"]
    for row in (ok, bad):
        msgs = [m["message"] for m in bare_ctx.store.logs(row["id"])]
        assert "before" in msgs and "reading caf\\xe9.png" in msgs and "after" in msgs  # none dropped
        assert [a["path"] for a in bare_ctx.store.artifacts(row["id"])] == ["/data/caf\\xe9.png"]
    client = TestClient(create_api(bare_ctx))
    for path in (f"/jobs/{ok['id']}", f"/jobs/{ok['id']}/logs", f"/jobs/{bad['id']}", f"/jobs/{ok['id']}/artifacts"):
        r = client.get(path)
        assert r.status_code == 200 and "caf\\\\xe9.png" in r.text, path


def test_a_failing_final_write_ends_the_job_failed_with_a_message(bare_ctx, monkeypatch):
    bare_ctx.jobs.register(JobKind("t.say", Say, _say, gpu=False))
    real = bare_ctx.store.set_status

    def refuse_results(job_id, status, error=None, result=None, device=None):
        if result is not None:  # e.g. a result SQLite will never take
            raise sqlite3.IntegrityError("refused")
        real(job_id, status, error=error, result=result, device=device)

    monkeypatch.setattr(bare_ctx.store, "set_status", refuse_results)
    row = bare_ctx.jobs.wait(bare_ctx.jobs.submit("t.say", {}), 30)
    assert row["status"] == "failed" and row["result"] is None
    assert "could not save its result" in row["error"] and "Completed" in row["error"]


def test_a_store_refusing_every_final_write_for_a_while_still_ends_the_job(bare_ctx, monkeypatch):
    bare_ctx.jobs.register(JobKind("t.say", Say, _say, gpu=False))
    real = bare_ctx.store.set_status
    until = [0.0]

    def flaky(job_id, status, error=None, result=None, device=None):
        if status != "running" and time.time() < until[0]:
            raise sqlite3.IntegrityError("refused")  # not transient: no 30 s retry in the worker
        real(job_id, status, error=error, result=result, device=device)

    monkeypatch.setattr(bare_ctx.store, "set_status", flaky)
    until[0] = time.time() + 1.5
    jid = bare_ctx.jobs.submit("t.say", {})
    row = bare_ctx.jobs.wait(jid, 30)  # would time out (status "running" for ever) before the fix
    assert row["status"] == "failed" and "could not save its result" in row["error"]
    assert time.time() >= until[0]


def _png(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(path, format="PNG")


def test_lora_import_of_non_utf8_names_through_the_runner(ctx, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _png(src / CAFE, 1)
    _png(src / FFFE, 2)
    _png(src / "plain.png", 3)
    (src / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"une photo de caf\xe9")  # latin-1 caption
    jid = ctx.jobs.submit("lora.prepare", {"project": "p", "concept": "c", "source_dir": str(src),
                                           "resolution": 256, "min_size": 64})
    row = ctx.jobs.wait(jid, 120)
    assert row["status"] == "completed", row
    assert row["result"]["imported"] == 3
    report = json.loads((ctx.jobs.jobs_dir / jid / "import_report.json").read_text(encoding="utf-8"))
    assert len(report["imported"]) == 3 and report["skipped"] == []
    project_dir = ctx.path("LORA_PROJECTS_DIR") / "p"
    manifest = json.loads((project_dir / "project.json").read_text(encoding="utf-8"))
    images = manifest["concepts"]["c"]["images"]
    sources = sorted(Path(rec["source"]).name for rec in images.values())
    assert sources == sorted(["caf\\xe9.png", "\\xff\\xfe photo.png", "plain.png"])
    assert len(images) == 3 and all((project_dir / "data" / "c" / name).is_file() for name in images)
    flat = json.loads((project_dir / "data" / "manifest.json").read_text(encoding="utf-8"))
    assert len(flat["images"]) == 3
    # the prepared files have UTF-8 names; the sources are untouched
    assert all(n.encode("utf-8") for n in os.listdir(project_dir / "data" / "c"))
    assert sorted(os.listdir(src)) == sorted([CAFE, FFFE, "plain.png", os.fsdecode(b"caf\xe9.txt")])
    msgs = [m["message"] for m in ctx.store.logs(jid)]
    assert msgs[-1].startswith("Completed")
