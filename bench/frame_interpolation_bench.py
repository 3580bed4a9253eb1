"""Bench: our RIFE video pipeline against a straightforward Practical-RIFE-style loop.

Same run, same random full-size weights (4.25 layout), same synthetic source videos, same
encoder settings. Two contestants per resolution:

* ``ours``      - `core.media.VideoReader` -> `VideoPipeline` (decode, inference, encode in
                  three threads with bounded queues; features encoded once per frame;
                  inputs padded to the model multiple of 64) -> `VideoWriter`.
* ``reference`` - the loop of Practical-RIFE's ``inference_video.py`` without its buffer
                  threads: decode a frame, pad to a multiple of 128 (their rule), run the
                  published forward (transcribed in tests/frame_interpolation/reference_rife.py)
                  for each timestep, convert, encode, then read the next frame.
Both run scene detection on every pair (ours: the histogram check in the decode thread;
reference: the same check inline). Figures: interpolated frames per second and output
frames per second (wall clock, including decode and encode).

    python bench/frame_interpolation_bench.py            # CPU, ~2-3 min on 2 cores
    python bench/frame_interpolation_bench.py --device cuda --fp16 --frames 24
Writes bench/results/frame_interpolation.json and docs/bench/frame_interpolation.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from core.media import VideoReader, VideoWriter  # noqa: E402
from modules.frame_interpolation.engine import Interpolator  # noqa: E402
from modules.frame_interpolation.pipeline import VideoPipeline  # noqa: E402
from modules.frame_interpolation.scenes import SceneDetector  # noqa: E402
from modules.frame_interpolation.weights import load_ifnet  # noqa: E402
from tests.core.media_fixtures import make_test_video  # noqa: E402
from tests.frame_interpolation.reference_rife import RefIFNet425  # noqa: E402

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
PRESET = "veryfast"
RESULTS = ROOT / "bench" / "results" / "frame_interpolation.json"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _warm_up(fn, h: int, w: int, device: str, dtype) -> None:
    """One forward at the video's padded size before timing (kernel selection, allocations)."""
    x = torch.rand(1, 3, h, w, device=device, dtype=dtype)
    with torch.no_grad():
        fn(x, x)
    _sync(device)


def run_ours(src: Path, out: Path, weights: Path, device: str, dtype, multi: int) -> dict:
    interp = Interpolator(load_ifnet(weights), device, dtype)
    with VideoReader(src) as r:
        ph, pw = interp.pad_size(r.height, r.width)
    _warm_up(lambda a, b: interp.net(a, b, 0.5), ph, pw, device, dtype)
    _sync(device)
    t0 = time.perf_counter()
    reader = VideoReader(src)
    fps = Fraction(reader.fps)
    writer = VideoWriter(out, fps * multi, codec="h264", crf=18, preset=PRESET)
    stats = VideoPipeline(interp, fps * multi, detector=SceneDetector("hist", 0.3)).run(
        reader, writer, reader.duration, fps)
    reader.close()
    _sync(device)
    return {"seconds": time.perf_counter() - t0, "written": stats.written, "interpolated": stats.interpolated}


def run_reference(src: Path, out: Path, weights: Path, device: str, dtype, multi: int) -> dict:
    """Practical-RIFE's inference_video.py main loop, minus its read/write buffer threads."""
    model = RefIFNet425()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict({k.replace("module.", ""): v for k, v in state.items() if "module." in k}, False)
    model = model.to(device=device, dtype=dtype).eval()
    detector = SceneDetector("hist", 0.3)

    def inference(i0, i1, t):  # Model.inference of RIFE_HDv3.py (4.25), scale 1
        return model(torch.cat((i0, i1), 1), t, [16, 8, 4, 2, 1])

    with VideoReader(src) as r:
        _warm_up(lambda a, b: inference(a, b, 0.5), -(-r.height // 128) * 128, -(-r.width // 128) * 128,
                 device, dtype)

    _sync(device)
    t0 = time.perf_counter()
    reader = VideoReader(src)
    writer = VideoWriter(out, Fraction(reader.fps) * multi, codec="h264", crf=18, preset=PRESET)
    frames = iter(reader)
    lastframe = next(frames)[0]
    h, w, _ = lastframe.shape
    tmp = 128
    ph, pw = ((h - 1) // tmp + 1) * tmp, ((w - 1) // tmp + 1) * tmp
    padding = (0, pw - w, 0, ph - h)

    def to_tensor(f):
        x = torch.from_numpy(np.transpose(f, (2, 0, 1)).copy()).to(device).unsqueeze(0).to(dtype) / 255.0
        return F.pad(x, padding)

    detector.check(lastframe)
    i1 = to_tensor(lastframe)
    written = interpolated = 0
    with torch.no_grad():
        for frame, _ in frames:
            i0, i1 = i1, to_tensor(frame)
            cut = detector.check(frame).cut_before
            output = [i0] * (multi - 1) if cut else [inference(i0, i1, (i + 1) / multi) for i in range(multi - 1)]
            interpolated += 0 if cut else multi - 1
            writer.write(lastframe)
            for mid in output:
                writer.write((mid[0].clamp(0, 1) * 255.0).byte().cpu().numpy().transpose(1, 2, 0)[:h, :w])
            written += multi
            lastframe = frame
    writer.write(lastframe)
    writer.close()
    reader.close()
    _sync(device)
    return {"seconds": time.perf_counter() - t0, "written": written + 1, "interpolated": interpolated}


def agreement(src: Path, weights: Path) -> float:
    """PSNR (dB) between our and the reference's middle frame of the first pair (CPU, fp32)."""
    # a crop keeps it quick; 250x380 is not a multiple of 64/128, so the paddings differ
    frames = [f[:250, :380] for (f, _), _ in zip(VideoReader(src), range(2))]
    ours = Interpolator(load_ifnet(weights)).interpolate_arrays(frames[0], frames[1], [0.5])[0]
    ref = run_reference_single(frames[0], frames[1], weights)
    mse = np.mean((ours.astype(np.float64) - ref.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def run_reference_single(a: np.ndarray, b: np.ndarray, weights: Path) -> np.ndarray:
    model = RefIFNet425()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict({k.replace("module.", ""): v for k, v in state.items()})
    h, w, _ = a.shape
    ph, pw = -(-h // 128) * 128, -(-w // 128) * 128
    x = [F.pad(torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255, (0, pw - w, 0, ph - h)) for f in (a, b)]
    with torch.no_grad():
        y = model.eval()(torch.cat(x, 1), 0.5)
    return (y[0, :, :h, :w].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fp16", action="store_true", help="half precision (GPU only)")
    ap.add_argument("--sizes", default="720p,1080p")
    ap.add_argument("--frames", type=int, default=0, help="source frames per video (default: 3 at 720p, 2 at 1080p: CPU time)")
    ap.add_argument("--multi", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--skip-agreement", action="store_true")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite the table from the last JSON")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.markdown_only:
        write_markdown(json.loads(RESULTS.read_text()), ROOT / "docs" / "bench" / "frame_interpolation.md")
        return 0
    dtype = torch.float16 if a.fp16 and a.device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    results = {"machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                           "torch": torch.__version__, "threads": torch.get_num_threads(), "device": a.device,
                           "dtype": str(dtype).replace("torch.", ""),
                           "load_before": [round(x, 2) for x in os.getloadavg()]},
               "variant": "4.25 (random weights)", "multi": a.multi, "runs": []}
    if a.device.startswith("cuda"):
        results["machine"]["gpu"] = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        from modules.frame_interpolation.ifnet import IFNet, IFNetConfig

        weights = tmp / "flownet.pkl"
        torch.save({"module." + k: v for k, v in IFNet(IFNetConfig.full("4.25")).state_dict().items()}, weights)
        for name in a.sizes.split(","):
            w, h = SIZES[name]
            n = a.frames or (3 if name == "720p" else 2)
            src = make_test_video(tmp / f"{name}.mp4", n_frames=n, fps=Fraction(24), size=(w, h), with_audio=False,
                                  step=24)
            row = {"size": name, "source_frames": n}
            # alternate the order so neither contestant always runs on a warmer machine
            order = ("reference", "ours") if len(results["runs"]) % 2 else ("ours", "reference")
            for who in order:
                fn = run_ours if who == "ours" else run_reference
                cpu0 = time.process_time()
                r = fn(src, tmp / f"{name}_{who}.mp4", weights, a.device, dtype, a.multi)
                r["cpu_s"] = time.process_time() - cpu0  # all threads; robust to other load
                r["interp_fps"] = r["interpolated"] / r["seconds"]
                r["out_fps"] = r["written"] / r["seconds"]
                row[who] = r
                print(f"{name} {who:9s} {r['seconds']:7.2f} s  {r['interp_fps']:.3f} interpolated/s  "
                      f"{r['out_fps']:.3f} frames/s  cpu {r['cpu_s']:.1f} s", flush=True)
            row["speedup"] = row["ours"]["interp_fps"] / row["reference"]["interp_fps"]
            if not a.skip_agreement and name == "720p":
                row["psnr_ours_vs_reference_db"] = agreement(src, weights)
            results["runs"].append(row)
    results["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    out = RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    write_markdown(results, ROOT / "docs" / "bench" / "frame_interpolation.md")
    return 0


def write_markdown(res: dict, path: Path) -> None:
    m = res["machine"]
    lines = [
        "# Frame interpolation benchmark (RIFE)",
        "",
        f"Machine: {m['processor']}, {m['platform']}, torch {m['torch']}, {m['threads']} threads, "
        f"device `{m['device']}` ({m.get('gpu', 'CPU')}), {m['dtype']}. Model: {res['variant']}, "
        f"{res['multi']}x. Written by `bench/frame_interpolation_bench.py`. Load average (1/5/15 min) "
        f"before: {m['load_before']}, after: {m['load_after']} on {os.cpu_count()} cores: other jobs shared "
        "the machine, so wall times are noisy; process CPU seconds (all threads) are steadier.",
        "",
        "| video | source frames | pipeline | wall s | CPU s | interpolated frames/s | output frames/s "
        "| speed-up (wall) | CPU ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        for who in ("reference", "ours"):
            x = r[who]
            sp = f"{r['speedup']:.2f}x" if who == "ours" else ""
            cr = f"{r['reference']['cpu_s'] / x['cpu_s']:.2f}x" if who == "ours" else ""
            label = "Practical-RIFE-style loop" if who == "reference" else "ours (threaded pipeline)"
            lines.append(f"| {r['size']} | {r['source_frames']} | {label} | {x['seconds']:.2f} | {x['cpu_s']:.1f} | "
                         f"{x['interp_fps']:.3f} | {x['out_fps']:.3f} | {sp} | {cr} |")
    psnr = [r["psnr_ours_vs_reference_db"] for r in res["runs"] if "psnr_ours_vs_reference_db" in r]
    lines += ["", "Output frames: ours writes n x multi (the last frame held, so the duration equals the "
              "source's); the reference loop writes (n - 1) x multi + 1 like Practical-RIFE. "
              "Speed-up (wall) compares interpolated frames per second; CPU ratio is the reference's "
              "process CPU time over ours for the same work (higher is better for us)."]
    if psnr:
        lines.append(f"Agreement on a 380x250 crop (padded differently: we replicate-pad to 64, the reference "
                     f"zero-pads to 128): PSNR between the two middle frames {psnr[0]:.1f} dB.")
    lines += ["", "Where the difference comes from: (1) padding - we pad to the model's multiple (64 at scale 1), "
              "the reference to 128, so 1080p runs at 1088 instead of 1152 rows (5.9% fewer pixels; 720p is 768 "
              "rows for both); (2) a leaner forward with the same numbers - block inputs resized part by part "
              "instead of a full-resolution concatenation, one sampling grid per flow, no feature warp after "
              "the last level, each frame's encoder features computed once; (3) decoding and encoding overlap "
              "inference in their own threads - on this loaded 2-core box there is no idle core for them, so "
              "this part shows mostly on a GPU, where the CPU-side IO runs beside the device.",
              "", "No GPU figures: no GPU was lent to this session; run with `--device cuda --fp16` to add them."]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
