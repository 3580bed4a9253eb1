"""'Try it' from a LoRA run: the lab reads the run from the store (params + artifacts), finds
its kohya step files, and reads the trainer's real output file with every module matched."""
from __future__ import annotations

import time

import pytest

from core.errors import StudioError
from modules.lora_lab.runs import run_info, step_files
from tests.lora_lab.helpers import strong_lora


def _record_run(ctx, kind: str, params: dict, loras: list) -> str:
    job_id = f"run-{kind}-{time.time_ns()}"
    ctx.store.create_job(job_id, kind, params)
    ctx.store.write_events([("artifact", job_id, time.time(), str(p), "lora") for p in loras])
    ctx.store.set_status(job_id, "stopped")
    return job_id


def test_run_info_from_stored_run(ctx, tiny_sdxl):
    folder = ctx.path("LORAS_DIR")
    final = strong_lora(folder, "mine")
    steps = [strong_lora(folder, f"mine-{n:06d}", seed=n) for n in (1000, 500, 1500)]
    strong_lora(folder, "mine-extra")  # not a step file
    strong_lora(folder, "minex-000100")  # another run's name
    assert [p.name for p in step_files(folder, "mine")] == [
        "mine-000500.safetensors", "mine-001000.safetensors", "mine-001500.safetensors"]
    train = {"project": "mine", "output_name": "", "base_model": str(tiny_sdxl), "trigger_word": "sks",
             "sample_prompts": ["sks, a red cat", "sks, a dog"]}
    job_id = _record_run(ctx, "lora.prepare_and_train", {"train": train, "source_dir": ""}, [final])
    info = run_info(ctx, job_id)
    assert info.base_model == str(tiny_sdxl) and info.trigger == "sks"
    assert info.prompts == ["sks, a red cat", "sks, a dog"] and info.lora == str(final)
    assert info.checkpoints == [str(p) for p in sorted(steps)] + [str(final)]
    # the UI fill: rows = checkpoints, prompts = sample prompts, the final LoRA at strength 1
    from modules.lora_lab.ui import fill_from_run

    out = fill_from_run(ctx, job_id)
    assert out[0] == job_id and out[2] == "sks, a red cat" and out[3] == f"{final} 1.0"
    assert out[5].splitlines() == info.checkpoints


def test_run_info_refuses_what_is_not_a_lora_run(ctx):
    with pytest.raises(StudioError) as e:
        run_info(ctx, "no-such-job")
    assert e.value.key == "lab.run_unknown"
    other = _record_run(ctx, "sr.upscale", {"model": "x", "inputs": ["y"]}, [])
    with pytest.raises(StudioError) as e:
        run_info(ctx, other)
    assert e.value.key == "lab.not_a_lora_run"
    empty = _record_run(ctx, "lora.train", {"project": "ghost", "base_model": "b"}, [])
    with pytest.raises(StudioError) as e:
        run_info(ctx, empty)
    assert e.value.key == "lab.run_no_lora"


@pytest.mark.slow
def test_trained_lora_is_read_with_every_module_matched(ctx, tiny_sdxl):
    """The trainer's real kohya file (UNet + both text encoders) maps onto the pipeline entirely."""
    from diffusers import StableDiffusionXLPipeline

    from core.lora_apply import LoraPatcher
    from core.lora_file import read_lora
    from tests.lora_training.helpers import data

    data(ctx, project="mine", n=2)
    job_id = ctx.jobs.submit("lora.train", {"project": "mine", "base_model": str(tiny_sdxl), "resolution": 64,
                                            "rank": 4, "alpha": 4, "max_steps": 2, "save_every_epochs": 0,
                                            "train_text_encoder": True, "trigger_word": "sks",
                                            "sample_prompts": ["sks cat"]})
    row = ctx.jobs.wait(job_id, timeout=300)
    assert row["status"] == "completed", row["error"]
    info = run_info(ctx, job_id)
    assert info.prompts == ["sks cat"] and info.trigger == "sks" and info.checkpoints[-1] == info.lora
    lora = read_lora(info.lora)
    parts = {name.split("_")[1] for name in lora.modules}
    assert parts == {"unet", "te1", "te2"} and lora.networks == ["lora"]
    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl))
    patcher = LoraPatcher(pipe)
    report = patcher.apply([(lora, 1.0)])
    assert report.unmatched == [] and report.applied == len(lora.modules)
    patcher.restore()
