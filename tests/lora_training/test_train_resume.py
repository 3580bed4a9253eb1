"""Stop saves a LoRA and a state within one step; resume reproduces an uninterrupted run."""
from __future__ import annotations

import threading

import torch

from tests.lora_training.helpers import StopAt, adapter, data, params, quiet_job


def test_stop_then_resume_matches_uninterrupted(ctx, tiny_sdxl, tmp_path):
    from modules.lora_training.train.trainer import train

    data(ctx, project="a", n=3)
    data(ctx, project="b", n=3)
    kw = dict(max_steps=0, epochs=3, grad_accum=2, dropout=0.1, noise_offset=0.05, min_snr_gamma=5.0,
              lr_scheduler="cosine", warmup_steps=1, save_every_epochs=1, keep_last=2)
    # the uninterrupted run also renders samples: they must not shift its RNG (same weights)
    full = train(quiet_job(tmp_path / "j1"), params(tiny_sdxl, project="a", sample_prompts=["sks cat"],
                                                    sample_every_steps=2, sample_inference_steps=2, **kw), ctx)
    assert full["steps"] == 6 and not full["stopped"]
    assert len(list((ctx.path("LORA_PROJECTS_DIR") / "a" / "samples").glob("*.png"))) == 3

    job = StopAt(3, workdir=tmp_path / "j2")
    part = train(job, params(tiny_sdxl, project="b", **kw), ctx)
    assert part["stopped"] and part["steps"] == 3  # seen at the very next check
    lora_b = ctx.path("LORAS_DIR") / "b.safetensors"
    assert lora_b.is_file()
    from safetensors import safe_open

    with safe_open(str(lora_b), "pt") as f:
        assert f.metadata()["ss_training_finished"] == "false" and f.metadata()["ss_steps"] == "3"

    resumed = train(quiet_job(tmp_path / "j3"), params(tiny_sdxl, project="b", resume_from="latest", **kw), ctx)
    assert resumed["steps"] == 6 and not resumed["stopped"]
    a, b = adapter(full["state"]), adapter(resumed["state"])
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert any(float(v.abs().max()) > 0 for k, v in a.items() if "lora_B" in k)  # it learned something
    (run,) = list((ctx.path("LORA_PROJECTS_DIR") / "b" / "checkpoints").iterdir())  # resumed in its run folder
    states = sorted(p.name for p in run.iterdir())
    assert len(states) == 2 and states[-1] == "step_0000006"  # keep-last-K, no temp folders left


def test_stop_from_another_thread_within_one_step(ctx, tiny_sdxl, tmp_path):
    from modules.lora_training.train.trainer import train

    data(ctx, n=2)
    job = quiet_job(tmp_path)
    seen: list[int] = []
    orig = job.metric

    def metric(step, **v):
        orig(step, **v)
        if step == 2 and not seen:
            seen.append(step)
            t = threading.Thread(target=job.request_stop)  # the UI's Stop button, another thread
            t.start()
            t.join()

    job.metric = metric
    res = train(job, params(tiny_sdxl, max_steps=50), ctx)
    assert res["stopped"] and res["steps"] <= seen[0] + 1
    st = torch.load(res["state"] + "/state.pt", weights_only=True)
    assert st["step"] == res["steps"] and st["optimizer"]["state"]
    assert (ctx.path("LORAS_DIR") / "p.safetensors").is_file()
