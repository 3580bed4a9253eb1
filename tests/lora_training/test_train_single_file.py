"""Training on a single-file SDXL checkpoint (the way A1111/Forge save one) through the CLI,
REST and the UI handler gives the same LoRA as training on the diffusers folder of the same
weights with the same seed, and that LoRA loads back in diffusers."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.lora_training.helpers import data
from tests.lora_training.sgm_file import folder_to_sgm

TRAIN = {"resolution": 64, "rank": 4, "alpha": 4.0, "max_steps": 3, "batch_size": 1, "lr_unet": 1e-3,
         "save_every_epochs": 0, "min_snr_gamma": 5.0, "seed": 7}


def _same_lora(a, b, rel=0.02) -> None:
    """Equal within fp noise: the loaded weights are bit-identical, but the folder's tensors are
    memory-mapped at unaligned addresses, which changes the SIMD rounding of a few matmuls
    (~1e-7); Adam turns that into <1% of a LoRA weight after a few steps. Another seed or another
    base differs by ~100%."""
    sa, sb = load_file(str(a)), load_file(str(b))
    assert sa.keys() == sb.keys() and len(sa) > 10
    moved = 0
    for k, v in sa.items():
        diff = float((v.float() - sb[k].float()).abs().max())
        assert diff <= rel * float(v.float().abs().max()) + 1e-6, (k, diff)
        moved += k.endswith("lora_up.weight") and float(v.float().abs().max()) > 0
    assert moved > 0  # the runs trained something (up weights start at zero)


@pytest.mark.slow
def test_cli_single_file_equals_folder_and_reloads_in_diffusers(studio_home, tiny_sdxl, capsys):
    from core.context import build_context
    from modules.lora_training.__main__ import main

    c = build_context(studio_home, load_modules=False)
    data(c, project="pf", n=2)
    data(c, project="pc", n=2)
    ckpt = folder_to_sgm(tiny_sdxl, c.path("CHECKPOINTS_DIR") / "tiny_a1111.safetensors", dtype="fp32")
    loras = c.path("LORAS_DIR")
    c.close()
    for project, base in (("pf", str(tiny_sdxl)), ("pc", ckpt.name)):  # the file by its name in models/checkpoints
        cfg = studio_home / f"{project}.json"
        cfg.write_text(json.dumps({**TRAIN, "project": project, "base_model": base}), encoding="utf-8")
        assert main(["train", "--config", str(cfg), "--home", str(studio_home)]) == 0, capsys.readouterr().err
        assert json.loads(capsys.readouterr().out)["steps"] == 3
    _same_lora(loras / "pf.safetensors", loras / "pc.safetensors")

    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl))
    x, t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([500])
    cond = dict(encoder_hidden_states=torch.ones(1, 77, 64), added_cond_kwargs={
        "text_embeds": torch.ones(1, 32), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])})
    with torch.no_grad():
        out0 = pipe.unet(x, t, **cond).sample
        pipe.load_lora_weights(str(loras / "pc.safetensors"))
        out1 = pipe.unet(x, t, **cond).sample
    n_file = sum(k.endswith(".lora_down.weight") for k in load_file(str(loras / "pc.safetensors")))
    n_loaded = sum(".lora_A." in k for k, _ in pipe.unet.named_parameters())
    assert n_loaded == n_file  # every module of the file was loaded
    assert not torch.allclose(out0, out1)


@pytest.mark.slow
def test_rest_and_ui_handler_single_file_equal_folder(ctx, tiny_sdxl):
    from fastapi.testclient import TestClient

    from core.api import create_api
    from modules.lora_training import ui

    for project in ("f", "r", "u"):
        data(ctx, project=project, n=2)
    ckpt = folder_to_sgm(tiny_sdxl, ctx.path("CHECKPOINTS_DIR") / "tiny_a1111.safetensors", dtype="fp32")
    folder_id = ctx.jobs.submit("lora.train", {**TRAIN, "project": "f", "base_model": str(tiny_sdxl)})
    client = TestClient(create_api(ctx))
    r = client.post("/jobs", json={"kind": "lora.train", "start": True,
                                   "params": {**TRAIN, "project": "r", "base_model": str(ckpt)}})
    assert r.status_code == 201, r.text
    # UI: the checkpoints list shows the file as a trainable SDXL base; the base dropdown offers it
    rows = ui.list_checkpoints(ctx)
    assert rows[0][0] == ckpt.name and rows[0][2] == "✓" and rows[0][5] == "✓"
    assert str(ckpt) in ui.base_choices(ctx)
    from modules.lora_training.train.config import TrainParams

    d = TrainParams()
    values = [getattr(d, f) for f in ui.FIELDS]
    for k, v in {**TRAIN, "base_model": str(ckpt), "sample_prompts": "", "init_lora": None}.items():
        if k in ui.FIELDS:
            values[ui.FIELDS.index(k)] = v
    ui_id = ui.submit(ctx, "lora.train", ui.collect("u", "", 64, values))
    for job_id in (folder_id, r.json()["id"], ui_id):
        row = ctx.jobs.wait(job_id, timeout=600)
        assert row["status"] == "completed", ctx.store.logs(job_id)[-5:]
    loras = ctx.path("LORAS_DIR")
    _same_lora(loras / "f.safetensors", loras / "r.safetensors")
    _same_lora(loras / "f.safetensors", loras / "u.safetensors")
    # a damaged file as the base: the REST answer names it, and says what is wrong
    bad = ctx.path("CHECKPOINTS_DIR") / "broken.safetensors"
    bad.write_bytes(ckpt.read_bytes()[:5000])
    r = client.post("/jobs", json={"kind": "lora.train", "start": True,
                                   "params": {**TRAIN, "project": "r", "output_name": "r_bad",  # r.safetensors exists now
                                              "base_model": str(bad)}})
    row = ctx.jobs.wait(r.json()["id"], timeout=120)
    assert row["status"] == "failed" and "broken.safetensors" in row["error"] and "damaged" in row["error"]
    assert "config" not in row["error"].lower()
