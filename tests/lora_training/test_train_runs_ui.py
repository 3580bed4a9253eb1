"""The LoRA tab's Resume replays the stopped run's own parameters, whatever the form holds
(issue 18.2); a run's settings fill the form; a config round-trips as JSON and a bad one is
one clear message."""
from __future__ import annotations

import json
import time

import pytest
from pydantic import ValidationError

from core.errors import StudioError, user_message
from tests.lora_training.helpers import data


def _wait_metrics(ctx, job_id, n, timeout=240):
    deadline = time.time() + timeout
    while len(ctx.store.metrics(job_id, "loss")) < n:
        assert time.time() < deadline, ctx.store.logs(job_id)[-5:]
        time.sleep(0.2)


def test_resume_replays_the_run_and_configs_round_trip(ctx, tiny_sdxl, tmp_path):
    import gradio as gr

    from core.i18n import gradio_i18n
    from modules.lora_training import MODULE, ui, ui_runs

    ctx.i18n = gradio_i18n()
    with gr.Blocks():
        MODULE.build_ui(ctx)  # the tab builds with the runs/config row

    with pytest.raises(StudioError) as e:
        ui_runs.pick_run(ctx, None, None, "p")
    assert e.value.key == "lora.runs.none_to_resume"

    data(ctx, n=2)
    own = {"project": "p", "output_name": "mine", "base_model": str(tiny_sdxl), "resolution": 64, "rank": 4,
           "alpha": 4.0, "max_steps": 400, "save_every_epochs": 0, "min_snr_gamma": 0.0, "lr_unet": 1e-3}
    first = ctx.jobs.submit("lora.train", own)
    _wait_metrics(ctx, first, 2)
    ctx.jobs.stop(first)
    row = ctx.jobs.wait(first, timeout=240)
    assert row["status"] == "stopped"
    last = ctx.store.metrics(first, "loss")[-1]["step"]

    # after a reload the form is at its defaults (1024 px, rank 16): Resume does not read it
    new = ui_runs.resume_run(ctx, None, None, "p")
    new_row = ctx.store.get_job(new)
    assert new_row["parent_id"] == first  # the curves join
    assert {k: v for k, v in new_row["params"].items() if k != "resume_from"} == \
        {k: v for k, v in row["params"].items() if k != "resume_from"}
    assert new_row["params"]["resume_from"] == row["result"]["state"]
    _wait_metrics(ctx, new, 1)
    ctx.jobs.stop(new)
    assert ctx.jobs.wait(new, timeout=240)["status"] == "stopped"
    assert ctx.store.metrics(new, "loss")[0]["step"] == last + 1  # continued, not restarted
    # the run picked in the list wins over the project's newest
    assert ui_runs.pick_run(ctx, first, new, "p") == first
    labels = [label for label, _ in ui_runs.run_choices(ctx)]
    assert len(labels) == 2 and all("mine" in s and "rank 4" in s for s in labels)

    # "load settings of run X": the form gets the run's values, in form order
    values, kept = ui_runs.form_values(ui_runs.settings_of_run(ctx, first), ui.FIELDS)
    names = ui_runs.form_names(ui.FIELDS)
    got = dict(zip(names, values))
    assert got["project"] == "p" and got["resolution"] == 64 and got["rank"] == 4 and got["output_name"] == "mine"
    assert kept == {}  # lr_unet and min_snr_gamma have widgets; nothing to carry
    assert ui.collect(got["project"], got["trigger_word"], got["resolution"], values[3:], kept)["rank"] == 4

    # config JSON: save -> load gives the same settings; fields the form lacks are kept
    cfg = {**own, "weight_decay": 0.05, "resume_from": "latest"}
    path = ui_runs.write_config(cfg)
    saved = json.loads(open(path, encoding="utf-8").read())
    assert saved["rank"] == 4 and saved["weight_decay"] == 0.05 and "resume_from" not in saved
    loaded = ui_runs.read_config(path)
    assert loaded == saved | {"resume_from": ""}
    values, kept = ui_runs.form_values(loaded, ui.FIELDS)
    assert kept == {"weight_decay": 0.05}
    assert ui.collect("p", "", 64, values[3:], kept)["weight_decay"] == 0.05

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**own, "network_dimm": 8}), encoding="utf-8")
    with pytest.raises(ValidationError) as ve:
        ui_runs.read_config(bad)
    assert "network_dimm" in user_message(ve.value, ctx.t)
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(StudioError) as e:
        ui_runs.read_config(bad)
    assert e.value.key == "lora.config.not_object"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(StudioError) as e:
        ui_runs.read_config(bad)
    assert e.value.key == "lora.config.unreadable"


def test_a_run_on_the_default_base_loads_with_that_base_shown():
    """Loading the settings of a run that left the base empty (the configured default) fills
    the base field with that default, not with an empty text; an explicit base is kept."""
    from modules.lora_training import ui, ui_runs

    names = ui_runs.form_names(ui.FIELDS)
    for params, want in (({"project": "p"}, "stabilityai/stable-diffusion-xl-base-1.0"),
                         ({"project": "p", "base_model": "/m/own.safetensors"}, "/m/own.safetensors")):
        values, kept = ui_runs.form_values(params, ui.FIELDS, "stabilityai/stable-diffusion-xl-base-1.0")
        assert dict(zip(names, values))["base_model"] == want and "base_model" not in kept
    values, _ = ui_runs.form_values({"project": "p"}, ui.FIELDS)
    assert dict(zip(names, values))["base_model"] == ""  # no default configured: still empty

