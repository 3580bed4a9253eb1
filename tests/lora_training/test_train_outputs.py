"""Outputs never overwrite silently (save-every-N `<name>-000002.safetensors`, a new run with an
existing name refuses - trainer, job creation, REST 422, UI asks - unless `overwrite`; a resume
continues) and the kohya `ss_*` metadata carries every option, dataset and bucket."""
from __future__ import annotations

import json

import pytest
from safetensors import safe_open

from core.errors import StudioError
from tests.lora_training.helpers import data, params, quiet_job


def _meta(path) -> dict:
    with safe_open(str(path), "pt") as f:
        return f.metadata()


@pytest.mark.slow
def test_no_silent_overwrite_and_step_files(ctx, tiny_sdxl, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from core.api import create_api
    from modules.lora_training import ui
    from modules.lora_training.train.trainer import train

    data(ctx, n=2)
    loras = ctx.path("LORAS_DIR")
    first = train(quiet_job(tmp_path / "j1"), params(tiny_sdxl, max_steps=4, save_every_steps=2), ctx)
    final = loras / "p.safetensors"
    assert first["lora"] == str(final)
    # step 2 gets its own file (step 4 is the final one); nothing else, no temp leftovers
    assert sorted(p.name for p in loras.iterdir()) == ["p-000002.safetensors", "p.safetensors"]
    assert _meta(loras / "p-000002.safetensors")["ss_steps"] == "2"
    before = final.read_bytes()

    with pytest.raises(StudioError) as err:  # the trainer itself refuses, before loading weights
        train(quiet_job(tmp_path / "j2"), params(tiny_sdxl, max_steps=2, seed=7), ctx)
    assert err.value.key == "lora.output_exists" and err.value.params["path"] == str(final)
    assert final.read_bytes() == before  # untouched

    with pytest.raises(StudioError):  # job creation (CLI, scripts) refuses too
        ctx.jobs.create("lora.train", params(tiny_sdxl, max_steps=2))
    client = TestClient(create_api(ctx))
    r = client.post("/jobs", json={"kind": "lora.train",
                                   "params": {"project": "p", "base_model": str(tiny_sdxl), "resolution": 64}})
    assert r.status_code == 422 and "p.safetensors" in str(r.json()) and "overwrite" in str(r.json())
    ok = client.post("/jobs", json={"kind": "lora.train",
                                    "params": {"project": "p", "output_name": "other", "base_model": str(tiny_sdxl)}})
    assert ok.status_code == 201  # another name is free

    # the UI asks instead of failing, and the confirmation resubmits with overwrite (recorded, not run)
    monkeypatch.setattr(ctx.jobs, "submit", lambda kind, p: ctx.jobs.create(kind, p))
    job_id, box, msg, pending = ui.submit_or_ask(ctx, "lora.train", {"project": "p", "base_model": str(tiny_sdxl)})
    assert box["visible"] is True and "p.safetensors" in msg and pending["kind"] == "lora.train"
    new_id, box, _, pending = ui.confirm_overwrite(ctx, pending)
    assert isinstance(new_id, str) and box["visible"] is False and pending is None
    assert ctx.store.get_job(new_id)["params"]["overwrite"] is True

    # overwrite replaces the file; a resume of the same run continues without asking
    again = train(quiet_job(tmp_path / "j3"), params(tiny_sdxl, max_steps=4, seed=7, overwrite=True), ctx)
    assert again["lora"] == str(final) and final.read_bytes() != before
    cont = train(quiet_job(tmp_path / "j4"), params(tiny_sdxl, max_steps=5, seed=7, resume_from="latest"), ctx)
    assert cont["steps"] == 5 and _meta(final)["ss_steps"] == "5"


@pytest.mark.slow
def test_kohya_metadata_keys_and_values(ctx, tiny_sdxl, tmp_path):
    from modules.lora_training.train.trainer import train
    from tests.lora_training.tiny_sdxl import make_images

    root = ctx.path("LORA_PROJECTS_DIR") / "m" / "data"
    make_images(root / "10_sks", n=2, seed=1)
    make_images(root / "style", n=1, seed=2)
    for i, txt in enumerate(("sks, cat, red", "sks, cat")):
        (root / "10_sks" / f"img_{i:02d}.txt").write_text(txt, encoding="utf-8")
    (root / "style" / "img_00.txt").write_text("watercolor, cat", encoding="utf-8")
    res = train(quiet_job(tmp_path), params(tiny_sdxl, project="m", max_steps=2, network_type="loha",
                                            conv_rank=2, conv_alpha=1.0, trigger_word="sks", alpha=2.0), ctx)
    meta = _meta(res["lora"])
    assert meta["ss_network_module"] == "lycoris.kohya"
    assert json.loads(meta["ss_network_args"]) == {"algo": "loha", "conv_dim": "2", "conv_alpha": "1.0",
                                                   "dropout": "0.0", "preset": "attn"}
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "2.0"
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0" and meta["ss_resolution"] == "(64, 64)"
    # kohya counts repeats: 2 images x 10 + 1 (DreamBoothDataset.num_train_images)
    assert meta["ss_num_train_images"] == "21" and meta["ss_steps"] == "2" and meta["ss_max_train_steps"] == "2"
    assert meta["ss_training_finished"] == "true" and meta["ss_optimizer"].startswith("torch.optim.AdamW")
    assert float(meta["ss_training_started_at"]) <= float(meta["ss_training_finished_at"])
    assert meta["ss_output_name"] == "m" and meta["modelspec.architecture"].endswith("/lycoris")
    freq = json.loads(meta["ss_tag_frequency"])
    assert freq["10_sks"] == {"sks": 2, "cat": 2, "red": 1}
    assert freq["style"] == {"watercolor": 1, "cat": 1}
    dirs = json.loads(meta["ss_dataset_dirs"])
    assert dirs == {"10_sks": {"n_repeats": 10, "img_count": 2}, "style": {"n_repeats": 1, "img_count": 1}}
    buckets = json.loads(meta["ss_bucket_info"])["buckets"]
    assert buckets == {"0": {"resolution": [64, 64], "count": 3}}
    assert json.loads(meta["cyberbill_params"])["network_type"] == "loha"

    # a stop/resume keeps the first start time
    started = meta["ss_training_started_at"]
    cont = train(quiet_job(tmp_path / "r"), params(tiny_sdxl, project="m", max_steps=3, network_type="loha",
                                                   conv_rank=2, conv_alpha=1.0, trigger_word="sks", alpha=2.0,
                                                   resume_from="latest"), ctx)
    assert _meta(cont["lora"])["ss_training_started_at"] == started


def test_network_params_validation():
    from pydantic import ValidationError

    from modules.lora_training.train.config import TrainParams

    assert TrainParams(network_type="lokr", lokr_factor=8).lokr_factor == 8
    for bad in (dict(network_type="ia3"), dict(lokr_factor=1), dict(conv_rank=-1),
                dict(network_type="loha", export_diffusers=True)):
        with pytest.raises(ValidationError):
            TrainParams(**bad)


def test_estimate_counts_each_network_type(tiny_sdxl):
    import torch

    from modules.lora_training.train.config import TrainParams, lora_param_count
    conf = json.loads((tiny_sdxl / "unet" / "config.json").read_text())
    n = {t: lora_param_count(conf, 4, "attn", TrainParams(network_type=t, rank=4, alpha=4.0))
         for t in ("lora", "dora", "locon", "loha")}
    assert n["lora"] == lora_param_count(conf, 4, "attn")  # the closed formula
    assert n["locon"] > n["lora"]  # + the convolutions
    assert n["loha"] == 2 * n["locon"]  # two (out, r) x (r, in*k) pairs per layer
    from diffusers import UNet2DConditionModel

    from modules.lora_training.train.lora_setup import unet_target_modules

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(conf)
    layers = dict(unet.named_modules())
    outs = sum(layers[m].out_features for m in unet_target_modules(unet, "attn"))
    assert n["dora"] == n["lora"] + outs  # + one magnitude per output row
