"""The data section builds inside a Blocks and its handlers drive real jobs and files."""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from core.i18n import load_locale
from modules.lora_training.data import DATA_JOB_KINDS, build_data_ui
from modules.lora_training.data import ui_data as ui

ROOT = Path(__file__).resolve().parents[2]


def test_ui_builds_and_handlers_work(bare_ctx, tmp_path: Path) -> None:
    for kind in DATA_JOB_KINDS:
        bare_ctx.jobs.register(kind)
    with gr.Blocks():
        comps = build_data_ui(bare_ctx)
    assert comps["job_id"] is comps["panel"].job_id and comps["panel"] in bare_ctx.panels
    for key in ("project", "concept", "trigger_word", "resolution", "mode", "prepare_btn", "caption_btn", "job_id",
                "status", "gallery", "caption_box", "save_btn"):
        assert key in comps, key

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        arr = np.random.default_rng(i).integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(arr).resize((300, 300), Image.Resampling.BICUBIC).save(src / f"p{i}.jpg")
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    (src / "p0.txt").write_text("sks, a dog, red collar", encoding="utf-8")

    job_id, msg = ui.start_caption(bare_ctx, "nothing here", "c", "", "<CAPTION>", "sks", False, 2)
    assert job_id == "" and "“nothing here”" in msg  # names kept as typed (core.paths)
    job_id, msg = ui.start_prepare(bare_ctx, "../bad", "c", str(src), None, 256, "buckets", 128, False, True, True)
    assert job_id == "" and msg.startswith("⚠️") and "../bad" in msg
    job_id, msg = ui.start_prepare(bare_ctx, "ui proj", "c", "", None, 256, "buckets", 128, False, True, True)
    assert job_id == "" and "⚠️" in msg  # no source
    job_id, msg = ui.start_prepare(bare_ctx, "ui proj", "c", str(src), None, 256, "buckets", 128, False, True, True)
    assert job_id and bare_ctx.jobs.wait(job_id, 60)["status"] == "completed"
    shown = ui.job_status(bare_ctx, job_id)
    assert "3 image(s)" in shown and "| broken.png | unreadable |" in shown

    gallery, caps, original, _, status = ui.load_editor(bare_ctx, "ui proj", "c")
    assert len(gallery) == 3 and gallery[0][1] == "sks, a dog, red collar" and "3" in status
    key1 = list(caps)[1]
    sel, text = ui.select_image(caps, gr.SelectData(None, {"index": 1, "value": None}))
    assert sel == key1 and text == ""
    gallery, caps, status = ui.apply_edit(bare_ctx, sel, "a cat", caps, original)
    gallery, caps, status = ui.replace_all(bare_ctx, "red collar", "blue scarf", False, True, caps, original)
    gallery, caps, status = ui.tag_all(bare_ctx, "sks", "start", False, caps, original)
    gallery, caps, status = ui.tag_all(bare_ctx, "a dog", "start", True, caps, original)
    _, status = ui.replace_all(bare_ctx, "(", "", True, True, caps, original)[1:]
    assert "⚠️" in status
    original, status = ui.save_all(bare_ctx, "ui proj", caps, original)
    d = bare_ctx.path("LORA_PROJECTS_DIR") / "ui proj" / "data" / "c"  # the name as typed
    assert (d / "p0.txt").read_text(encoding="utf-8") == "sks, blue scarf"
    assert (d / "p1.txt").read_text(encoding="utf-8") == "sks, a cat"
    assert (d / "p2.txt").read_text(encoding="utf-8") == "sks"
    assert original == caps


def test_locale_keys_complete() -> None:
    en = json.loads((ROOT / "locales/en/lora_data.json").read_text(encoding="utf-8"))
    fr = json.loads((ROOT / "locales/fr/lora_data.json").read_text(encoding="utf-8"))
    assert set(en) == set(fr) and all(k.startswith("lora_data.") for k in en)
    assert set(en) <= set(load_locale("en"))
    import re

    used = set()
    for f in (ROOT / "modules/lora_training/data").glob("*.py"):
        used |= set(re.findall(r'"(lora_data\.[a-z_.]+[a-z_])"', f.read_text(encoding="utf-8")))
    for reason in ("not_image", "unreadable", "empty", "too_small", "duplicate", "near_duplicate", "already_imported"):
        used |= {f"lora_data.skip.{reason}", f"lora_data.reason.{reason}"}
    for reason in ("upscaled", "small_for_bucket", "caption_encoding", "caption_unreadable"):
        used.add(f"lora_data.warn.{reason}")
    assert used - set(en) == set()


def test_small_resolution_accepted_and_bad_one_names_the_field(ctx, tmp_path: Path) -> None:
    """Issue 18.8: 128 px test runs are allowed; a bad resolution says which field is wrong."""
    from modules.lora_training.data.ui_data import start_prepare

    src = tmp_path / "src"
    src.mkdir()
    job, msg = start_prepare(ctx, "p", "c", str(src), [], 100, "buckets", 64, False, True, True)
    assert job == "" and "resolution" in msg
    job, msg = start_prepare(ctx, "p", "c", str(src), [], 128, "buckets", 64, False, True, True)
    assert job and ctx.store.get_job(job)["params"]["resolution"] == 128
    ctx.jobs.wait(job, timeout=60)
