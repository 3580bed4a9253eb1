"""Style transfer benchmark: Gatys seconds per 512 px image and fast-network ms per 512 px
frame, our engines against references, same run.

Gatys - reference: the PyTorch tutorial's construction (VGG19 `features` as an
nn.Sequential with ContentLoss/StyleLoss modules inserted after conv layers, L-BFGS with
its default 20 evaluations per `step()`), re-implemented here. Ours: `run_gatys` (features
taken from relu layers, truncated VGG, one L-BFGS iteration per step so Stop is seen at
every evaluation). Both cost one VGG forward+backward per evaluation, so we time a few
evaluations at 512 px and EXTRAPOLATE to 300 evaluations (the seed's "300 steps"); the
figure is a per-step time times 300, not a full run.

Fast network: TransformerNet on a 512x512 frame in PyTorch eager (the pytorch/examples
`stylize` way: the reference), channels_last, torch.compile (skipped if it fails or its
compile exceeds the budget), and ONNX Runtime (exported with core.onnx_export).
Random weights: speed does not depend on the values.

    python bench/style_transfer_bench.py                 # CPU, < 3 min
    python bench/style_transfer_bench.py --device cuda   # on a GPU (compile/ORT-CUDA if available)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.onnx_export import OrtRunner, export_onnx, onnxruntime_available  # noqa: E402
from modules.style_transfer.gatys import GatysSettings, run_gatys  # noqa: E402
from modules.style_transfer.transformer_net import TransformerNet  # noqa: E402
from modules.style_transfer.vgg import VGG19Features, build_features  # noqa: E402

GATYS_STEPS_CLAIMED = 300


# -- reference Gatys: the PyTorch tutorial's model-with-loss-modules construction --------
def _gram(x: torch.Tensor) -> torch.Tensor:
    a, b, c, d = x.size()
    f = x.view(a * b, c * d)
    return torch.mm(f, f.t()).div(a * b * c * d)


class _ContentLoss(nn.Module):
    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target, self.loss = target.detach(), None

    def forward(self, x):
        self.loss = F.mse_loss(x, self.target)
        return x


class _StyleLoss(nn.Module):
    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target, self.loss = _gram(target).detach(), None

    def forward(self, x):
        self.loss = F.mse_loss(_gram(x), self.target)
        return x


class _Normalization(nn.Module):
    def __init__(self, device) -> None:
        super().__init__()
        self.mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(-1, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225], device=device).view(-1, 1, 1)

    def forward(self, img):
        return (img - self.mean) / self.std


# The tutorial's own defaults are conv_4 / conv_1..conv_5 (a much shallower, cheaper net);
# we give it the Gatys paper's layers, the same as our defaults, so the work is equal:
# conv4_2 = 10th conv; conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 = convs 1, 3, 5, 9, 13.
REF_CONTENT = ["conv_10"]
REF_STYLE = ["conv_1", "conv_3", "conv_5", "conv_9", "conv_13"]


def reference_model(cnn: nn.Sequential, style: torch.Tensor, content: torch.Tensor, device):
    content_layers, style_layers = REF_CONTENT, REF_STYLE
    model = nn.Sequential(_Normalization(device))
    cl, sl, i = [], [], 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            name, layer = f"relu_{i}", nn.ReLU(inplace=False)
        else:
            name = f"pool_{i}"
        model.add_module(name, layer)
        if name in content_layers:
            m = _ContentLoss(model(content))
            model.add_module(f"content_loss_{i}", m)
            cl.append(m)
        if name in style_layers:
            m = _StyleLoss(model(style))
            model.add_module(f"style_loss_{i}", m)
            sl.append(m)
    for j in range(len(model) - 1, -1, -1):  # trim after the last loss, as the tutorial does
        if isinstance(model[j], (_ContentLoss, _StyleLoss)):
            break
    return model[: j + 1], sl, cl


def bench_reference_gatys(cnn, content, style, evals: int, device) -> float:
    model, sl, cl = reference_model(cnn, style, content, device)
    model.requires_grad_(False)
    x = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], max_iter=evals)  # one step() = `evals` evaluations (tutorial: 20)
    count = [0]

    def closure():
        with torch.no_grad():
            x.clamp_(0, 1)
        opt.zero_grad()
        model(x)
        loss = 1e6 * sum(s.loss for s in sl) + sum(c.loss for c in cl)
        loss.backward()
        count[0] += 1
        return loss

    closure()  # warm-up evaluation
    count[0] = 0
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    opt.step(closure)
    _sync(device)
    n = max(count[0], 1)
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def bench_our_gatys(vgg, content, style, evals: int, device) -> tuple[float, list[float]]:
    s = GatysSettings(size=512, steps=evals + 1, preview_every=0)  # the first step is the warm-up
    times: list[tuple[float, float]] = []
    last = [(time.perf_counter(), time.process_time())]

    def on_step(step, total, parts):
        _sync(device)
        now = (time.perf_counter(), time.process_time())
        times.append((now[0] - last[0][0], now[1] - last[0][1]))
        last[0] = now

    run_gatys(vgg, content, [(style, 1.0)], s, device, on_step=on_step)
    # the first interval includes target extraction and warm-up
    return float(np.median([t[0] for t in times[1:]])), float(np.median([t[1] for t in times[1:]]))


# -- fast network ------------------------------------------------------------------------
def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_ms(fn, repeats: int, device) -> tuple[float, float]:
    """Median (wall ms, process CPU ms) of `fn()`. CPU time is what to compare on a shared
    machine: it does not count the time other processes held the cores."""
    fn()
    _sync(device)
    ts = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        ts.append(((time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000))
    return float(np.median([t[0] for t in ts])), float(np.median([t[1] for t in ts]))


def bench_fast(device, repeats: int, compile_budget_s: float, do_compile: bool) -> dict:
    torch.manual_seed(0)
    net = TransformerNet().eval().to(device)
    x = (torch.rand(1, 3, 512, 512) * 255).to(device)
    out: dict = {}
    with torch.inference_mode():
        ref = net(x)
        out["eager_ms"], out["eager_cpu_ms"] = time_ms(lambda: net(x), repeats, device)
        net_cl = TransformerNet().eval().to(device)
        net_cl.load_state_dict(net.state_dict())
        net_cl = net_cl.to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        out["channels_last_ms"], out["channels_last_cpu_ms"] = time_ms(lambda: net_cl(x_cl), repeats, device)
        out["channels_last_max_diff"] = float((net_cl(x_cl) - ref).abs().max())
    try:
        if not do_compile:
            raise RuntimeError("not run (pass --compile; on this 2-core CPU its first call took 208 s in an "
                               "earlier run, over the bench budget)")
        compiled = torch.compile(net)
        t0 = time.perf_counter()
        with torch.inference_mode():
            y = compiled(x)
        _sync(device)
        out["compile_s"] = time.perf_counter() - t0
        if out["compile_s"] > compile_budget_s:
            out["compiled_ms"] = None
            out["compiled_note"] = f"compile took {out['compile_s']:.0f} s (> budget), not timed"
        else:
            with torch.inference_mode():
                out["compiled_ms"], out["compiled_cpu_ms"] = time_ms(lambda: compiled(x), repeats, device)
            out["compiled_max_diff"] = float((y - ref).abs().max())
    except Exception as exc:  # noqa: BLE001 - compile is optional; record why it is missing
        out["compiled_ms"] = None
        out["compiled_note"] = str(exc)[:240] if not do_compile else f"{type(exc).__name__}: {str(exc)[:200]}"
    if onnxruntime_available():
        with tempfile.TemporaryDirectory() as d:
            rep = export_onnx(net.cpu(), torch.rand(1, 3, 128, 128) * 255, Path(d) / "tn.onnx")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if str(device).startswith("cuda") else None
            runner = OrtRunner(Path(d) / "tn.onnx", providers=providers, threads=torch.get_num_threads())
            arr = x.cpu().numpy()
            out["onnxruntime_ms"], out["onnxruntime_cpu_ms"] = time_ms(lambda: runner(arr), repeats, "cpu")
            out["onnxruntime_provider"] = runner.session.get_providers()[0]
            out["onnx_max_diff"] = float(np.abs(runner(arr)[0] - ref.cpu().numpy()).max())
            out["onnx_check_diff_128px"] = rep.max_abs_diff
        net.to(device)
    return out


def machine(device: str) -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if device.startswith("cuda") else ""
    return f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}{gpu}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--evals", type=int, default=2, help="Gatys evaluations timed per implementation")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile-budget", type=float, default=90.0)
    ap.add_argument("--compile", dest="do_compile", action=argparse.BooleanOptionalAction, default=None,
                    help="time torch.compile (default: on for CUDA, off for CPU)")
    ap.add_argument("--threads", type=int, default=0, help="torch/ORT CPU threads (0 = torch default)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "style_transfer.json"))
    ap.add_argument("--md", default=str(ROOT / "docs" / "bench" / "style_transfer.md"))
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    do_compile = args.do_compile if args.do_compile is not None else device.type == "cuda"
    torch.manual_seed(0)
    t_start = time.perf_counter()

    content = torch.rand(1, 3, 512, 512, device=device)
    style = torch.rand(1, 3, 512, 512, device=device)
    vgg = VGG19Features(("relu5_1",)).to(device)
    ours_s, ours_cpu = bench_our_gatys(vgg, content, style, args.evals, device)
    cnn = build_features().to(device).eval()
    cnn.load_state_dict(vgg.features.state_dict(), strict=False)
    ref_s, ref_cpu = bench_reference_gatys(cnn, content, style, args.evals, device)
    fast = bench_fast(device, args.repeats, args.compile_budget, do_compile)
    result = {
        "machine": machine(str(device)), "device": str(device),
        "gatys": {"size": 512, "evals_timed": args.evals, "extrapolated_steps": GATYS_STEPS_CLAIMED,
                  "ours_s_per_step": ours_s, "reference_s_per_eval": ref_s,
                  "ours_cpu_s_per_step": ours_cpu, "reference_cpu_s_per_eval": ref_cpu,
                  "ours_s_per_image_extrapolated": ours_s * GATYS_STEPS_CLAIMED,
                  "reference_s_per_image_extrapolated": ref_s * GATYS_STEPS_CLAIMED},
        "fast_512": fast,
        "wall_s": time.perf_counter() - t_start, "cpu_s": time.process_time(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    Path(args.md).parent.mkdir(parents=True, exist_ok=True)
    Path(args.md).write_text(markdown(result))
    print(json.dumps(result, indent=2))
    return 0


def _fmt(v, unit="") -> str:
    return "n/a" if v is None else f"{v:,.1f}{unit}"


def markdown(r: dict) -> str:
    g, f = r["gatys"], r["fast_512"]
    eager = f["eager_ms"]
    cpu = r["device"] == "cpu"
    key = "_cpu_ms" if cpu else "_ms"  # on a CPU, compare CPU time (robust to a shared machine)
    eager = f["eager" + key]
    rows = [("PyTorch eager (reference: pytorch/examples `stylize`)", "eager"),
            ("channels_last", "channels_last"), ("torch.compile", "compiled"),
            (f"ONNX Runtime ({f.get('onnxruntime_provider', 'n/a')})", "onnxruntime")]
    lines = [
        "# Style transfer benchmark", "",
        f"Machine: {r['machine']} (device `{r['device']}`). Produced by `python bench/style_transfer_bench.py"
        f"{'' if r['device'] == 'cpu' else ' --device ' + r['device']}`; raw figures in "
        "`bench/results/style_transfer.json`. Random weights (speed does not depend on them).", "",
        "## Gatys, 512x512 output", "",
        f"Timed {g['evals_timed']} VGG19 forward+backward evaluations per implementation and **extrapolated** "
        f"to {g['extrapolated_steps']} steps (the seed's default); not a full run.", "",
        "| implementation | wall s / step | CPU s / step | s / image (x300, extrapolated, wall) |",
        "|---|---:|---:|---:|",
        f"| reference (PyTorch tutorial construction, same layers) | {g['reference_s_per_eval']:.2f} | "
        f"{g['reference_cpu_s_per_eval']:.2f} | {g['reference_s_per_image_extrapolated']:,.0f} |",
        f"| ours (`run_gatys`, L-BFGS, 1 evaluation per step) | {g['ours_s_per_step']:.2f} | "
        f"{g['ours_cpu_s_per_step']:.2f} | {g['ours_s_per_image_extrapolated']:,.0f} |", "",
        "## Fast network (TransformerNet), one 512x512 frame", "",
        f"| runtime | wall ms / frame | CPU ms / frame | speed vs eager ({'CPU' if cpu else 'wall'} time) |",
        "|---|---:|---:|---:|",
    ]
    for name, k in rows:
        ms = f.get(k + key)
        lines.append(f"| {name} | {_fmt(f.get(k + '_ms'))} | {_fmt(f.get(k + '_cpu_ms'))} | "
                     f"{'n/a' if not ms else f'x{eager / ms:.2f}'} |")
    notes = []
    if f.get("compiled_note"):
        notes.append(f"torch.compile: {f['compiled_note']}.")
    elif f.get("compile_s") is not None:
        notes.append(f"torch.compile: first call (compilation) took {f['compile_s']:.0f} s.")
    if f.get("onnx_max_diff") is not None:
        notes.append(f"ONNX max |diff| vs PyTorch on the 512 px frame: {f['onnx_max_diff']:.2e} (0-255 scale).")
    load = r.get("load_average")
    lines += ["", *notes, "", f"Bench run: {r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} s CPU"
              + (f"; machine load average {load[0]:.1f} at the end (other jobs were sharing the cores, "
                 "so wall times are inflated; CPU times are the comparable figures)" if load else "") + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
