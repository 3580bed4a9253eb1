"""The same engine through the job runner (REST/UI path), the CLI, and Prepare & Train."""
from __future__ import annotations

import json

import pytest

from tests.lora_training.helpers import data


def test_lora_train_job_kind_through_runner(ctx, tiny_sdxl):
    assert "lora.train" in ctx.jobs.kinds and ctx.jobs.kinds["lora.train"].gpu
    data(ctx, n=2)
    job_id = ctx.jobs.submit("lora.train", {"project": "p", "base_model": str(tiny_sdxl), "resolution": 64,
                                            "rank": 4, "alpha": 4, "max_steps": 3, "save_every_epochs": 0,
                                            "sample_prompts": ["sks cat"], "sample_every_steps": 2,
                                            "sample_inference_steps": 2, "validation_images": 1,
                                            "validation_every_steps": 1})
    row = ctx.jobs.wait(job_id, timeout=240)
    assert row["status"] == "completed", ctx.store.logs(job_id)[-5:]
    assert row["result"]["steps"] == 3 and row["result"]["estimate"]["steps"] == 3
    names = {m["name"] for m in ctx.store.metrics(job_id)}
    assert {"loss", "loss_smooth", "lr", "val_loss"} <= names
    assert [m["step"] for m in ctx.store.metrics(job_id, "val_loss")] == [1, 2, 3]
    kinds = [a["kind"] for a in ctx.store.artifacts(job_id)]
    assert kinds.count("preview") == 1 and "lora" in kinds and "checkpoint" in kinds
    preview = ctx.store.artifacts(job_id, "preview")[0]["path"]
    from PIL import Image

    assert Image.open(preview).size == (64, 64)
    logs = " ".join(r["message"] for r in ctx.store.logs(job_id))
    assert "VRAM" in logs and "LoRA saved" in logs
    # Resume (Jobs tab / REST /resume) continues from the state that job wrote
    new_id = ctx.jobs.resume(job_id)
    row2 = ctx.jobs.wait(new_id, timeout=240)
    assert row2["status"] == "completed" and row2["parent_id"] == job_id
    assert row2["params"]["resume_from"] == row["result"]["state"]
    assert row2["result"]["steps"] == 3  # already done: nothing left, the same LoRA is written again
    # params are validated with a clear field name (REST answers 422 with it)
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="rank"):
        ctx.jobs.submit("lora.train", {"project": "p", "rank": 0})


def test_cli_estimate_and_train(studio_home, tiny_sdxl, capsys):
    from core.context import build_context
    from modules.lora_training.__main__ import main

    c = build_context(studio_home, load_modules=False)
    data(c, n=2)
    c.close()
    cfg = studio_home / "cfg.json"
    cfg.write_text(json.dumps({"project": "p", "base_model": str(tiny_sdxl), "resolution": 64, "rank": 4,
                               "alpha": 4, "epochs": 2, "save_every_epochs": 0}), encoding="utf-8")
    assert main(["estimate", "--config", str(cfg), "--home", str(studio_home)]) == 0
    est = json.loads(capsys.readouterr().out)
    assert est["steps"] == 4 and est["images"] == 2 and est["lora_params"] > 0 and est["vram_gib"] > 0
    assert main(["train", "--config", str(cfg), "--home", str(studio_home), "--set", "max_steps=2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["steps"] == 2 and (studio_home / "models" / "loras" / "p.safetensors").is_file()
    assert main(["train", "--config", str(cfg), "--home", str(studio_home), "--set", "base_model=/nope"]) == 1
    assert "not found" in capsys.readouterr().err


def test_prepare_and_train_uses_the_data_side(ctx, tiny_sdxl, tmp_path):
    pytest.importorskip("modules.lora_training.data")
    from tests.lora_training.tiny_sdxl import make_images

    import shutil

    from tests.lora_training.tiny_florence import make_tiny_florence

    shutil.copytree(make_tiny_florence(tmp_path / "florence"), ctx.path("CAPTIONERS_DIR") / "tiny-florence")
    src = tmp_path / "src"
    make_images(src, n=2, size=300, captions=False)  # imported, cropped and resized by the data side
    before = sorted((p.name, p.stat().st_mtime_ns) for p in src.iterdir())
    job_id = ctx.jobs.submit("lora.prepare_and_train", {
        "source_dir": str(src), "caption": True, "caption_model": "tiny-florence", "caption_task": "<CAPTION>",
        "mode": "crop",
        "train": {"project": "pt", "base_model": str(tiny_sdxl), "resolution": 256, "rank": 4, "alpha": 4,
                  "trigger_word": "sks",
                  "max_steps": 1, "save_every_epochs": 0}})
    row = ctx.jobs.wait(job_id, timeout=240)
    assert row["status"] == "completed", ctx.store.logs(job_id)[-5:]
    assert row["result"]["prepare"]["imported"] == 2 and row["result"]["train"]["steps"] == 1
    caps = sorted((ctx.path("LORA_PROJECTS_DIR") / "pt" / "data").rglob("*.txt"))
    assert len(caps) == 2 and all(c.read_text(encoding="utf-8").startswith("sks") for c in caps)
    assert ctx.models.loaded() == []  # captioner and SDXL both released
    assert sorted((p.name, p.stat().st_mtime_ns) for p in src.iterdir()) == before  # source untouched
