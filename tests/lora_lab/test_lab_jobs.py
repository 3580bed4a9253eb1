"""LoRA Lab jobs on the tiny SDXL, through the real job runner: grid cells, base loaded once,
strength 0 bit-identical to no LoRA, change growing with strength, A1111 metadata, Stop,
bad input, the GPU queue."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from modules.lora_lab import infotext
from tests.lora_lab.helpers import SMALL, count_loads, pixels, run, strong_lora


@pytest.fixture
def loras(ctx):
    folder = ctx.path("LORAS_DIR")
    return {"step": strong_lora(folder, "mine-000002", seed=1), "final": strong_lora(folder, "mine", seed=2)}


def _images(ctx, row):
    return [a["path"] for a in ctx.store.artifacts(row["id"], "image")]


def test_grid_has_every_cell_and_loads_the_base_once(ctx, tiny_sdxl, loras, monkeypatch):
    calls = count_loads(monkeypatch)
    params = dict(SMALL, base_model=str(tiny_sdxl), prompts=["sks, a red cat", "sks, a dog"],
                  rows=[str(loras["step"]), "mine"], strengths=[0, 0.5, 1.0])
    row = run(ctx, "lab.grid", params)
    assert calls == [str(tiny_sdxl)]  # one base load for 2 prompts x 2 rows x 3 strengths
    res = row["result"]
    assert res["rows"] == ["mine @ 2", "mine"] and res["cells"] == 12 and len(res["grids"]) == 2
    cells = [a["path"] for a in ctx.store.artifacts(row["id"], "cell")]
    grids = [a["path"] for a in ctx.store.artifacts(row["id"], "grid")]
    assert len(cells) == 12 and grids == res["grids"]
    from PIL import Image

    with Image.open(grids[0]) as g:
        assert g.width > 3 * 64 and g.height > 2 * 64  # cells + label band and column
        left, top = g.width - 3 * 64, g.height - 2 * 64
        g = np.asarray(g.convert("RGB"), dtype=np.int16)
    # the grid holds the cells where they belong: row 1 (final LoRA), column 2 (strength 1)
    cell = pixels(next(c for c in cells if c.endswith("p0_r01_c02.png")))
    assert np.array_equal(g[top + 64:top + 128, left + 128:left + 192], cell)
    # strength 0 cells are the same base image in every row; strength 1 differs by row
    r0c0, r1c0 = (pixels(next(c for c in cells if c.endswith(f"p0_r0{r}_c00.png"))) for r in (0, 1))
    assert np.array_equal(r0c0, r1c0)
    r0c2 = pixels(next(c for c in cells if c.endswith("p0_r00_c02.png")))
    assert not np.array_equal(r0c2, cell)
    # a second grid job reuses the kept base
    run(ctx, "lab.grid", dict(params, prompts=["sks"], strengths=[1.0]))
    assert len(calls) == 1
    assert any(owner == "lora_lab" for owner, _ in ctx.models.loaded())


@pytest.mark.slow
def test_strength_zero_is_bit_identical_and_change_grows(ctx, tiny_sdxl, loras):
    base = dict(SMALL, base_model=str(tiny_sdxl), prompt="sks, a red cat")
    plain = pixels(_images(ctx, run(ctx, "lab.generate", base))[0])
    zero = pixels(_images(ctx, run(ctx, "lab.generate", dict(base, loras=[{"path": "mine", "strength": 0}])))[0])
    assert np.array_equal(plain, zero)
    diffs = []
    for s in (0.25, 0.5, 1.0):
        img = pixels(_images(ctx, run(ctx, "lab.generate", dict(base, loras=[{"path": "mine", "strength": s}])))[0])
        diffs.append(float(np.abs(img - plain).mean()))
    assert 0 < diffs[0] < diffs[1] < diffs[2], diffs
    # the kept base came back exactly: a plain generation after LoRA jobs is the same image
    again = pixels(_images(ctx, run(ctx, "lab.generate", base))[0])
    assert np.array_equal(plain, again)


def test_png_parameters_round_trip(ctx, tiny_sdxl, loras):
    from core.lora_file import file_hash

    params = dict(SMALL, base_model=str(tiny_sdxl), prompt="sks, a red cat, studio light",
                  negative_prompt="blurry, low quality", sampler="DPM++ 2M Karras", batch=2,
                  loras=[{"path": "mine", "strength": 0.75}])
    row = run(ctx, "lab.generate", params)
    paths = _images(ctx, row)
    assert len(paths) == 2 and row["result"]["seed"] == 7
    text = infotext.read_png(paths[1])
    lines = text.split("\n")
    assert lines[0] == "sks, a red cat, studio light <lora:mine:0.75>"
    assert lines[1] == "Negative prompt: blurry, low quality"
    h = file_hash(loras["final"])
    assert lines[2] == ("Steps: 3, Sampler: DPM++ 2M Karras, CFG scale: 5, Seed: 8, Size: 64x64, "
                        f'Model: sdxl, Lora hashes: "mine: {h}"')
    back = infotext.parse(text)
    assert back["prompt"] == params["prompt"] and back["negative_prompt"] == params["negative_prompt"]
    assert back["loras"] == [("mine", 0.75)] and back["Seed"] == "8" and back["Sampler"] == "DPM++ 2M Karras"
    assert back["Lora hashes"] == f"mine: {h}" and back["Size"] == "64x64" and back["CFG scale"] == "5"
    # the same text is rebuilt from what was parsed: the format is stable both ways
    fields = {k: back[k] for k in ("Steps", "Sampler", "CFG scale", "Seed", "Size", "Model")}
    assert infotext.build(back["prompt"], back["negative_prompt"], fields, [("mine", 0.75, h)]) == text


def test_stop_between_steps_writes_nothing(ctx, tiny_sdxl, loras):
    from core.jobs import ConsoleJob
    from modules.lora_lab.jobs import run_generate
    from modules.lora_lab.params import GenerateParams

    class StopAtFirstStep(ConsoleJob):
        steps_seen = 0

        def progress(self, done, total, desc=""):
            super().progress(done, total, desc)
            self.steps_seen += 1
            self.request_stop()

    job = StopAtFirstStep("lab.generate", workdir=ctx.path("DATA_DIR") / "j", verbose=False)
    p = GenerateParams(**dict(SMALL, steps=20, base_model=str(tiny_sdxl), prompt="a cat",
                              output_dir="stopped", loras=[{"path": "mine", "strength": 1}]))
    res = run_generate(job, p, ctx)
    assert res["stopped"] and res["images"] == []
    assert job.steps_seen == 1  # seen at the first step end: the remaining 19 were skipped
    assert not any((ctx.path("OUTPUTS_DIR") / "stopped").glob("*.png"))


def test_missing_lora_fails_before_loading_the_base(ctx, tiny_sdxl, monkeypatch):
    calls = count_loads(monkeypatch)
    job_id = ctx.jobs.submit("lab.generate", dict(SMALL, base_model=str(tiny_sdxl), prompt="x",
                                                  loras=[{"path": "nope", "strength": 1}]))
    row = ctx.jobs.wait(job_id, 60)
    assert row["status"] == "failed" and "nope" in row["error"] and calls == []


@pytest.mark.slow
def test_generation_waits_in_the_gpu_queue_behind_a_training(ctx, tiny_sdxl):
    gate = threading.Event()
    train = ctx.jobs.submit("lora.fake_train", {}, fn=lambda job: gate.wait(60), gpu=True)
    gen = ctx.jobs.submit("lab.generate", dict(SMALL, base_model=str(tiny_sdxl), prompt="x"))
    for _ in range(500):
        if ctx.jobs.running() == [train]:
            break
        threading.Event().wait(0.02)
    assert ctx.jobs.queue_position(gen) == 1 and ctx.store.get_job(gen)["status"] == "pending"
    gate.set()
    assert ctx.jobs.wait(gen, 120)["status"] == "completed"
    # a training frees what the lab keeps before it loads SDXL: never two copies
    assert any(o == "lora_lab" for o, _ in ctx.models.loaded())
    ctx.models.unload_others("some-training-job")
    assert not any(o == "lora_lab" for o, _ in ctx.models.loaded())


def test_rest_submits_a_grid_and_names_a_bad_field(ctx, tiny_sdxl, loras):
    from fastapi.testclient import TestClient

    from core.api import create_api

    client = TestClient(create_api(ctx))
    r = client.post("/jobs", json={"kind": "lab.grid", "params": {"prompts": ["x"], "rows": ["mine"],
                                                                  "strengths": [0, 9]}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:3] == ["body", "params", "strengths"]
    r = client.post("/jobs", json={"kind": "lab.grid", "params": dict(SMALL, base_model=str(tiny_sdxl), prompts=["sks"],
                                                                      rows=["mine"], strengths=[0, 1]), "start": True})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    row = ctx.jobs.wait(job_id, 120)
    assert row["status"] == "completed" and row["result"]["cells"] == 2
    assert client.get(f"/jobs/{job_id}").json()["status"] == "completed"
