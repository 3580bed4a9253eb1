"""ONNX export of a saved classifier, checked against PyTorch with onnxruntime.

The graph takes `pixel_values` [batch, 3, size, size] (already normalised, exactly what
`predict.preprocess` produces) and returns `probabilities` [batch, classes] (softmax is
inside the graph, so every runtime gives the same numbers). The batch axis is dynamic.
The export is written to a temp name, verified on a batch of 3, and only then renamed to
`model.onnx`; the check result lands in classifier.json.

The shared `core/onnx_export.py` (style branch) is used when present; until it is merged
here, the same TorchScript exporter (no onnxscript needed) is called directly. Either
way the batch-3 onnxruntime check below decides whether the file is kept.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from core.errors import StudioError
from modules.image_classifier.backbone import load_classifier, write_json


class _WithSoftmax(torch.nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits.softmax(-1)


def _export(wrapper: torch.nn.Module, example: torch.Tensor, path: Path, opset: int, tolerance: float) -> None:
    """The shared `core.onnx_export` when this branch has it, else the plain exporter."""
    axes = {"pixel_values": {0: "batch"}, "probabilities": {0: "batch"}}
    try:
        from core.onnx_export import export_onnx
    except ImportError:
        export_onnx = None
    if export_onnx is not None:
        export_onnx(wrapper, example, path, input_names=["pixel_values"], output_names=["probabilities"],
                    dynamic_axes=axes, opset=opset, atol=tolerance, rtol=0.0)
        return
    with torch.no_grad():
        torch.onnx.export(wrapper, (example,), str(path), input_names=["pixel_values"],
                          output_names=["probabilities"], opset_version=opset, dynamo=False, dynamic_axes=axes)


def export_classifier_onnx(folder: str | Path, opset: int = 17, tolerance: float = 1e-4, job=None) -> dict:
    """Export `folder`'s model to `folder/model.onnx`; returns the check figures."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise StudioError("clf.onnx_missing") from exc
    folder = Path(folder)
    model, meta = load_classifier(folder)
    size = int(meta["preprocessing"]["size"])
    wrapper = _WithSoftmax(model).eval()
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    tmp = folder / ".model.onnx.tmp"
    t0 = time.time()
    try:
        _export(wrapper, example, tmp, opset, tolerance)
    except Exception as exc:  # noqa: BLE001 - an exporter failure is reported, the model stays
        tmp.unlink(missing_ok=True)
        raise StudioError("clf.onnx_failed", error=f"{type(exc).__name__}: {exc}"[:300]) from exc
    # Check on a batch size other than the export one: proves the dynamic axis too.
    check = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = wrapper(check).numpy()
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixel_values": check.numpy()})[0]
    diff = float(np.abs(got - ref).max())
    same_top1 = bool((got.argmax(-1) == ref.argmax(-1)).all())
    if diff > tolerance or not same_top1:
        tmp.unlink(missing_ok=True)
        raise StudioError("clf.onnx_mismatch", diff=f"{diff:.2e}", tolerance=f"{tolerance:.0e}")
    out = folder / "model.onnx"
    tmp.replace(out)
    info = {"path": str(out), "opset": opset, "max_abs_diff": diff, "same_top1": same_top1,
            "seconds": round(time.time() - t0, 2), "bytes": out.stat().st_size}
    meta["onnx"] = {k: v for k, v in info.items() if k != "path"}
    write_json(folder / "classifier.json", meta)
    if job is not None:
        job.info(job.t("clf.log.onnx", diff=f"{diff:.2e}", path=str(out)))
        job.artifact(out, "model")
    return info


def run_export(job, params, ctx) -> dict:
    """`clf.export_onnx` job."""
    from modules.image_classifier.backbone import model_folder

    folder = model_folder(ctx, params.model)
    job.progress(0, 1, job.t("clf.progress.export"))
    info = export_classifier_onnx(folder, params.opset, params.tolerance, job=job)
    job.progress(1, 1, job.t("clf.progress.export"))
    return info
