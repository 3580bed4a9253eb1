"""SIGKILL in the middle of real jobs: LoRA training (tiny SDXL) and a folder upscale.

On restart the job shows `interrupted`; training resumes from its last checkpoint and
finishes; no half-written file sits under a final name; the store is intact.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _child(home: Path, kind: str, params: dict) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import sys, time, json; sys.path.insert(0, {str(ROOT)!r})
        import torch; torch.set_num_threads(1)
        from core.context import build_context
        ctx = build_context({str(home)!r})
        jid = ctx.jobs.submit({kind!r}, json.loads({json.dumps(params)!r}))
        print(jid, flush=True)
        time.sleep(600)
    """)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def _wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _restart(home: Path):
    from core.context import build_context

    return build_context(home)


def test_sigkill_during_training_then_resume(tmp_path, tiny_sdxl_path):
    from tests.lora_training.tiny_sdxl import make_images

    home = tmp_path / "home"
    make_images(home / "LoRA_Projects_Internal" / "k" / "data" / "c", n=2, seed=0)
    params = dict(project="k", base_model=str(tiny_sdxl_path), resolution=64, rank=4, alpha=4.0,
                  max_steps=400, batch_size=1, lr_unet=1e-3, save_every_steps=2, save_every_epochs=0,
                  keep_last=2, min_snr_gamma=0.0, sample_every_steps=0)
    proc = _child(home, "lora.train", params)
    jid = proc.stdout.readline().strip()
    ckpts = home / "LoRA_Projects_Internal" / "k" / "checkpoints"
    _wait_for(lambda: any((d / "meta.json").is_file() for d in ckpts.glob("*/*")) if ckpts.is_dir() else False,
              240, "a first checkpoint")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)

    ctx = _restart(home)
    try:
        row = ctx.store.get_job(jid)
        assert row["status"] == "interrupted"
        assert ctx.store._exec("PRAGMA integrity_check").fetchone()["integrity_check"] == "ok"
        # no half-written checkpoint under a final name: every folder there is complete
        for d in ckpts.glob("*/*"):  # <run>/step_*
            if not d.name.startswith("."):
                assert (d / "meta.json").is_file() and (d / "adapter.safetensors").is_file(), d
        # save-every-N files (`k-000002.safetensors`) may exist; the final one must not
        assert not (home / "models" / "loras" / "k.safetensors").exists(), "no final LoRA after a kill"
        new = ctx.jobs.resume(jid)
        assert ctx.store.get_job(new)["params"]["resume_from"] not in ("", None)
        # shorten the rest: stop the resumed run after a few steps, it must save
        _wait_for(lambda: len(ctx.store.metrics(new, "loss")) >= 2, 240, "resumed steps")
        first_resumed = ctx.store.metrics(new, "loss")[0]["step"]
        assert first_resumed > 1, "the resumed run started over instead of continuing"
        ctx.jobs.stop(new)
        done = ctx.jobs.wait(new, timeout=240)
        assert done["status"] == "stopped"
        assert list((home / "models" / "loras").glob("*.safetensors")), "Stop after resume saves a LoRA"
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def tiny_sdxl_path(tmp_path_factory) -> Path:
    from tests.lora_training.tiny_sdxl import make_tiny_sdxl

    return make_tiny_sdxl(tmp_path_factory.mktemp("kill_sdxl") / "sdxl")


def test_sigkill_during_folder_upscale_leaves_only_complete_outputs(tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from core.media import load_image
    from tests.super_resolution.conftest import compact_sd

    home = tmp_path / "home"
    models = home / "models" / "upscalers"
    models.mkdir(parents=True)
    torch.save({"params": compact_sd(nf=16, nc=4)}, models / "tiny_x4.pth")
    src = tmp_path / "photos"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(src / f"img_{i:02d}.png")
    out = home / "outputs" / "out"  # a typed output folder lies under OUTPUTS_DIR
    proc = _child(home, "sr.upscale", {"model": "tiny_x4.pth", "inputs": [str(src)], "output_dir": "out",
                                       "tile": 32})
    jid = proc.stdout.readline().strip()
    # final names only: an image being written sits under a hidden ".img_NN.*.part.png"
    _wait_for(lambda: out.is_dir() and len(list(out.rglob("img_*.png"))) >= 2, 240, "first outputs")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)

    ctx = _restart(home)
    try:
        assert ctx.store.get_job(jid)["status"] == "interrupted"
        finals = sorted(out.rglob("img_*.png"))
        assert 2 <= len(finals) < 40
        for f in finals:  # every file under a final name is a complete, loadable result
            assert load_image(f).size == (512, 384), f
        leftovers = [p for p in out.rglob("*") if p.is_file() and p not in finals]
        assert all(p.name.startswith(".") and ".part." in p.name for p in leftovers), leftovers
        assert sorted(p.name for p in src.iterdir()) == [f"img_{i:02d}.png" for i in range(40)]
    finally:
        ctx.close()
