"""Experiment tracking: MLflow/TensorBoard mirrors, failure-proofing, runs comparison."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.compare import common_metrics, compare_runs, overlay_rows
from core.jobs import ConsoleJob
from core.tracking import Tracker, _Backend, flatten_params


def _job(kind: str = "test.train") -> ConsoleJob:
    return ConsoleJob(kind, verbose=False)


def _warnings(job: ConsoleJob) -> list[str]:
    return [ev[4] for ev in job.events if ev[0] == "log" and ev[3] == "warning"]


def test_flatten_params_nested():
    assert flatten_params({"a": 1, "b": {"c": 2, "d": {"e": "x"}}}) == {"a": 1, "b.c": 2, "b.d.e": "x"}


def test_nothing_enabled_is_silent(bare_ctx):
    job = _job()
    with Tracker.for_job(job, bare_ctx, {"lr": 0.1}) as tr:
        tr.metric(1, loss=0.5)
    assert tr.active == [] and _warnings(job) == []
    assert [ev[4:] for ev in job.events if ev[0] == "metric"] == [("loss", 0.5)]


@pytest.mark.parametrize("file_store", [False, True])
def test_mlflow_records_params_metrics_artifacts(bare_ctx, tmp_path, file_store):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    bare_ctx.config.values["MLFLOW_ENABLED"] = True
    if file_store:
        bare_ctx.config.values["MLFLOW_TRACKING_URI"] = str(tmp_path / "mlruns_files")
    job = _job()
    art = tmp_path / "report.txt"
    art.write_text("hello")
    with Tracker.for_job(job, bare_ctx, {"lr": 0.01, "opt": {"name": "adamw"}}) as tr:
        assert tr.active == ["MLflow"]
        for step in range(5):
            tr.log_metrics(step, loss=1.0 / (step + 1), acc=step / 10)
        tr.log_artifact(art)
        run_id, uri = tr.backends[0].run_id, tr.backends[0].uri
    assert _warnings(job) == []
    if file_store:
        assert uri.startswith("file:") and (tmp_path / "mlruns_files").is_dir()
    else:
        assert (Path(bare_ctx.config.home) / "mlruns" / "mlflow.db").is_file()
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.data.params == {"lr": "0.01", "opt.name": "adamw"}
    assert run.info.status == "FINISHED"
    assert run.data.tags["cyberbill.job_id"] == job.id
    hist = client.get_metric_history(run_id, "loss")
    assert [(m.step, round(m.value, 4)) for m in sorted(hist, key=lambda m: m.step)] == \
        [(s, round(1.0 / (s + 1), 4)) for s in range(5)]
    assert [a.path for a in client.list_artifacts(run_id)] == ["report.txt"]


def test_broken_mlflow_uri_warns_and_goes_on(bare_ctx, tmp_path):
    pytest.importorskip("mlflow")
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    bare_ctx.config.values.update(MLFLOW_ENABLED=True, MLFLOW_TRACKING_URI=str(blocker / "mlruns"))
    job = _job()
    with Tracker.for_job(job, bare_ctx, {"lr": 1}) as tr:
        tr.metric(0, loss=1.0)
    assert tr.active == []
    warns = _warnings(job)
    assert len(warns) == 1 and "MLflow" in warns[0]
    assert [ev[4:] for ev in job.events if ev[0] == "metric"] == [("loss", 1.0)]


def test_failing_backend_is_dropped_after_one_warning():
    class Flaky(_Backend):
        name = "Flaky"
        calls = 0

        def log_metrics(self, step, metrics):
            Flaky.calls += 1
            raise OSError("disk full")

    job = _job()
    tr = Tracker(job, [Flaky()])
    for step in range(3):
        tr.metric(step, loss=1.0)
    tr.close()
    assert Flaky.calls == 1 and tr.active == []
    warns = _warnings(job)
    assert len(warns) == 1 and "disk full" in warns[0] and "Flaky" in warns[0]
    assert len([ev for ev in job.events if ev[0] == "metric"]) == 3  # the store still got all


def test_tensorboard_writes_events(bare_ctx):
    pytest.importorskip("tensorboard")
    bare_ctx.config.values["TENSORBOARD_ENABLED"] = True
    job = _job()
    with Tracker.for_job(job, bare_ctx, {"lr": 0.1}) as tr:
        assert tr.active == ["TensorBoard"]
        tr.log_metrics(1, loss=0.5)
        logdir = tr.backends[0].logdir
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 0.5)]


def test_compare_runs(bare_ctx):
    store = bare_ctx.store
    store.create_job("a", "clf.train", {"lr": 0.1, "epochs": 3, "opt": {"wd": 0.0}})
    store.create_job("b", "clf.train", {"lr": 0.01, "epochs": 3, "opt": {"wd": 0.1}, "extra": True})
    store.write_events([("metric", "a", 0.0, 2, "loss", 0.5), ("metric", "a", 0.0, 1, "loss", 0.9),
                        ("metric", "b", 0.0, 1, "loss", 0.8), ("metric", "b", 0.0, 1, "acc", 0.6)])
    series, diff = compare_runs(store, ["a", "b", "a", "missing"])
    assert list(series) == ["a", "b"]
    assert series["a"]["loss"] == [(1, 0.9), (2, 0.5)]
    assert series["b"] == {"loss": [(1, 0.8)], "acc": [(1, 0.6)]}
    assert diff == {"extra": {"a": "—", "b": True}, "lr": {"a": 0.1, "b": 0.01},
                    "opt.wd": {"a": 0.0, "b": 0.1}}
    assert common_metrics(series) == ["loss"]
    assert overlay_rows(series, "loss") == [{"job": "a", "step": 1, "value": 0.9},
                                            {"job": "a", "step": 2, "value": 0.5},
                                            {"job": "b", "step": 1, "value": 0.8}]


def test_compare_lines_up_wrapped_params_and_joins_resumed_curves(bare_ctx):
    """Issue 18.7: Prepare & Train keeps its training params under `train`; a resumed run's
    curve continues the run it resumed."""
    from core.module import JobKind

    store = bare_ctx.store
    kinds = {"x.train": JobKind("x.train", dict, lambda *a: None),
             "x.prep_train": JobKind("x.prep_train", dict, lambda *a: None, compare_root="train")}
    store.create_job("plain", "x.train", {"rank": 4, "lr": 0.1})
    store.create_job("wrapped", "x.prep_train", {"train": {"rank": 8, "lr": 0.1}, "source_dir": "/src"})
    store.create_job("first", "x.train", {"rank": 4, "lr": 0.2})
    store.create_job("resumed", "x.train", {"rank": 4, "lr": 0.2, "resume_from": "s"}, parent_id="first")
    store.create_job("again", "x.train", {"rank": 4, "lr": 0.2, "resume_from": "s2"}, parent_id="resumed")
    ev = [("metric", "first", 0.0, s, "loss", 1.0 - s / 10) for s in (1, 2, 3, 4)]  # 4 lost: stopped after save at 3
    ev += [("metric", "resumed", 0.0, s, "loss", 0.5 - s / 100) for s in (4, 5, 6)]
    ev += [("metric", "again", 0.0, s, "loss", 0.1) for s in (7, 8)]
    store.write_events(ev)
    series, diff = compare_runs(store, ["plain", "wrapped"], kinds)
    assert diff["rank"] == {"plain": 4, "wrapped": 8}
    assert "lr" not in diff and "train.rank" not in diff  # lined up, equal lr hidden
    assert diff["source_dir"] == {"plain": "—", "wrapped": "/src"}
    series, _ = compare_runs(store, ["again"], kinds)
    assert [s for s, _ in series["again"]["loss"]] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert series["again"]["loss"][3] == (4, 0.46)  # the resumed run's own step 4, not the lost one
    series, _ = compare_runs(store, ["first", "resumed"], kinds)
    assert [s for s, _ in series["first"]["loss"]] == [1, 2, 3, 4]
