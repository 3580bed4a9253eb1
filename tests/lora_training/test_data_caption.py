"""Captioning with a tiny real Florence-2: trigger word first, existing captions kept
unless overwrite, stop within one image, captioner released, clear error when missing."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.errors import StudioError
from core.jobs import ConsoleJob
from modules.lora_training.data import DATA_JOB_KINDS
from modules.lora_training.data.captioners import apply_trigger, load_one
from modules.lora_training.data.jobs import CaptionParams, run_caption

from tests.lora_training.helpers import smooth_images
from tests.lora_training.tiny_florence import make_tiny_florence

TRIGGER = "sks_person"


@pytest.fixture(scope="module")
def tiny_florence(tmp_path_factory) -> Path:
    return make_tiny_florence(tmp_path_factory.mktemp("florence") / "tiny-florence")


@pytest.fixture
def studio(bare_ctx, tiny_florence: Path, tmp_path: Path):
    for kind in DATA_JOB_KINDS:
        bare_ctx.jobs.register(kind)
    shutil.copytree(tiny_florence, bare_ctx.path("CAPTIONERS_DIR") / "tiny-florence")
    src = smooth_images(tmp_path / "src")
    (src / "img1.txt").write_text("my own caption", encoding="utf-8")
    job = bare_ctx.jobs.submit("lora.prepare", {"project": "cap", "concept": "person", "source_dir": str(src),
                                                "resolution": 256, "min_size": 128})
    row = bare_ctx.jobs.wait(job, 60)
    assert row["status"] == "completed", row
    return bare_ctx


def _captions(ctx) -> dict[str, str]:
    d = ctx.path("LORA_PROJECTS_DIR") / "cap" / "data" / "person"
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(d.glob("*.txt"))}


def test_caption_job_keeps_existing_then_overwrites(studio) -> None:
    studio.config.values["DEFAULT_CAPTION_MODEL"] = "tiny-florence"  # found under CAPTIONERS_DIR
    job = studio.jobs.submit("lora.caption", {"project": "cap", "trigger_word": TRIGGER, "batch_size": 2,
                                              "max_new_tokens": 12, "num_beams": 1, "task": "<CAPTION>"})
    row = studio.jobs.wait(job, 120)
    assert row["status"] == "completed", row
    assert row["result"]["written"] == 4 and row["result"]["kept"] == 1
    caps = _captions(studio)
    assert sorted(caps) == [f"img{i}" for i in range(5)]
    assert caps["img1"] == "my own caption"  # kept untouched
    for name, text in caps.items():
        if name != "img1":
            assert text.startswith(TRIGGER + ", ") and len(text) > len(TRIGGER) + 2, text
            assert "<" not in text and "\n" not in text  # special tokens stripped, one line
    assert studio.models.loaded() == []  # captioner released
    assert any(a["path"].endswith("caption_report.json") for a in studio.store.artifacts(job))
    # a second run with overwrite rewrites every caption, trigger first
    job = studio.jobs.submit("lora.caption", {"project": "cap", "concept": "person", "trigger_word": TRIGGER,
                                              "overwrite": True, "num_beams": 1,
                                              "task": "<MORE_DETAILED_CAPTION>"})  # default 256 tokens: over
    # the tiny decoder's 128 positions, so this also checks the cap
    row = studio.jobs.wait(job, 120)
    assert row["status"] == "completed" and row["result"]["written"] == 5
    assert all(t.startswith(TRIGGER) for t in _captions(studio).values())


def test_caption_stop_within_one_image(studio) -> None:
    class StopAtFirst(ConsoleJob):
        def progress(self, done, total, desc=""):
            super().progress(done, total, desc)
            self.request_stop()  # the user clicks Stop while image 1 is being captioned

    job = StopAtFirst("lora.caption", verbose=False, workdir=studio.path("DATA_DIR") / "stopjob")
    params = CaptionParams(project="cap", model="tiny-florence", trigger_word=TRIGGER, overwrite=True,
                           batch_size=1, max_new_tokens=8, num_beams=1)
    before = _captions(studio)
    studio.models.load(job.id, "trainer-thing", lambda: object())  # what a calling job holds stays
    result = run_caption(job, params, studio)
    assert studio.models.loaded() == [(job.id, "trainer-thing")]
    studio.models.release(job.id)
    assert result["stopped"] and result["written"] == 1
    after = _captions(studio)
    assert sum(before[k] != after[k] for k in before) <= 1
    assert after["img0"].startswith(TRIGGER)
    assert studio.models.loaded() == []


def test_captioner_missing_is_clear(tmp_path: Path, bare_ctx) -> None:
    for ref in ("nobody/no-such-florence", str(tmp_path / "missing" / "folder")):
        with pytest.raises(StudioError) as e:
            load_one("florence", ref, bare_ctx.path("CAPTIONERS_DIR"), "", "cpu", None)
        assert e.value.key == "lora_data.captioner_missing"
        assert str(bare_ctx.path("CAPTIONERS_DIR")) in e.value.params["folder"]
        assert "config.json" in e.value.params["files"]
    job = bare_ctx.jobs  # a caption job on a project that does not exist fails with a clear key
    for kind in DATA_JOB_KINDS:
        job.register(kind)
    jid = job.submit("lora.caption", {"project": "ghost"})
    row = job.wait(jid, 30)
    assert row["status"] == "failed" and "ghost" in row["error"]


def test_apply_trigger() -> None:
    assert apply_trigger("a man", "sks") == "sks, a man"
    assert apply_trigger("sks, a man", "sks") == "sks, a man"
    assert apply_trigger("SKS man", "sks") == "SKS man"
    assert apply_trigger("", "sks") == "sks"
    assert apply_trigger(" a\nman ", "") == "a man"
