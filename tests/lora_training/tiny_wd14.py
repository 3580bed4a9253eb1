"""A tiny random WD14-style tagger built offline with the onnx helper API.

`make_tiny_wd14(path)` writes `model.onnx` + `selected_tags.csv` in the layout of
SmilingWolf's taggers: input `input` of shape [batch, S, S, 3] (NHWC, BGR, 0..255),
output `output` = sigmoid(flatten(x) @ W + b) of shape [batch, n_tags], and a tags csv in the
real `tag_id,name,category,count` format (9 = rating, 0 = general, 4 = character).
`reference_probs(image, W, b)` recomputes the scores in numpy with the reference
preprocessing, so a test can check our loading and batching code end to end.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SIDE = 16
TAGS = [  # (name, category) in output order, like the real csv: ratings first
    ("general", 9), ("sensitive", 9), ("questionable", 9), ("explicit", 9),
    ("1girl", 0), ("solo", 0), ("long_hair", 0), ("smile", 0), ("^_^", 0), ("red_eyes", 0), ("simple_background", 0),
    ("hatsune_miku", 4), ("rem_(re:zero)", 4),
]


def make_tiny_wd14(path: str | Path, seed: int = 0, fixed_batch: bool = False) -> tuple[Path, np.ndarray, np.ndarray]:
    """Write the tagger under `path`; returns (path, W, b)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_in, n_out = SIDE * SIDE * 3, len(TAGS)
    w = (rng.standard_normal((n_in, n_out)) * 4.0 / (255.0 * np.sqrt(n_in))).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32) * 0.5
    batch = 1 if fixed_batch else "batch"
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "W"], ["logits0"]),
         helper.make_node("Add", ["logits0", "b"], ["logits"]),
         helper.make_node("Sigmoid", ["logits"], ["output"])],
        "tiny_wd14",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, SIDE, SIDE, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, n_out])],
        initializer=[numpy_helper.from_array(np.array([-1, n_in], dtype=np.int64), "shape"),
                     numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime the studio supports
    onnx.checker.check_model(model)
    onnx.save(model, str(path / "model.onnx"))
    with open(path / "selected_tags.csv", "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["tag_id", "name", "category", "count"])
        for i, (name, cat) in enumerate(TAGS):
            out.writerow([1000 + i, name, cat, 5000 - i])
    return path, w, b


def reference_probs(image, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SmilingWolf's preprocessing (white square pad, bicubic, BGR) then the tiny net, in numpy."""
    from PIL import Image

    img = image.convert("RGB")
    side = max(img.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    square = square.resize((SIDE, SIDE), Image.Resampling.BICUBIC)
    x = np.asarray(square, dtype=np.float32)[:, :, ::-1].reshape(-1)
    return 1.0 / (1.0 + np.exp(-(x @ w + b)))
