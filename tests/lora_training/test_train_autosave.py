"""Time-based state saves (issue 12 point 8, issue 18 point 8): with a fake clock, a state is
written every `save_every_minutes` of training; the log and the job progress say when; a run
killed after a timed save resumes from it and ends where an uninterrupted run ends."""
from __future__ import annotations

import pytest
import torch

from tests.lora_training.helpers import adapter, data, params


class FakeClock:
    """Minutes of 'training' advance only when the test says (no sleeping)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Killed(BaseException):
    """Stands for SIGKILL: nothing runs after it (no stop handler, no final save)."""


def _job(tmp_path, name, clock, minutes_per_step=3.0, kill_at=None):
    from core.jobs import ConsoleJob

    class Job(ConsoleJob):
        def metric(self, step: int, **values: float) -> None:
            super().metric(step, **values)
            if "loss" in values:  # once per optimizer step, before the trainer's save checks
                clock.t += minutes_per_step * 60
                if kill_at is not None and step == kill_at:
                    raise Killed()

    return Job("lora.train", workdir=tmp_path / name, verbose=False)


@pytest.fixture
def clock(monkeypatch):
    from modules.lora_training.train import autosave

    c = FakeClock()
    monkeypatch.setattr(autosave, "now", c)
    return c


def _states(ctx, project):
    root = ctx.path("LORA_PROJECTS_DIR") / project / "checkpoints"
    return sorted(p.name for p in root.rglob("step_*") if p.is_dir() and not p.name.startswith("."))


def test_defaults_are_time_based():
    from modules.lora_training.train.config import TrainParams

    d = TrainParams()
    assert d.save_every_minutes == 10 and d.save_every_epochs == 0 and d.save_every_steps == 0


def test_a_state_every_n_minutes_and_the_ui_says_when(ctx, tiny_sdxl, tmp_path, clock):
    from modules.lora_training.train.trainer import train

    data(ctx, project="t", n=2)
    job = _job(tmp_path, "j", clock)
    res = train(job, params(tiny_sdxl, project="t", max_steps=8, save_every_minutes=10, keep_last=10), ctx)
    assert res["steps"] == 8
    # 3 min a step: 12 min at step 4 -> timed save; 12 more at step 8 = the end (final save)
    assert _states(ctx, "t") == ["step_0000004", "step_0000008"]
    logs = [e[-1] for e in job.events if e[0] == "log"]
    assert any("12 min" in m for m in logs), logs
    assert any("step 4" in m and "step_0000004" in m for m in logs)
    descs = {d.split(" - ")[0]: d for d in (e[-1] for e in job.events if e[0] == "progress") if d.startswith("Step")}
    assert "last state saved" not in descs["Step 4/8"]  # the save comes after step 4's progress
    assert "last state saved: step 4 at " in descs["Step 5/8"] and "step 4" in descs["Step 8/8"], descs

    from modules.lora_training.ui import last_state_markdown

    text = last_state_markdown(ctx, "t")
    assert "step 8" in text and "t" in text
    assert "No saved training state" in last_state_markdown(ctx, "nothing_here")
    assert last_state_markdown(ctx, "") == last_state_markdown(ctx, "  ") == ""  # no project chosen yet


def test_zero_minutes_turns_timed_saves_off(ctx, tiny_sdxl, tmp_path, clock):
    from modules.lora_training.train.trainer import train

    data(ctx, project="z", n=2)
    train(_job(tmp_path, "j", clock, minutes_per_step=60), params(tiny_sdxl, project="z", max_steps=4,
                                                                  save_every_minutes=0), ctx)
    assert _states(ctx, "z") == ["step_0000004"]  # only the final state


@pytest.mark.slow
def test_kill_after_a_timed_save_resumes_from_it(ctx, tiny_sdxl, tmp_path, clock):
    from modules.lora_training.train.trainer import train

    data(ctx, project="full", n=3)
    data(ctx, project="k", n=3)
    kw = dict(max_steps=8, save_every_minutes=10, keep_last=10, dropout=0.1, lr_scheduler="cosine")
    full = train(_job(tmp_path, "full", clock), params(tiny_sdxl, project="full", **kw), ctx)
    with pytest.raises(Killed):
        train(_job(tmp_path, "k1", clock, kill_at=6), params(tiny_sdxl, project="k", **kw), ctx)
    assert _states(ctx, "k") == ["step_0000004"]  # steps 5 and 6 lost, no more
    job = _job(tmp_path, "k2", clock)
    resumed = train(job, params(tiny_sdxl, project="k", resume_from="latest", **kw), ctx)
    logs = [e[-1] for e in job.events if e[0] == "log"]
    assert any("step_0000004" in m and "Resumed" in m for m in logs), logs
    assert resumed["steps"] == 8
    a, b = adapter(full["state"]), adapter(resumed["state"])
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_rest_validates_save_every_minutes(ctx):
    from fastapi.testclient import TestClient

    from core.api import create_api

    client = TestClient(create_api(ctx))
    r = client.post("/jobs", json={"kind": "lora.train", "params": {"project": "p", "save_every_minutes": -1}})
    assert r.status_code == 422 and "save_every_minutes" in str(r.json())
    ok = client.post("/jobs", json={"kind": "lora.train", "params": {"project": "p", "save_every_minutes": 2.5}})
    assert ok.status_code == 201
    assert client.get(f"/jobs/{ok.json()['id']}").json()["params"]["save_every_minutes"] == 2.5
