"""Runs in one project keep their own states (issue 18.1): per-run folders, keep-last-K per
run, "latest" of the run's own output name and settings, a state saved with other settings
refused with the list of differences before any weights are loaded."""
from __future__ import annotations

import pytest

from core.errors import StudioError
from core.i18n import Translator
from tests.lora_training.helpers import adapter, data, params, quiet_job


def test_two_runs_one_project_keep_their_states(ctx, tiny_sdxl, tmp_path):
    from modules.lora_training.train import checkpoint as ck
    from modules.lora_training.train.trainer import train

    data(ctx, n=2)
    root = ctx.path("LORA_PROJECTS_DIR") / "p" / "checkpoints"
    kw = dict(max_steps=3, save_every_steps=1, keep_last=2, output_name="same")
    r4 = train(quiet_job(tmp_path / "a"), params(tiny_sdxl, rank=4, alpha=4.0, **kw), ctx)
    # the same output name again: allowed with overwrite (the file is replaced, the states are not)
    r8 = train(quiet_job(tmp_path / "b"), params(tiny_sdxl, rank=8, alpha=8.0, overwrite=True, **kw), ctx)
    runs = sorted(d for d in root.iterdir() if d.is_dir())
    assert len(runs) == 2, "each run owns a folder"
    for run in runs:  # keep-last-2 pruned inside each run only: the second run kept its states
        assert [s.name for s in ck.list_states(run)] == ["step_0000002", "step_0000003"]
    assert {r4["state"], r8["state"]} == {str(r / "step_0000003") for r in runs}

    # "latest" = the newest state whose settings match: rank 4 gets the first run's, not the newest
    wanted4 = ck.settings_of(params(tiny_sdxl, rank=4, alpha=4.0, **kw).model_dump(mode="json"), str(tiny_sdxl))
    assert ck.find_state("latest", root, "same", wanted4) == ck.Path(r4["state"])
    resumed = train(quiet_job(tmp_path / "c"), params(tiny_sdxl, rank=4, alpha=4.0, resume_from="latest",
                                                      **{**kw, "max_steps": 5}), ctx)
    assert resumed["steps"] == 5
    assert ck.Path(resumed["state"]).parent == ck.Path(r4["state"]).parent  # continued in its run folder
    a = adapter(resumed["state"])
    assert {v.shape[0] for k, v in a.items() if "lora_A" in k} == {4}
    assert [s.name for s in ck.list_states(ck.Path(r4["state"]).parent)] == ["step_0000004", "step_0000005"]
    assert [s.name for s in ck.list_states(ck.Path(r8["state"]).parent)] == ["step_0000002", "step_0000003"]

    # another output name in the project: none of these states is "its" latest
    with pytest.raises(StudioError) as e:
        train(quiet_job(tmp_path / "d"), params(tiny_sdxl, resume_from="latest", output_name="other"), ctx)
    assert e.value.key == "lora.no_state"


def test_resume_with_other_settings_is_refused_with_the_differences(ctx, tiny_sdxl, tmp_path, monkeypatch):
    from modules.lora_training.train import session
    from modules.lora_training.train.trainer import train

    data(ctx, n=2)
    first = train(quiet_job(tmp_path / "a"), params(tiny_sdxl, max_steps=2, rank=4, alpha=4.0), ctx)

    def no_load(*a, **kw):  # the refusal comes before any model is loaded
        raise AssertionError("models loaded for a state that cannot be continued")

    monkeypatch.setattr(session, "load_models", no_load)
    for resume_from in ("latest", first["state"]):
        with pytest.raises(StudioError) as e:
            train(quiet_job(tmp_path / "b"), params(tiny_sdxl, rank=8, alpha=4.0, target="attn_mlp",
                                                    resolution=128, resume_from=resume_from), ctx)
        assert e.value.key == "lora.state_settings"
        for lang in ("en", "fr"):
            msg = Translator(lang)(e.value.key, **e.value.params)
            assert "rank: 4 → 8" in msg and "target: attn → attn_mlp" in msg and "resolution: 64 → 128" in msg
            assert "alpha" not in msg and "lora_A" not in msg and "size mismatch" not in msg
