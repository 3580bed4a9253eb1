"""CLI: train, list, scan, predict and export through `python -m modules.image_classifier`."""
from __future__ import annotations

import json

import pytest

from modules.image_classifier.__main__ import main


def test_cli_train_predict_export(tmp_path, monkeypatch, capsys, tiny_resnet, color_data):
    monkeypatch.setenv("CYBERBILL_HOME", str(tmp_path / "home"))
    assert main(["scan", str(color_data)]) == 0
    assert json.loads(capsys.readouterr().out) == {"blue": 21, "red": 21}
    rc = main(["train", str(color_data), "--name", "cli", "--backbone", str(tiny_resnet), "--image-size", "32",
               "--epochs", "1", "--batch-size", "8", "--no-augment", "--val-ratio", "0.25"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert json.loads(out)["classes"] == ["blue", "red"]
    assert main(["list"]) == 0 and capsys.readouterr().out.split() == ["cli"]
    img = color_data / "red" / "red_000.png"
    assert main(["predict", "cli", str(img), "--top-k", "2", "--backend", "torch"]) == 0
    preds = json.loads(capsys.readouterr().out)[str(img)]
    assert len(preds) == 2 and {p["label"] for p in preds} == {"blue", "red"}
    assert main(["predict", "nope", str(img)]) == 1
    assert "nope" in capsys.readouterr().err
    assert main(["train", str(color_data), "--name", "bad name!"]) == 2  # pydantic names the field
    assert "name" in capsys.readouterr().err
    pytest.importorskip("onnxruntime")
    assert main(["export-onnx", "cli"]) == 0
    assert json.loads(capsys.readouterr().out)["max_abs_diff"] < 1e-4
