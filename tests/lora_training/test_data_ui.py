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
from modules.lora_training.data import ui_editor as ed

ROOT = Path(__file__).resolve().parents[2]


def test_ui_builds_and_handlers_work(bare_ctx, tmp_path: Path) -> None:
    for kind in DATA_JOB_KINDS:
        bare_ctx.jobs.register(kind)
    with gr.Blocks():
        comps = build_data_ui(bare_ctx)
    assert comps["job_id"] is comps["panel"].job_id and comps["panel"] in bare_ctx.panels
    for key in ("project", "concept", "trigger_word", "resolution", "mode", "prepare_btn", "caption_btn", "job_id",
                "status", "gallery", "caption_box", "save_btn", "caption_kind", "tagger_model", "prompt",
                "general_threshold", "blacklist", "freq", "stats", "undo_btn", "rename_btn", "filter_tag"):
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
    job_id, msg = ui.start_caption(bare_ctx, "nothing here", "c", "", "<CAPTION>", "sks", False, 2,
                                   caption_kind="wd14", general_threshold=1.5)
    assert job_id == "" and "general_threshold" in msg  # a bad field is named
    assert ui.caption_settings({"caption_kind": "wd14", "blacklist": None, "prompt": "p"}) == {"kind": "wd14",
                                                                                             "prompt": "p"}
    job_id, msg = ui.start_prepare(bare_ctx, "../bad", "c", str(src), None, 256, "buckets", 128, False, True, True)
    assert job_id == "" and msg.startswith("⚠️") and "../bad" in msg
    job_id, msg = ui.start_prepare(bare_ctx, "ui proj", "c", "", None, 256, "buckets", 128, False, True, True)
    assert job_id == "" and "⚠️" in msg  # no source
    job_id, msg = ui.start_prepare(bare_ctx, "ui proj", "c", str(src), None, 256, "buckets", 128, False, True, True)
    assert job_id and bare_ctx.jobs.wait(job_id, 60)["status"] == "completed"
    shown = ui.job_status(bare_ctx, job_id)
    assert "3 image(s)" in shown and "| broken.png | unreadable |" in shown

    before = {p.name: p.read_bytes() for p in src.iterdir()}
    gallery, caps, original, _, status, undo, freq, stats = ed.load_editor(bare_ctx, "ui proj", "c")
    assert len(gallery) == 3 and gallery[0][1] == "sks, a dog, red collar" and "3" in status and undo is None
    assert ["sks", 1] in freq and "**3**" in stats
    key1 = list(caps)[1]
    sel, text = ed.select_image(caps, "", gr.SelectData(None, {"index": 1, "value": None}))
    assert sel == key1 and text == ""
    gallery, caps, status, freq, stats = ed.apply_edit(bare_ctx, sel, "a cat", caps, original)
    bulk = lambda op, args, f="": ed.bulk_edit(bare_ctx, op, args, caps, original, f, undo)  # noqa: E731
    gallery, caps, status, undo, freq, stats = bulk("replace", {"find": "red collar", "replace": "blue scarf"})
    gallery, caps, status, undo, freq, stats = bulk("add", {"tag": "sks", "position": "start"})
    gallery, caps, status, undo, freq, stats = bulk("remove", {"tag": "a dog"})
    assert ["sks", 3] in freq and "1 caption(s) changed" in status
    # a filter shows the matching images only, and a tag edit then changes those only
    gallery, status, stats = ed.apply_filter(bare_ctx, caps, "blue scarf")
    assert len(gallery) == 1 and "1 of 3" in status
    sel, text = ed.select_image(caps, "blue scarf", gr.SelectData(None, {"index": 0, "value": None}))
    assert text == "sks, blue scarf"
    gallery, caps, status, undo, freq, stats = bulk("add", {"tag": "outdoors", "position": "end"}, "blue scarf")
    assert len(gallery) == 1 and sum("outdoors" in v for v in caps.values()) == 1
    gallery, caps, status, undo, freq, stats = bulk("rename", {"old": "outdoors", "new": "outside"})
    assert ["outside", 1] in freq and ["outdoors", 1] not in freq
    kept = dict(caps)
    gallery, caps, status, undo, freq, stats = bulk("rename", {"old": "sks", "new": "a, b"})
    assert "⚠️" in status and caps == kept  # a bad rename changes nothing
    gallery, caps, status, undo, freq, stats = ed.undo_bulk(bare_ctx, caps, original, undo)
    assert ["outdoors", 1] in freq and undo is None and "restored" in status  # the rename is undone
    assert ed.undo_bulk(bare_ctx, caps, original, undo)[2] == bare_ctx.t("lora_data.ui.nothing_to_undo")
    gallery, caps, status, undo, freq, stats = bulk("remove", {"tag": "outdoors"})
    _, status = ed.bulk_edit(bare_ctx, "replace", {"find": "(", "replace": "", "regex": True}, caps, original)[1:3]
    assert "⚠️" in status
    original, status = ed.save_all(bare_ctx, "ui proj", caps, original)
    d = bare_ctx.path("LORA_PROJECTS_DIR") / "ui proj" / "data" / "c"  # the name as typed
    assert (d / "p0.txt").read_text(encoding="utf-8") == "sks, blue scarf"
    assert (d / "p1.txt").read_text(encoding="utf-8") == "sks, a cat"
    assert (d / "p2.txt").read_text(encoding="utf-8") == "sks"
    assert original == caps
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # the source folder is never written


def test_locale_keys_complete() -> None:
    en = json.loads((ROOT / "locales/en/lora_data.json").read_text(encoding="utf-8"))
    fr = json.loads((ROOT / "locales/fr/lora_data.json").read_text(encoding="utf-8"))
    assert set(en) == set(fr) and all(k.startswith("lora_data.") for k in en)
    assert set(en) <= set(load_locale("en"))
    import re

    used = set()
    for f in (ROOT / "modules/lora_training/data").rglob("*.py"):
        used |= set(re.findall(r'"(lora_data\.[a-z_.]+[a-z_])"', f.read_text(encoding="utf-8")))
    for reason in ("not_image", "unreadable", "empty", "too_small", "duplicate", "near_duplicate", "already_imported"):
        used |= {f"lora_data.skip.{reason}", f"lora_data.reason.{reason}"}
    for reason in ("upscaled", "small_for_bucket", "caption_encoding", "caption_unreadable"):
        used.add(f"lora_data.warn.{reason}")
    assert used - set(en) == set()


def test_captioner_kind_lists_its_models(bare_ctx) -> None:
    from tests.lora_training.tiny_wd14 import make_tiny_wd14

    make_tiny_wd14(bare_ctx.path("CAPTIONERS_DIR") / "my-tagger")
    choices, value = ui.model_choices(bare_ctx, "wd14")
    assert choices[0] == "my-tagger" and value == "my-tagger" and "SmilingWolf/wd-eva02-large-tagger-v3" in choices
    assert "my-tagger" not in ui.model_choices(bare_ctx, "florence")[0]
    model, tagger, sentence, florence, vlm, tags = ui.on_kind(bare_ctx, "combined")
    assert tagger["visible"] and sentence["visible"] and tags["visible"] and not florence["visible"]
    assert tagger["value"] == "my-tagger" and "my-tagger" not in model["choices"]
    model, tagger, sentence, florence, vlm, tags = ui.on_kind(bare_ctx, "vlm")
    assert vlm["visible"] and not tags["visible"] and model["value"] == "Qwen/Qwen2.5-VL-3B-Instruct"


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
