"""Prediction with a saved classifier: top-k classes with probabilities.

`Predictor(folder, backend="auto"|"torch"|"onnx")`: "auto" uses onnxruntime when the
folder has a checked `model.onnx` and onnxruntime imports, else PyTorch. The
preprocessing is the one saved with the model (the very function used in training).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from core.errors import StudioError
from modules.image_classifier.augment import eval_batch
from modules.image_classifier.backbone import load_classifier, read_meta
from modules.image_classifier.data import prepare_image

Backend = Literal["auto", "torch", "onnx"]


def _onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class Predictor:
    def __init__(self, folder: str | Path, backend: Backend = "auto", device: str = "cpu", threads: int = 0) -> None:
        """`threads`: onnxruntime intra-op threads (0 = its default, one per core)."""
        self.folder = Path(folder)
        self.meta = read_meta(self.folder)
        self.class_names: list[str] = list(self.meta["class_names"])
        self.pre = self.meta["preprocessing"]
        onnx_file = self.folder / "model.onnx"
        if backend == "auto":
            backend = "onnx" if onnx_file.is_file() and _onnx_available() else "torch"
        if backend == "onnx":
            if not onnx_file.is_file():
                raise StudioError("clf.no_onnx", name=self.folder.name)
            if not _onnx_available():
                raise StudioError("clf.onnx_missing")
            import onnxruntime as ort

            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") \
                else ["CPUExecutionProvider"]
            providers = [p for p in providers if p in ort.get_available_providers()]
            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = int(threads)
            self.session = ort.InferenceSession(str(onnx_file), opts, providers=providers)
            self.model = None
        else:
            self.model, _ = load_classifier(self.folder)
            self.model.to(device)
            self.session = None
        self.backend = backend
        self.device = device

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        """Normalised float batch [B, 3, size, size] (on the predictor's device)."""
        arr = np.stack([prepare_image(im, int(self.pre["resize"])) for im in images])
        dev = self.device if self.model is not None else "cpu"
        return eval_batch(torch.from_numpy(arr).to(dev), int(self.pre["size"]), self.pre["mean"], self.pre["std"])

    @torch.no_grad()
    def probabilities(self, images: list[Image.Image]) -> np.ndarray:
        x = self.preprocess(images)
        if self.session is not None:
            return self.session.run(None, {"pixel_values": x.cpu().numpy()})[0]
        return self.model(pixel_values=x).logits.float().softmax(-1).cpu().numpy()

    def predict(self, images: list[Image.Image], top_k: int = 5, batch_size: int = 32) -> list[list[dict]]:
        """For each image, the top-k `{"label", "index", "probability"}`, best first."""
        k = max(1, min(int(top_k), len(self.class_names)))
        out: list[list[dict]] = []
        for start in range(0, len(images), batch_size):
            probs = self.probabilities(images[start:start + batch_size])
            for row in probs:
                best = np.argsort(-row)[:k]
                out.append([{"label": self.class_names[i], "index": int(i), "probability": float(row[i])}
                            for i in best])
        return out
