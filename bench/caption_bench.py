"""Captioning benchmark: batched vs one image at a time, same model, same images, same run.

Both variants run the studio's real path (`captioners.load_one` then
`captioners.run.caption_project` over a project folder, captions written to disk); only
`batch_size` differs (1 = the reference, one image per model call, as most captioning
scripts do; N = ours). Models are random, built on the spot, with the real layouts:

- WD14-style tagger: an ONNX conv net built with the onnx helper API at the real input size
  (448 px NHWC BGR) and 10,000 tags (the real taggers have ~10.9k), run by onnxruntime;
- VLM: a small random Qwen2.5-VL (tests/lora_training/tiny_qwen_vl.py, enlarged), 224 px
  images (64 image tokens each), greedy decoding of a fixed number of new tokens.

Speed does not depend on the weights' values, but the ratio depends on model size: real
taggers / VLMs are far larger, where batching mostly pays on a GPU. CPU process time is
reported next to wall time (the machine is shared). On CUDA the VLM is larger (a model this
small is all overhead on a GPU) and runs in bf16; the tagger uses onnxruntime's CUDA provider
when onnxruntime-gpu is installed (the provider that ran is reported). Writes
bench/results/caption[_cuda].json and docs/bench/caption.md (both devices' tables).

    python bench/caption_bench.py [--device cpu|cuda] [--images 16] [--batch 8] [--threads 1]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

N_TAGS = 10_000


def make_conv_tagger(folder: Path, side: int = 448) -> Path:
    """A random conv tagger in WD14 layout: NHWC input, 3 strided convs, pool, dense, sigmoid."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    chans = [3, 32, 64, 128, 256]
    nodes = [helper.make_node("Transpose", ["input"], ["x0"], perm=[0, 3, 1, 2])]
    inits = []
    for i in range(4):
        w = (rng.standard_normal((chans[i + 1], chans[i], 3, 3)) * 0.05).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes += [helper.make_node("Conv", [f"x{i}", f"w{i}"], [f"c{i}"], strides=[2, 2], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"x{i + 1}"])]
    dense = (rng.standard_normal((chans[-1], N_TAGS)) * 0.01).astype(np.float32)
    inits.append(numpy_helper.from_array(dense, "dense"))
    nodes += [helper.make_node("GlobalAveragePool", ["x4"], ["pool"]), helper.make_node("Flatten", ["pool"], ["flat"]),
              helper.make_node("MatMul", ["flat", "dense"], ["logits"]),
              helper.make_node("Sigmoid", ["logits"], ["output"])]
    graph = helper.make_graph(nodes, "bench_tagger",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", side, side, 3])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", N_TAGS])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / "model.onnx"))
    with open(folder / "selected_tags.csv", "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["tag_id", "name", "category", "count"])
        for i in range(N_TAGS):
            out.writerow([i, f"tag_{i}", 9 if i < 4 else (4 if i % 10 == 0 else 0), N_TAGS - i])
    return folder


def make_project(root: Path, n: int):
    from PIL import Image

    from modules.lora_training.data.project import Project

    project = Project(root, "bench")
    d = project.data_dir / "c"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((512, 384), Image.Resampling.BICUBIC).save(d / f"img{i:03d}.png")
    return project


def run(project, model, opts, batch: int) -> dict:
    from dataclasses import replace

    from modules.lora_training.data.captioners.run import caption_project

    opts = replace(opts, batch_size=batch, overwrite=True)
    caption_project(project, None, lambda: model, replace(opts, batch_size=batch))  # warm-up pass
    t0, c0 = time.perf_counter(), time.process_time()
    report = caption_project(project, None, lambda: model, opts)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(report.written)
    caps = sorted((project.data_dir / "c").glob("*.txt"))
    return {"batch": batch, "images": n, "wall_s": wall, "cpu_s": cpu, "img_per_s": n / wall,
            "cpu_ms_per_img": 1000 * cpu / n, "first_caption": caps[0].read_text(encoding="utf-8")[:80]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--new-tokens", type=int, default=16)
    a = ap.parse_args()
    import onnxruntime as ort
    import torch

    from modules.lora_training.data.captioners import CaptionOptions, load_one
    from modules.lora_training.data.captioners.wd14 import load_wd14
    from tests.lora_training.tiny_qwen_vl import make_tiny_qwen_vl

    torch.set_num_threads(a.threads)
    cuda = a.device.startswith("cuda")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        project = make_project(tmp / "projects", a.images)
        tagger = load_wd14(make_conv_tagger(tmp / "models" / "tagger"), a.device, threads=a.threads)
        provider = tagger.session.get_providers()[0]
        opts = CaptionOptions(kind="wd14", general_threshold=0.5)
        results["wd14"] = [run(project, tagger, opts, 1), run(project, tagger, opts, a.batch)]
        size = dict(hidden=1024, layers=12, vision_hidden=768, vision_depth=8) if cuda else \
            dict(hidden=256, layers=4, vision_hidden=128, vision_depth=2)
        vlm_dir = make_tiny_qwen_vl(tmp / "models" / "vlm", side=224, **size)
        vlm = load_one("vlm", str(vlm_dir), tmp / "models", "", a.device, torch.bfloat16 if cuda else torch.float32)
        vlm.model.generation_config.eos_token_id = None  # random weights: always the same number of tokens
        n_params = sum(p.numel() for p in vlm.model.parameters())
        opts = CaptionOptions(kind="vlm", prompt="describe this image in one sentence.", max_new_tokens=a.new_tokens)
        results["vlm"] = [run(project, vlm, opts, 1), run(project, vlm, opts, a.batch)]
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, onnxruntime {ort.__version__}"
    if cuda:
        machine = torch.cuda.get_device_name(0) + ", " + machine
    data = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine, "device": a.device,
            "threads": a.threads, "images": a.images, "new_tokens": a.new_tokens, "results": results,
            "vlm_params": n_params, "tagger_provider": provider}
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / f"caption{'_cuda' if cuda else ''}.json").write_text(json.dumps(data, indent=2),
                                                                                     encoding="utf-8")
    write()


def write() -> None:
    """docs/bench/caption.md from the CPU and (when it ran) the CUDA results."""
    lines = ["# Captioning benchmark", "",
             "`python bench/caption_bench.py [--device cuda]`: images (512x384 PNG) captioned through the studio's "
             "real path (`caption_project`: load, batch, write `.txt`). Reference: one image per model call "
             "(batch 1), as most captioning scripts run. Ours: the same model and images with batched calls. "
             "A warm-up pass precedes each timed pass.", ""]
    for suffix in ("", "_cuda"):
        f = ROOT / "bench" / "results" / f"caption{suffix}.json"
        if not f.is_file():
            lines += ["## GPU", "", "Not measured: no GPU was lent to this work, so there are no GPU figures. "
                      "`bench/gpu_all.sh` runs `bench/caption_bench.py --device cuda`.", ""] if suffix else []
            continue
        lines += _device_section(json.loads(f.read_text(encoding="utf-8")))
    lines += ["Models this small are far cheaper than the real ones (WD14 EVA02-large: ~315 M parameters; "
              "Qwen2.5-VL-3B: 3.8 B); on one CPU thread batching mainly saves per-call overhead."]
    (ROOT / "docs" / "bench").mkdir(exist_ok=True)
    (ROOT / "docs" / "bench" / "caption.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def _device_section(data: dict) -> list[str]:
    results, device = data["results"], data.get("device", "cpu")
    names = {"wd14": f"WD14-style ONNX tagger (random conv net, 448 px, {N_TAGS:,} tags, "
                     f"{data.get('tagger_provider', 'CPUExecutionProvider')})",
             "vlm": f"Qwen2.5-VL, random, {data['vlm_params'] / 1e6:.1f} M params (224 px, "
                    f"{data.get('new_tokens', 16)} new tokens)"}
    lines = [f"## {'GPU' if device.startswith('cuda') else 'CPU'}", "",
             f"{data['images']} images, device {device}, {data['threads']} thread(s). Machine: {data['machine']}. "
             f"{data['when']}.", "",
             "| model | batch | images / s (wall) | CPU ms / image | wall s |", "|---|---|---|---|---|"]
    for key, rows in results.items():
        for r in rows:
            lines.append(f"| {names[key]} | {r['batch']} | {r['img_per_s']:.2f} | {r['cpu_ms_per_img']:.0f} | "
                         f"{r['wall_s']:.1f} |")
    lines.append("")
    gpu = device.startswith("cuda")
    for key, (one, many) in results.items():
        lines.append(f"- {names[key]}: batch {many['batch']} vs 1: **{many['img_per_s'] / one['img_per_s']:.2f}x** "
                     f"images/s (wall), {one['cpu_ms_per_img'] / many['cpu_ms_per_img']:.2f}x in CPU time per image.")
        if many["cpu_ms_per_img"] >= one["cpu_ms_per_img"] and not gpu:
            lines.append("  Batching does not pay for this model on this CPU (no less CPU time per image; the wall "
                         "figures move with the load of other jobs): on CPU, batch size 1 is as good for it.")
    lines.append("")
    return lines


if __name__ == "__main__":
    main()
