"""Predict: ONNX matches PyTorch, the REST route answers with the right shape and clear 4xx."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from .conftest import COLORS, make_image, save_tiny_vit


def _png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_onnx_export_matches_pytorch(trained):
    pytest.importorskip("onnxruntime")
    from modules.image_classifier.onnx_io import export_classifier_onnx
    from modules.image_classifier.predict import Predictor

    ctx, _, out = trained
    info = export_classifier_onnx(out)
    assert (out / "model.onnx").is_file() and info["max_abs_diff"] < 1e-4 and info["same_top1"]
    assert json.loads((out / "classifier.json").read_text())["onnx"]["opset"] == 17
    rng = np.random.default_rng(5)
    images = [make_image(COLORS["red" if i % 2 else "blue"], rng) for i in range(5)]  # batch 5 != export batch
    torch_p = Predictor(out, backend="torch").probabilities(images)
    onnx_p = Predictor(out, backend="onnx").probabilities(images)
    assert onnx_p.shape == torch_p.shape == (5, 2)
    np.testing.assert_allclose(onnx_p, torch_p, atol=1e-4)
    assert Predictor(out).backend == "onnx"  # auto picks the checked export


def test_predict_endpoint(trained):
    ctx, _, out = trained
    from modules.image_classifier import MODULE

    app = FastAPI()
    app.include_router(MODULE.api_router(ctx))
    client = TestClient(app)
    img = make_image(COLORS["red"], np.random.default_rng(9))
    r = client.post("/classifier/colors/predict?top_k=2&backend=torch",
                    files={"file": ("x.png", _png_bytes(img), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "colors" and body["backend"] == "torch"
    preds = body["predictions"]
    assert [p["label"] for p in preds] and len(preds) == 2
    assert preds[0]["label"] == "red" and preds[0]["probability"] >= preds[1]["probability"]
    assert abs(sum(p["probability"] for p in preds) - 1) < 1e-5
    r = client.post("/classifier/colors/predict?top_k=1", files={"file": ("x.png", _png_bytes(img), "image/png")})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1
    # bad inputs
    r = client.post("/classifier/colors/predict", files={"file": ("notes.txt", b"hello, not an image", "text/plain")})
    assert r.status_code == 415 and "notes.txt" in r.json()["detail"]
    r = client.post("/classifier/nope/predict", files={"file": ("x.png", _png_bytes(img), "image/png")})
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    r = client.post("/classifier/..%2F..%2Fetc/predict", files={"file": ("x.png", _png_bytes(img), "image/png")})
    assert r.status_code == 404
    assert client.post("/classifier/colors/predict").status_code == 422  # no file
    assert client.post("/classifier/colors/predict?top_k=0",
                       files={"file": ("x.png", _png_bytes(img), "image/png")}).status_code == 422
    listing = client.get("/classifier/models").json()
    assert [m["name"] for m in listing] == ["colors"] and listing[0]["classes"] == ["blue", "red"]


def test_vit_backbone_loads_with_new_head(tmp_path):
    import torch

    from modules.image_classifier.backbone import freeze_backbone, load_backbone

    folder = save_tiny_vit(tmp_path / "tiny-vit")
    model, pre = load_backbone(str(folder), ["a", "b", "c"])
    assert pre == {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "native_size": 32, "fixed_size": True}
    assert model.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert model(pixel_values=torch.randn(2, 3, 32, 32)).logits.shape == (2, 3)
    trainable = freeze_backbone(model, True)
    assert trainable == 16 * 3 + 3  # only the new head trains


def test_same_size_head_with_other_classes_is_reset(tmp_path):
    """A 2-class checkpoint reused for 2 *other* classes must not keep its old head."""
    import torch

    from modules.image_classifier.backbone import load_backbone

    from .conftest import save_tiny_resnet

    folder = save_tiny_resnet(tmp_path / "r2", num_labels=2)
    from transformers import ResNetForImageClassification

    old = ResNetForImageClassification.from_pretrained(str(folder)).classifier[1].weight.detach().clone()
    same, _ = load_backbone(str(folder), ["LABEL_0", "LABEL_1"])
    other, _ = load_backbone(str(folder), ["cat", "dog"])
    assert torch.equal(same.classifier[1].weight, old)
    assert not torch.equal(other.classifier[1].weight, old)


def test_saved_preprocessing_matches_hf_processor(trained):
    """preprocessor_config.json reproduces our preprocessing in transformers."""
    from transformers import BitImageProcessorPil

    from modules.image_classifier.predict import Predictor

    _, _, out = trained
    img = make_image(COLORS["blue"], np.random.default_rng(1), size=57).resize((57, 41))
    ours = Predictor(out, backend="torch").preprocess([img]).numpy()
    hf = BitImageProcessorPil.from_pretrained(str(out))(img, return_tensors="np")["pixel_values"]
    assert hf.shape == ours.shape
    assert np.abs(hf - ours).mean() < 0.05
