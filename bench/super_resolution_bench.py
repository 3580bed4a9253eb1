"""Super-resolution benchmark: our engine against the Real-ESRGAN script's way, same run.

Reference = what `RealESRGANer` does (re-implemented here from its algorithm, weights are
the same module): reflect pre-pad 10, fixed tiles (default 400) with 10 px context and
no blending, fp32, a full-size float output tensor, then one conversion to uint8.
Ours = `Upscaler.upscale`: automatic tile, 16 px context + 16 px feathered overlap, output
assembled band by band straight into a uint8 array.

Peak memory is the RAM (and GPU memory) a fresh process adds while upscaling one large
input, above what it held before (sampled every 5 ms), next to the size of the uint8 result.

Measured: images/s (SRVGG compact at real size, RRDB at reduced size), frames/s on 1080p
frames (engine only: decode/encode are the same code for both), the seam error of each
against an untiled pass, and peak memory (max RSS of a fresh process) for a large input.
Random weights: speed and memory do not depend on the values. Each case reports wall-clock
images/s and, because a shared machine's load drifts, also the ratio of process CPU time
(reference / ours; > 1 means we did less work).

    python bench/super_resolution_bench.py            # CPU, reduced sizes, < 3 min
    python bench/super_resolution_bench.py --device cuda --full   # GPU: real sizes, 4K input
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modules.super_resolution.archs import RRDBNet, SRVGGNetCompact  # noqa: E402
from modules.super_resolution.detect import identify  # noqa: E402
from modules.super_resolution.engine import Upscaler  # noqa: E402


# -- the reference: Real-ESRGAN's RealESRGANer (pre_process / tile_process / post_process) --
@torch.inference_mode()
def reference_upscale(model, img_u8: np.ndarray, scale: int, tile: int = 400, tile_pad: int = 10,
                      pre_pad: int = 10, device: str = "cpu") -> np.ndarray:
    x = torch.from_numpy(np.transpose(img_u8.astype(np.float32) / 255.0, (2, 0, 1))).unsqueeze(0).to(device)
    if pre_pad:
        x = F.pad(x, (0, pre_pad, 0, pre_pad), "reflect")
    _, c, h, w = x.shape
    if tile <= 0:
        out = model(x)
    else:
        out = x.new_zeros((1, c, h * scale, w * scale))
        for ty in range(math.ceil(h / tile)):
            for tx in range(math.ceil(w / tile)):
                x0, y0 = tx * tile, ty * tile
                x1, y1 = min(x0 + tile, w), min(y0 + tile, h)
                px0, py0 = max(x0 - tile_pad, 0), max(y0 - tile_pad, 0)
                px1, py1 = min(x1 + tile_pad, w), min(y1 + tile_pad, h)
                o = model(x[:, :, py0:py1, px0:px1])
                oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
                out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                    o[:, :, oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale]
    if pre_pad:
        out = out[:, :, : (h - pre_pad) * scale, : (w - pre_pad) * scale]
    arr = out.squeeze(0).float().cpu().clamp_(0, 1).numpy()
    arr = np.transpose(arr, (1, 2, 0))
    return (arr * 255.0).round().astype(np.uint8)


# -- networks --------------------------------------------------------------------------------
def make_net(kind: str, full: bool):
    torch.manual_seed(0)
    if kind == "compact":  # realesr-animevideov3 size: 64 feat, 16 convs, x4
        net = SRVGGNetCompact(3, 3, 64, 16, 4)
    elif kind == "compact_tiny_x2":
        net = SRVGGNetCompact(3, 3, 16, 4, 2)
    elif kind == "compact_tiny_x4":
        net = SRVGGNetCompact(3, 3, 16, 4, 4)
    else:  # RRDB: x4plus is 64 feat / 23 blocks; reduced on CPU
        net = RRDBNet(3, 3, 64 if full else 32, 23 if full else 2, 32 if full else 16, 2, 1)
    spec, _ = identify(net.state_dict())
    return net.eval(), spec


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = (rng.random((h // 8 + 2, w // 8 + 2, 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def speed_case(name, kind, hw, repeat, device, full, ref_tile=400):
    """Seconds per image for ours and the reference, runs interleaved (the machine's load
    drifts; alternating keeps that drift out of the ratio), after a small warm-up."""
    net, spec = make_net(kind, full)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    ours = Upscaler(net, spec).to(device, dtype)
    ref_net, _ = make_net(kind, full)
    ref_net = ref_net.to(device)
    img, warm = image(*hw), image(64, 64)
    ours.upscale(warm)
    reference_upscale(ref_net, warm, spec.scale, tile=ref_tile, device=device)
    t_ours = t_ref = c_ours = c_ref = 0.0
    for _ in range(repeat):
        _sync()
        t0, c0 = time.perf_counter(), time.process_time()
        ours.upscale(img)
        _sync()
        t1, c1 = time.perf_counter(), time.process_time()
        reference_upscale(ref_net, img, spec.scale, tile=ref_tile, device=device)
        _sync()
        t_ours, t_ref = t_ours + t1 - t0, t_ref + time.perf_counter() - t1
        c_ours, c_ref = c_ours + c1 - c0, c_ref + time.process_time() - c1
    t_ours, t_ref = t_ours / repeat, t_ref / repeat
    return {"case": name, "input": f"{hw[1]}x{hw[0]}", "scale": spec.scale, "net": spec.describe(),
            "ours_per_s": round(1 / t_ours, 3), "ref_per_s": round(1 / t_ref, 3),
            "speedup": round(t_ref / t_ours, 2), "cpu_time_ratio": round(c_ref / max(c_ours, 1e-9), 2),
            "ours_tile": ours.auto_tile(hw, 16), "ours_dtype": str(ours.dtype).replace("torch.", "")}


def seam_case(device, full, tile=32):
    """Max error against an untiled pass when both are forced to the same tile size."""
    net, spec = make_net("rrdb", full)
    ours = Upscaler(net, spec).to(device, torch.float32)
    img = image(96, 128, seed=3) if full else image(64, 96, seed=3)
    whole = ours.upscale(img, tile=4096).astype(int)
    ours_t = ours.upscale(img, tile=tile).astype(int)
    ref_t = reference_upscale(net.to(device), img, spec.scale, tile=tile, pre_pad=0, device=device).astype(int)
    ref_whole = reference_upscale(net, img, spec.scale, tile=0, pre_pad=0, device=device).astype(int)
    return {"case": f"seams, RRDB, tile {tile}", "ours_max_err": int(np.abs(whole - ours_t).max()),
            "ref_max_err": int(np.abs(ref_whole - ref_t).max()),
            "ours_mean_err": round(float(np.abs(whole - ours_t).mean()), 4),
            "ref_mean_err": round(float(np.abs(ref_whole - ref_t).mean()), 4)}


def _peak_child(which: str, hw, device: str, q, tile: int = 400) -> None:
    """Runs in a fresh process: samples its RSS every 5 ms while one upscale runs."""
    import threading

    import psutil

    net, spec = make_net("compact_tiny_x4", False)
    img = image(*hw)
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    running = [True]

    def sample():
        while running[0]:
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.005)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    if which == "ours":
        out = Upscaler(net, spec).to(device, torch.float32).upscale(img, tile=tile)
    else:
        out = reference_upscale(net.to(device), img, spec.scale, tile=tile, device=device)
    dt = time.perf_counter() - t0
    running[0] = False
    th.join()
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    q.put({"which": which, "ram_peak_mb": round((peak[0] - base) / 2**20, 1),
           "gpu_peak_mb": None if gpu is None else round(gpu, 1), "seconds": round(dt, 2),
           "output": f"{out.shape[1]}x{out.shape[0]}", "output_mb": round(out.nbytes / 2**20, 1)})


def peak_case(hw, device):
    """Both at the same 400 px tiles (the difference is how the result is assembled), and
    ours again with its automatic tile."""
    ctx = mp.get_context("spawn")
    res = {}
    for label, which, tile in (("ours", "ours", 400), ("ref", "ref", 400), ("ours_auto", "ours", 0)):
        q = ctx.Queue()
        p = ctx.Process(target=_peak_child, args=(which, hw, device, q, tile))
        p.start()
        res[label] = q.get(timeout=600)
        p.join()
    return {"case": f"peak memory, {hw[1]}x{hw[0]} x4 (tiny compact)", **{f"{k}_{m}": v for k, r in res.items()
                                                                           for m, v in r.items() if m != "which"}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full", action="store_true", help="real-size RRDB and compact on 1080p, 4K peak input")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "super_resolution.json"))
    a = ap.parse_args()
    dev, full = a.device, a.full
    t0 = time.time()
    rows = []
    if full:
        rows.append(speed_case("images: SRVGG compact x4 (real size)", "compact", (540, 960), 3, dev, full))
        rows.append(speed_case("images: RRDB x4 (real size)", "rrdb", (540, 960), 2, dev, full))
        rows.append(speed_case("frames: 1080p, SRVGG compact x4 (real size)", "compact", (1080, 1920), 3, dev, full))
    else:
        rows.append(speed_case("images: SRVGG compact x4 (real size)", "compact", (144, 256), 2, dev, full))
        rows.append(speed_case("images: RRDB x4 (nf 32, nb 2)", "rrdb", (64, 96), 2, dev, full))
        rows.append(speed_case("frames: 1080p, tiny compact x2 (nf 16, nc 4)", "compact_tiny_x2", (1080, 1920), 1,
                               dev, full))
    seams = seam_case(dev, full)
    peak = peak_case((2160, 3840) if full else (720, 1280), dev)
    result = {"machine": {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
                          "torch": torch.__version__, "threads": torch.get_num_threads(), "device": dev,
                          "gpu": torch.cuda.get_device_name(0) if dev.startswith("cuda") else None},
              "full": full, "speed": rows, "seams": seams, "peak": peak, "seconds": round(time.time() - t0, 1)}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
