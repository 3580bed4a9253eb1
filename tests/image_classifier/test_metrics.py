"""Per-class metrics from a known confusion matrix; the picture is drawn for any class count."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from modules.image_classifier.metrics import classification_report, confusion_matrix, draw_confusion_matrix


def test_report_values():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 1, 2, 1, 1, 2, 2, 2, 0])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[2, 1, 1], [0, 2, 0], [1, 0, 3]]
    r = classification_report(cm, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(0.7)
    assert r["per_class"]["a"] == pytest.approx({"precision": 2 / 3, "recall": 0.5, "f1": 2 * (2 / 3 * 0.5) / (2 / 3 + 0.5),
                                                 "support": 4})
    assert r["per_class"]["b"]["precision"] == pytest.approx(2 / 3) and r["per_class"]["b"]["recall"] == 1.0
    assert r["macro"]["recall"] == pytest.approx((0.5 + 1.0 + 0.75) / 3)
    assert r["weighted"]["recall"] == pytest.approx(0.7)  # weighted recall is accuracy


def test_absent_class_gives_zero_not_nan():
    cm = confusion_matrix(np.array([0, 0]), np.array([0, 0]), 2)
    r = classification_report(cm, ["x", "y"])
    assert r["per_class"]["y"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["macro"]["f1"] == 1.0  # averaged over classes present in the truth


@pytest.mark.parametrize("n", [2, 12])
def test_confusion_png(tmp_path, n):
    cm = np.random.default_rng(0).integers(0, 20, size=(n, n))
    out = draw_confusion_matrix(cm, [f"class {i}" for i in range(n)], tmp_path / "cm.png", title="t")
    img = Image.open(out)
    assert img.size[0] >= 100 and img.size[1] >= 100
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, no temp left
