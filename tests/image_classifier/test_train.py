"""Training: learns a real difference, reports, saves a reloadable model, tracks, stops, resumes."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

from modules.image_classifier.data import scan_image_folder, stratified_split

from .conftest import COLORS, make_image, train_params


def test_stratified_split_is_reproducible_and_balanced():
    labels = [0] * 50 + [1] * 30 + [2] * 10
    a = stratified_split(labels, 0.2, 0.1, seed=3)
    assert a == stratified_split(labels, 0.2, 0.1, seed=3)
    assert a != stratified_split(labels, 0.2, 0.1, seed=4)
    every = sorted(a["train"] + a["val"] + a["test"])
    assert every == list(range(90))  # a partition: nothing lost, nothing twice
    lab = np.asarray(labels)
    assert [int((lab[a["val"]] == c).sum()) for c in range(3)] == [10, 6, 2]
    assert [int((lab[a["test"]] == c).sum()) for c in range(3)] == [5, 3, 1]


def test_scan_counts_classes(color_data):
    scan = scan_image_folder(color_data)
    assert scan.class_names == ["blue", "red"]
    assert scan.counts == {"blue": 21, "red": 21}  # the broken files are listed here, skipped later


def test_training_learns_and_saves(trained):
    ctx, row, out = trained
    assert row["status"] == "completed", row["error"]
    res = row["result"]
    assert res["bad_images"] == 2
    assert "broken.png" in (out / "bad_images.txt").read_text() and "empty.jpg" in (out / "bad_images.txt").read_text()
    # well above chance (0.5) on held-out images
    assert res["metrics"]["val"]["accuracy"] >= 0.8
    assert set(res["metrics"]) == {"val", "test"}
    metrics = {m["name"] for m in ctx.store.metrics(row["id"])}
    assert {"train_loss", "lr", "val_loss", "val_acc", "train_acc", "epoch"} <= metrics
    val_acc = [m["value"] for m in ctx.store.metrics(row["id"], "val_acc")]
    assert len(val_acc) == 6
    # report files
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["val"]["per_class"]) == {"blue", "red"}
    assert sum(map(sum, report["val"]["confusion_matrix"])) == report["val"]["support"] == 10
    png = Image.open(out / "confusion_matrix.png")
    assert png.size[0] > 100 and png.size[1] > 100
    assert (out / "confusion_matrix_test.png").is_file()
    # split saved with its seed, stratified
    split = json.loads((out / "split.json").read_text())
    assert split["seed"] == 7 and {lab for _, lab in split["splits"]["val"]} == {0, 1}
    # model folder: HF layout + our metadata
    meta = json.loads((out / "classifier.json").read_text())
    assert meta["class_names"] == ["blue", "red"] and meta["preprocessing"]["size"] == 32
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["id2label"] == {"0": "blue", "1": "red"}
    assert (out / "model.safetensors").is_file() and (out / "state" / "last.pt").is_file()
    arts = {a["kind"] for a in ctx.store.artifacts(row["id"])}
    assert {"model", "preview", "split"} <= arts


def test_reloaded_model_predicts_colours(trained):
    from modules.image_classifier.predict import Predictor

    _, _, out = trained
    rng = np.random.default_rng(123)
    images = [make_image(COLORS[c], rng) for c in ("red", "blue", "red", "blue", "red", "blue")]
    pred = Predictor(out, backend="torch").predict(images, top_k=2)
    assert [len(p) for p in pred] == [2] * 6
    assert all(abs(sum(x["probability"] for x in p) - 1) < 1e-5 for p in pred)
    hits = sum(p[0]["label"] == c for p, c in zip(pred, ["red", "blue"] * 3))
    assert hits >= 5


def test_mlflow_recorded_the_run(trained):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    ctx, row, _ = trained
    client = MlflowClient(tracking_uri=(ctx.config.home / "mlruns_files").as_uri())
    exp = client.get_experiment_by_name("cyberbill/clf.train")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["lr"] == "0.003" and run.data.params["classes"] == "2"
    assert run.data.tags["cyberbill.job_id"] == row["id"]
    assert len(client.get_metric_history(run.info.run_id, "val_acc")) == 6
    assert "confusion_matrix.png" in [a.path for a in client.list_artifacts(run.info.run_id)]


def test_broken_tracking_uri_keeps_job_completed(tmp_path, tiny_resnet, color_data):
    from core.context import build_context

    blocker = tmp_path / "file"
    blocker.write_text("x")
    ctx = build_context(tmp_path / "home", overrides={"MLFLOW_ENABLED": True,
                                                      "MLFLOW_TRACKING_URI": str(blocker / "mlruns")})
    try:
        job_id = ctx.jobs.submit("clf.train", train_params(color_data, tiny_resnet, "m", epochs=1))
        row = ctx.jobs.wait(job_id, timeout=120)
        assert row["status"] == "completed", row["error"]
        warns = [l["message"] for l in ctx.store.logs(job_id) if l["level"] == "warning"]
        assert any("MLflow" in w for w in warns)
    finally:
        ctx.close()


def test_stop_keeps_best_then_resume(tmp_path, tiny_resnet, color_data):
    """Stop during epoch 2: the epoch-1 model stays; resume continues at epoch 2."""
    from core.context import build_context
    from core.jobs import ConsoleJob
    from modules.image_classifier.params import TrainParams
    from modules.image_classifier.train import run_train

    ctx = build_context(tmp_path / "home", load_modules=False)
    try:
        job = ConsoleJob("clf.train", workdir=tmp_path / "job1", verbose=False)
        seen_val, after_stop = threading.Event(), []
        real_metric = job.metric

        def metric(step, **values):
            if job.should_stop():
                after_stop.append(values)
            real_metric(step, **values)
            if "val_loss" in values:
                seen_val.set()
            elif seen_val.is_set() and "train_loss" in values:
                job.request_stop()  # one step into epoch 2

        job.metric = metric
        params = TrainParams(**train_params(color_data, tiny_resnet, "s", epochs=4, augment=False))
        res = run_train(job, params, ctx)
        assert res["stopped"] and res["best_epoch"] == 1
        assert after_stop == []  # nothing trained after the stop request: seen within one step
        out = ctx.path("CLASSIFIERS_DIR") / "s"
        assert json.loads((out / "classifier.json").read_text())["best_epoch"] == 1
        steps1 = [ev[3] for ev in job.events if ev[0] == "metric" and ev[4] == "train_loss"]

        job2 = ConsoleJob("clf.train", workdir=tmp_path / "job2", verbose=False)
        res2 = run_train(job2, params.model_copy(update={"resume": True}), ctx)
        assert not res2["stopped"]
        epochs2 = [ev[5] for ev in job2.events if ev[0] == "metric" and ev[4] == "epoch"]
        assert epochs2 == [2.0, 3.0, 4.0]
        steps2 = [ev[3] for ev in job2.events if ev[0] == "metric" and ev[4] == "train_loss"]
        spe = -(-json.loads((out / "classifier.json").read_text())["split_sizes"]["train"] // 8)
        # run 1 made one step of epoch 2 (lost: state is per epoch); run 2 redoes it
        assert max(steps1) == spe + 1 and steps2[0] == spe + 1
    finally:
        ctx.close()


def test_existing_name_is_refused(trained, tiny_resnet, color_data):
    from core.errors import StudioError
    from core.jobs import ConsoleJob
    from modules.image_classifier.params import TrainParams
    from modules.image_classifier.train import run_train

    ctx, _, _ = trained
    with pytest.raises(StudioError) as exc:
        run_train(ConsoleJob("clf.train", verbose=False), TrainParams(**train_params(color_data, tiny_resnet, "colors")), ctx)
    assert exc.value.key == "clf.exists"


def test_vit_trains_at_its_size_and_refuses_another(bare_ctx, tmp_path, color_data):
    from core.errors import StudioError
    from core.jobs import ConsoleJob
    from modules.image_classifier.params import TrainParams
    from modules.image_classifier.train import run_train

    from .conftest import save_tiny_vit

    vit = save_tiny_vit(tmp_path / "vit")
    bad = TrainParams(**train_params(color_data, vit, "v", image_size=48))
    with pytest.raises(StudioError) as exc:
        run_train(ConsoleJob("clf.train", workdir=tmp_path / "j0", verbose=False), bad, bare_ctx)
    assert exc.value.key == "clf.fixed_size"
    ok = TrainParams(**train_params(color_data, vit, "v", image_size=None, epochs=1))
    res = run_train(ConsoleJob("clf.train", workdir=tmp_path / "j1", verbose=False), ok, bare_ctx)
    meta = json.loads((bare_ctx.path("CLASSIFIERS_DIR") / "v" / "classifier.json").read_text())
    assert res["steps"] > 0 and meta["preprocessing"]["size"] == 32 and meta["preprocessing"]["mean"] == [0.5] * 3
    assert not (tmp_path / "j1" / "cache").exists()  # scratch cache removed


def test_early_stopping_and_resume_params(bare_ctx, tmp_path, tiny_resnet, color_data):
    """No possible improvement (lr ~ 0, monitor val_acc): patience 1 stops after epoch 2."""
    from core.jobs import ConsoleJob
    from modules.image_classifier import MODULE
    from modules.image_classifier.params import TrainParams
    from modules.image_classifier.train import run_train

    p = train_params(color_data, tiny_resnet, "es", epochs=5, lr=1e-12, monitor="val_acc", patience=1,
                     augment=False)
    job = ConsoleJob("clf.train", workdir=tmp_path / "j", verbose=False)
    res = run_train(job, TrainParams(**p), bare_ctx)
    epochs = [ev[5] for ev in job.events if ev[0] == "metric" and ev[4] == "epoch"]
    assert res["early_stopped"] and epochs == [1.0, 2.0] and res["best_epoch"] == 1
    kind = next(k for k in MODULE.job_kinds if k.name == "clf.train")
    again = kind.resume({**p, "overwrite": True}, "old-id", bare_ctx)
    assert again["resume"] is True and again["overwrite"] is False and again["name"] == "es"
