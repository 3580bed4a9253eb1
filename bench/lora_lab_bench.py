"""Benchmark: a LoRA Lab grid job vs a fresh diffusers pipeline per cell, same model, same run.

- ours: one `lab.grid` job through the real job runner: the base is loaded once by the
  model manager, each cell patches the LoRA into the weights (and restores them), the
  strength-0 column is rendered once per prompt;
- reference: the plain diffusers way of making the same grid: for every cell,
  `StableDiffusionXLPipeline.from_pretrained`, `load_lora_weights` + `fuse_lora(lora_scale=s)`
  (no LoRA for strength 0), the same scheduler, seed and size, then the image.

Both render the same cells from the same kohya LoRA files (hand-built, rank 4, on UNet
attention layers); the bench also reports how far our cells are from the reference's
(pixel difference, 0-255). Tiny SDXL-shaped model (tests/lora_training/tiny_sdxl.py), so base
loading weighs more than it would at real size relative to denoising; `--base` takes a real
SDXL folder. Writes bench/results/lora_lab.json and docs/bench/lora_lab.md.

    python bench/lora_lab_bench.py [--rows 3] [--strengths 0,0.5,1] [--steps 8] [--size 64] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def ours(home: Path, base: str, loras: list[Path], a, loads: list) -> dict:
    import core.sdxl as sdxl
    from core.context import build_context

    real = sdxl.load_pipeline
    sdxl.load_pipeline = lambda b, c, d=None: (loads.append(b.ref), real(b, c, d))[1]
    ctx = build_context(home / "studio", overrides={"PRECISION": "fp32"})
    try:
        w0, c0 = _clock()
        job_id = ctx.jobs.submit("lab.grid", {"base_model": base, "prompts": [a.prompt], "rows": [str(p) for p in loras],
                                              "strengths": a.strengths, "steps": a.steps, "width": a.size,
                                              "height": a.size, "sampler": "Euler", "seed": 11, "cfg": 5.0,
                                              "preview_every": 0})
        row = ctx.jobs.wait(job_id, timeout=3600)
        w1, c1 = _clock()
        assert row["status"] == "completed", row["error"]
        cells = {Path(x["path"]).name: x["path"] for x in ctx.store.artifacts(job_id, "cell")}
    finally:
        ctx.close()
        sdxl.load_pipeline = real
    return {"wall_s": w1 - w0, "cpu_s": c1 - c0, "cells": cells, "base_loads": len(loads)}


def reference(base: str, loras: list[Path], a) -> dict:
    import numpy as np
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    images, loads, load_s = {}, 0, 0.0
    w0, c0 = _clock()
    for ri, lora in enumerate(loras):
        for ci, s in enumerate(a.strengths):
            t0 = time.perf_counter()
            pipe = StableDiffusionXLPipeline.from_pretrained(base, torch_dtype=torch.float32).to(a.device)
            loads += 1
            pipe.set_progress_bar_config(disable=True)
            pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
            if s != 0:
                pipe.load_lora_weights(str(lora))
                pipe.fuse_lora(lora_scale=s)
            load_s += time.perf_counter() - t0
            g = [torch.Generator("cpu").manual_seed(11)]
            im = pipe(prompt=a.prompt, num_inference_steps=a.steps, guidance_scale=5.0, width=a.size, height=a.size,
                      generator=g).images[0]
            images[f"p0_r{ri:02d}_c{ci:02d}.png"] = np.asarray(im, dtype=np.int16)
            del pipe
    w1, c1 = _clock()
    return {"wall_s": w1 - w0, "cpu_s": c1 - c0, "images": images, "base_loads": loads, "load_wall_s": load_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="", help="an SDXL diffusers folder (default: a tiny one built here)")
    ap.add_argument("--rows", type=int, default=3)
    ap.add_argument("--strengths", default="0,0.5,1")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--prompt", default="sks, a red cat sitting on a blue chair")
    a = ap.parse_args()
    a.strengths = [float(x) for x in a.strengths.split(",")]
    import numpy as np
    import torch
    from PIL import Image

    from tests.lora_lab.helpers import strong_lora
    from tests.lora_training.tiny_sdxl import make_tiny_sdxl

    torch.set_num_threads(a.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = a.base or str(make_tiny_sdxl(tmp / "tiny_sdxl"))
        loras = [strong_lora(tmp / "loras", f"run-{(i + 1) * 500:06d}", seed=i, text_encoders=False) for i in range(a.rows)]
        ref = reference(base, loras, a)  # first, so ours does not profit from a warm file cache alone
        mine = ours(tmp, base, loras, a, [])
        diffs = []
        for name, arr in ref["images"].items():
            with Image.open(mine["cells"][name]) as im:
                diffs.append(float(np.abs(np.asarray(im.convert("RGB"), dtype=np.int16) - arr).max()))
    n = len(ref["images"])
    zero = sum(1 for s in a.strengths if s == 0)
    renders = a.rows * (len(a.strengths) - zero) + (1 if zero else 0)
    doc = {"device": a.device, "threads": a.threads, "base": a.base or "tiny SDXL (tests/lora_training/tiny_sdxl.py)",
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}",
           "config": {"rows": a.rows, "strengths": a.strengths, "steps": a.steps, "size": a.size, "cells": n},
           "ours": {k: v for k, v in mine.items() if k != "cells"}, "reference": {k: v for k, v in ref.items()
                                                                                 if k != "images"},
           "max_pixel_diff": max(diffs), "speedup_wall": ref["wall_s"] / mine["wall_s"],
           "speedup_cpu": ref["cpu_s"] / mine["cpu_s"], "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "load_avg_1min": os.getloadavg()[0]}
    out = ROOT / "bench" / "results" / "lora_lab.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    r, o = doc["reference"], doc["ours"]
    md = ["# LoRA Lab benchmark", "",
          f"`python bench/lora_lab_bench.py --rows {a.rows} --strengths {','.join(f'{s:g}' for s in a.strengths)} "
          f"--steps {a.steps} --size {a.size}`: a grid of {a.rows} LoRA checkpoints x {len(a.strengths)} strengths "
          f"({n} cells, one prompt) on {doc['base']}, device `{a.device}`, {a.threads} torch thread(s), fp32, Euler, "
          f"{a.steps} steps at {a.size}x{a.size}. Machine: {doc['machine']}, load average {doc['load_avg_1min']:.1f} "
          f"at the end (shared machine: wall figures are noisy, the CPU-time ratio is steadier). {doc['date']}.", "",
          "**Reference**: a fresh `StableDiffusionXLPipeline.from_pretrained` per cell, `load_lora_weights` + "
          "`fuse_lora(lora_scale=s)` (nothing for strength 0). **Ours**: one `lab.grid` job through the job "
          "runner: base loaded once by the model manager, LoRA deltas patched into the weights and restored "
          "exactly per cell, the strength-0 column rendered once.", "",
          "| way | base loads | wall s | CPU s | s / cell (wall) |", "|---|---|---|---|---|",
          f"| reference (fresh pipeline per cell) | {r['base_loads']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
          f"{r['wall_s'] / n:.2f} |",
          f"| ours (`lab.grid` job) | {o['base_loads']} | {o['wall_s']:.1f} | {o['cpu_s']:.1f} | {o['wall_s'] / n:.2f} |",
          "", f"Speed-up of the grid job: **{doc['speedup_wall']:.1f}x** wall, {doc['speedup_cpu']:.1f}x CPU time. "
          f"Largest pixel difference between our cells and the reference's: {doc['max_pixel_diff']:.0f} / 255 "
          "(same seed, scheduler and LoRA math; the reference merges the LoRA through PEFT).", "",
          f"Of the reference's wall time, {r['load_wall_s']:.1f} s went to loading the pipeline and the LoRA "
          f"{r['base_loads']} times ({r['load_wall_s'] / r['base_loads']:.2f} s each for this tiny model); the rest "
          f"is denoising, where ours also renders the strength-0 column once instead of once per row ({renders} "
          f"renders for {n} cells). The load is what the grid job saves per cell: with a real "
          "SDXL base (about 7 GB) a load takes seconds to tens of seconds, so the gap grows with the model; "
          "not measured here. No GPU was lent for this work: no GPU figures; `--device cuda --base <SDXL "
          "folder>` adds them.", ""]
    (ROOT / "docs" / "bench").mkdir(parents=True, exist_ok=True)
    (ROOT / "docs" / "bench" / "lora_lab.md").write_text("\n".join(md), encoding="utf-8")
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
