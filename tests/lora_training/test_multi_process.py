"""Several processes through accelerate on CPU (gloo): `ACCELERATE_USE_CPU=true accelerate launch
--multi_gpu --num_processes 2` (torchrun launcher). Note: in accelerate 1.15 `--cpu
--num_processes 2` starts ONE process unless an MPI hostfile is given (its CPU multi-process
path is mpirun), so the torchrun launcher with the CPU switch is what runs 2 gloo processes.

2 processes x batch 1, stopped with the stop file then resumed with 2 processes, must end
with the LoRA of 1 process x batch 2 trained straight to the same step (fp tolerance); only
rank 0 writes the LoRA, the states and the result, and logs once.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from tests.lora_training.helpers import adapter, data, params, quiet_job

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

KW = dict(max_steps=1000, batch_size=1, lr_scheduler="constant", save_every_epochs=0, keep_last=5, dropout=0.0,
          min_snr_gamma=5.0, noise_offset=0.05)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(cfg: Path, home: Path, tmp: Path, *extra: str, stop_after: int | None = None) -> tuple[dict, str]:
    """Run the CLI under accelerate with 2 CPU processes; touch the stop file once step
    `stop_after` is reported. Returns (result JSON, stderr)."""
    stop = tmp / "STOP"
    stop.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_port()),
           "-m", "modules.lora_training", "train", "--config", str(cfg), "--home", str(home),
           "--stop-file", str(stop), *extra]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    out_f, err_f = tmp / "stdout.txt", tmp / "stderr.txt"
    with out_f.open("w") as out, err_f.open("w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, env=env)
        deadline = time.time() + 600
        while proc.poll() is None and time.time() < deadline:
            if stop_after is not None and not stop.exists():
                done = [int(m) for m in re.findall(r" (\d+)/1000$", err_f.read_text(), re.M)]
                if done and max(done) >= stop_after:
                    stop.touch()
            time.sleep(0.2)
        if proc.poll() is None:
            proc.kill()
            pytest.fail("accelerate launch did not finish:\n" + err_f.read_text()[-3000:])
    stderr = err_f.read_text()
    assert proc.returncode == 0, stderr[-4000:]
    return json.loads(out_f.read_text()), stderr  # one JSON document: rank 0 alone printed


def test_two_processes_match_one_process_with_the_global_batch(studio_home, tiny_sdxl, tmp_path):
    from core.context import build_context
    from modules.lora_training.train.trainer import train

    home = studio_home
    ctx = build_context(home, load_modules=False)
    try:  # closed before the launches: one studio instance per data folder (core.instance)
        data(ctx, project="multi", n=4)
        data(ctx, project="single", n=4)
        lora_dir = ctx.path("LORAS_DIR")
        ckpts = ctx.path("LORA_PROJECTS_DIR") / "multi" / "checkpoints"
        store_file = ctx.path("DATA_DIR") / "studio.sqlite3"
    finally:
        ctx.close()
    cfg = tmp_path / "multi.json"
    cfg.write_text(params(tiny_sdxl, project="multi", **KW).model_dump_json(), encoding="utf-8")

    # 1) 2 processes x batch 1, stopped with the stop file after a few steps
    part, err = _launch(cfg, home, tmp_path, stop_after=2)
    k = part["steps"]
    assert part["stopped"] and 2 <= k < 1000
    assert err.count("LoRA saved:") == 1 and err.count("Stopped at step") == 1  # rank 0 alone logs
    assert err.count("Distributed training on 2 processes") == 2  # ... although both ran
    runs = list(ckpts.iterdir())  # the run's own states folder (issue 18.1), written by rank 0 only
    assert len(runs) == 1 and sorted(p.name for p in runs[0].iterdir()) == [f"step_{k:07d}"]  # no temp folder
    assert [p.name for p in lora_dir.iterdir() if p.name.startswith("multi")] == ["multi.safetensors"]

    # 2) resumed with 2 processes, 2 more steps
    end = k + 2
    res, err = _launch(cfg, home, tmp_path, "--set", "resume_from=latest", "--set", f"max_steps={end}")
    assert res["steps"] == end and not res["stopped"]
    assert err.count(f"at step {k} ") == 1 and err.count("Training finished") == 1
    assert list(ckpts.iterdir()) == runs  # the resumed run goes on in the same folder
    assert sorted(p.name for p in runs[0].iterdir()) == [f"step_{k:07d}", f"step_{end:07d}"]

    assert store_file.is_file()  # rank 0's store; the other rank's throwaway one is gone
    assert not list(Path(tempfile.gettempdir()).glob("cyberbill-rank1-*"))

    # 3) one process x batch 2, straight to the same step
    ctx = build_context(home, load_modules=False)
    try:
        single = train(quiet_job(tmp_path / "j"), params(tiny_sdxl, project="single",
                                                         **{**KW, "batch_size": 2, "max_steps": end}), ctx)
    finally:
        ctx.close()
    assert single["steps"] == end
    a, b = adapter(single["state"]), adapter(res["state"])
    assert a.keys() == b.keys() and len(a) > 0
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-4, rtol=1e-3), (key, float((a[key] - b[key]).abs().max()))
    assert any(float(v.abs().max()) > 0 for key, v in b.items() if "lora_B" in key)  # it learned
    assert abs(single["loss"] - res["loss"]) < 1e-3  # the logged loss is the mean over both ranks
