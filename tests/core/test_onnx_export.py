"""core.onnx_export: export, numerical check (onnxruntime and the pure-Python reference), speed."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.onnx_export import OrtRunner, export_onnx, onnxruntime_available, run_onnx, speed_ratio


class Tiny(nn.Module):
    """Reflection pad + conv + instance norm + nearest upsample: the ops image networks use."""

    def __init__(self) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(3, 8, 3)
        self.norm = nn.InstanceNorm2d(8, affine=True)
        self.out = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.norm(self.conv(self.pad(x))))
        return self.out(nn.functional.interpolate(y, scale_factor=2, mode="nearest"))


@pytest.fixture
def tiny() -> Tiny:
    torch.manual_seed(0)
    return Tiny().eval()


def test_export_matches_pytorch_and_has_dynamic_size(tiny, tmp_path):
    x = torch.rand(1, 3, 24, 20)
    rep = export_onnx(tiny, x, tmp_path / "tiny.onnx")
    assert rep.ok and rep.max_abs_diff < 1e-4 and rep.size_bytes > 0
    assert rep.checked_with == ("onnxruntime" if onnxruntime_available() else "onnx.reference")
    assert not list(tmp_path.glob("*.tmp*"))  # written under a temp name, then renamed
    # another batch and size than the example: dynamic axes work
    x2 = torch.rand(2, 3, 17, 33)
    (got,), _ = run_onnx(tmp_path / "tiny.onnx", [x2.numpy()])
    with torch.no_grad():
        want = tiny(x2).numpy()
    assert got.shape == (2, 3, 34, 66)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_reference_evaluator_path_without_onnxruntime(tiny, tmp_path):
    x = torch.rand(1, 3, 12, 12)
    rep = export_onnx(tiny, x, tmp_path / "ref.onnx", prefer_ort=False)
    assert rep.ok and rep.checked_with == "onnx.reference" and rep.max_abs_diff < 1e-4


def test_mismatch_is_reported(tiny, tmp_path):
    class Noisy(nn.Module):  # the traced graph differs from what eager returns at check time
        def __init__(self) -> None:
            super().__init__()
            self.inner, self.calls = tiny, 0

        def forward(self, x):
            self.calls += 1
            return self.inner(x) + (1.0 if self.calls == 1 else 0.0)

    rep = export_onnx(Noisy(), torch.rand(1, 3, 8, 8), tmp_path / "n.onnx")
    assert not rep.ok and rep.max_abs_diff == pytest.approx(1.0, abs=1e-4)


@pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime not installed")
def test_onnxruntime_runner_and_speed_ratio(tiny, tmp_path):
    x = torch.rand(1, 3, 32, 32)
    export_onnx(tiny, x, tmp_path / "t.onnx")
    runner = OrtRunner(tmp_path / "t.onnx", threads=1)
    (out,) = runner(x.numpy())
    with torch.no_grad():
        np.testing.assert_allclose(out, tiny(x).numpy(), atol=1e-4)
    speed = speed_ratio(tiny, tmp_path / "t.onnx", x, repeats=2)
    assert speed["torch_ms"] > 0 and speed["onnxruntime_ms"] > 0
    assert speed["ratio"] == pytest.approx(speed["torch_ms"] / speed["onnxruntime_ms"])


def test_module_elsewhere_is_not_moved(tiny, tmp_path):
    half = tiny.to(torch.float64)  # not fp32: exported from a copy, the caller's module untouched
    rep = export_onnx(half, torch.rand(1, 3, 8, 8), tmp_path / "d.onnx")
    assert rep.ok and next(half.parameters()).dtype == torch.float64
