"""Export a torch module to ONNX, check it numerically against PyTorch, run it.

Generic on purpose (style networks, SR networks, classifiers use it): nothing here knows
what the module does. `export_onnx` writes the file atomically, then runs the ONNX graph
on the example inputs and compares with the module's own output; with onnxruntime
importable that run uses onnxruntime (and `speed_ratio` times both), otherwise the
pure-Python `onnx.reference` evaluator does the check (slow, fine for a small input).

The TorchScript-based exporter (`dynamo=False`) is used because it needs no extra
package; the dynamo exporter needs `onnxscript`, which is used when it is importable
and `dynamo=True` is asked for.
"""
from __future__ import annotations

import importlib.util
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


@dataclass
class ExportReport:
    path: str
    max_abs_diff: float
    max_rel_diff: float  # max |a-b| / max |reference|
    ok: bool
    checked_with: str  # "onnxruntime" | "onnx.reference"
    opset: int
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class OrtRunner:
    """An onnxruntime CPU (or given providers) session called like the torch module on numpy."""

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        avail = ort.get_available_providers()
        chosen = [p for p in (providers or ["CPUExecutionProvider"]) if p in avail] or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        feed = {n: np.ascontiguousarray(a) for n, a in zip(self.input_names, arrays)}
        return self.session.run(None, feed)


def run_onnx(path: str | Path, arrays: Sequence[np.ndarray], prefer_ort: bool = True) -> tuple[list[np.ndarray], str]:
    """Outputs of the ONNX file on `arrays` and which runtime produced them."""
    if prefer_ort and onnxruntime_available():
        return OrtRunner(path)(*arrays), "onnxruntime"
    import onnx
    from onnx.reference import ReferenceEvaluator

    model = onnx.load(str(path))
    ev = ReferenceEvaluator(model)
    names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    return list(ev.run(None, dict(zip(names, arrays)))), "onnx.reference"


def _cpu_fp32(module: torch.nn.Module) -> torch.nn.Module:
    """The module in eval mode on CPU in fp32; a copy when it is elsewhere (the caller's stays put)."""
    tensors = list(module.parameters()) + list(module.buffers())
    if any(t.device.type != "cpu" or (t.is_floating_point() and t.dtype != torch.float32) for t in tensors):
        import copy

        module = copy.deepcopy(module).float().cpu()
    return module.eval()


def _as_tuple(x: Any) -> tuple[torch.Tensor, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def export_onnx(module: torch.nn.Module, example_inputs: torch.Tensor | Sequence[torch.Tensor], path: str | Path,
                input_names: Sequence[str] = ("input",), output_names: Sequence[str] = ("output",),
                dynamic_axes: dict[str, dict[int, str]] | None = None, opset: int = 17,
                atol: float = 1e-3, rtol: float = 1e-3, dynamo: bool = False,
                prefer_ort: bool = True) -> ExportReport:
    """Export `module` (eval mode, fp32, CPU) and check it on `example_inputs`.

    `dynamic_axes` default: every input/output has dynamic batch, height and width axes
    (0, 2, 3) when 4-D, which is what image networks need. The check passes when
    max|onnx - torch| <= atol + rtol * max|torch| for every output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = tuple(t.detach().float().cpu() for t in _as_tuple(example_inputs))
    module = _cpu_fp32(module)
    if dynamic_axes is None:
        dynamic_axes = {n: {0: "batch", 2: "height", 3: "width"} for n, t in zip(input_names, inputs) if t.dim() == 4}
        dynamic_axes.update({n: {0: "batch", 2: "height", 3: "width"} for n in output_names})
    with torch.no_grad():
        expected = [t.numpy() for t in _as_tuple(module(*inputs))]
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    use_dynamo = dynamo and importlib.util.find_spec("onnxscript") is not None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's constant-folding chatter
            if use_dynamo:
                torch.onnx.export(module, inputs, str(tmp), input_names=list(input_names),
                                  output_names=list(output_names), opset_version=opset, dynamo=True,
                                  dynamic_shapes=None, external_data=False)
            else:
                torch.onnx.export(module, inputs, str(tmp), input_names=list(input_names),
                                  output_names=list(output_names), opset_version=opset, dynamo=False,
                                  dynamic_axes=dynamic_axes, do_constant_folding=True)
        got, runtime = run_onnx(tmp, [t.numpy() for t in inputs], prefer_ort)
        abs_d, rel_d, ok = 0.0, 0.0, True
        for e, g in zip(expected, got):
            if e.shape != g.shape:
                raise ValueError(f"ONNX output shape {g.shape} != PyTorch {e.shape}")
            d = float(np.max(np.abs(e.astype(np.float64) - g.astype(np.float64)))) if e.size else 0.0
            scale = float(np.max(np.abs(e))) if e.size else 0.0
            abs_d, rel_d = max(abs_d, d), max(rel_d, d / scale if scale else d)
            ok = ok and d <= atol + rtol * scale
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return ExportReport(str(path), abs_d, rel_d, ok, runtime, opset, path.stat().st_size)


def time_call(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median milliseconds of `fn()` over `repeats` after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times))


def speed_ratio(module: torch.nn.Module, path: str | Path, example_inputs: torch.Tensor | Sequence[torch.Tensor],
                repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    """PyTorch eager vs onnxruntime on the same inputs (CPU): ms each and torch/ort ratio."""
    if not onnxruntime_available():
        raise RuntimeError("onnxruntime is not installed")
    inputs = tuple(t.detach().float().cpu() for t in _as_tuple(example_inputs))
    arrays = [t.numpy() for t in inputs]
    module = _cpu_fp32(module)
    runner = OrtRunner(path)

    def torch_call() -> None:
        with torch.inference_mode():
            module(*inputs)

    torch_ms = time_call(torch_call, repeats, warmup)
    ort_ms = time_call(lambda: runner(*arrays), repeats, warmup)
    return {"torch_ms": torch_ms, "onnxruntime_ms": ort_ms, "ratio": torch_ms / ort_ms if ort_ms else float("nan")}
