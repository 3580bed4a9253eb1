"""Memory of a real-size SDXL LoRA step, measured, against the estimate shown before a run.

Each case (VRAM preset, resolution, batch) runs in a fresh process: the real SDXL UNet
(published config, random weights: memory does not depend on the values) in bf16 with the
preset's LoRA, gradient checkpointing and batch, one training step through the studio's own
step code (`step.diffusion_loss` + `step.optimizer_step`) on cached-latent-shaped inputs.
Three figures per case:

- peak memory: `torch.cuda.max_memory_allocated` on CUDA (live tensor bytes); on CPU the peak
  RSS of the process (psutil, sampled every 10 ms; it includes the Python/torch runtime). By
  default the CPU child runs with `MALLOC_MMAP_THRESHOLD_=262144`, so every large tensor is
  its own mapping, returned to the system when freed: RSS then follows the live tensors, as
  max_memory_allocated does on CUDA. With glibc's default heap (`--heap default`) freed
  blocks stay in the process and the peak RSS adds the heap's high-water mark (measured:
  +0.5 GiB at 512 px and +2.5 GiB at 1024 px with gradient checkpointing);
- activations: bytes autograd saves for the backward (a `saved_tensors_hooks` count, unique
  storages), the part that grows with pixels and batch; it is the same tensors on CPU and CUDA,
  save for the attention kernel's own buffers;
- the estimate `config.estimate` shows for the same settings (`vram_gib`).

On CPU `adamw8bit` (CUDA only) runs as AdamW: the estimate is computed for what ran, and the
difference for the preset's own optimizer is given (its states are 2 bytes per LoRA
parameter instead of 8). Writes bench/results/lora_memory_<cpu|cuda>.json and
docs/bench/lora_memory.md.

    python bench/lora_memory_bench.py [--device cpu|cuda] [--cases 8:1024:1,16:512:2,24:512:1]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DEFAULT_CASES = {"cpu": "8:1024:1,24:256:1,24:512:1,16:512:2",
                 "cuda": "8:1024:1,12:1024:1,16:1024:2,24:1024:4"}


def fast_unet(device: str):
    """The real SDXL UNet in bf16, weights drawn straight into place (N(0, 0.02)): building
    through the modules' own init takes minutes on two cores and changes nothing measured."""
    import torch
    from diffusers import UNet2DConditionModel

    from modules.lora_training.train.config import SDXL_UNET_CONFIG

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(SDXL_UNET_CONFIG)
    unet = unet.to_empty(device=device).to(torch.bfloat16)
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for q in unet.parameters():
            q.normal_(0.0, 0.02, generator=gen)
        for b in unet.buffers():
            b.zero_()
    return unet.requires_grad_(False)


class SavedBytes:
    """Bytes of the distinct storages autograd keeps for the backward pass, the model's own
    weights left out (a Linear saves its weight for the input gradient: that is not an
    activation, it is resident anyway)."""

    def __init__(self, model) -> None:
        self.seen: dict[int, int] = {}
        self.weights = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}

    def pack(self, t):
        try:
            st = t.untyped_storage()
            if st.data_ptr() not in self.weights:
                self.seen[st.data_ptr()] = st.nbytes()
        except (RuntimeError, NotImplementedError):  # tensors without storage (sparse, meta)
            pass
        return t

    @property
    def gib(self) -> float:
        return sum(self.seen.values()) / 2**30


def child(a) -> None:
    import contextlib

    import psutil
    import torch
    from diffusers import DDPMScheduler
    from diffusers.models.attention_processor import AttnProcessor2_0

    import realsize_parts as rp
    from modules.lora_training.train import config as cfg
    from modules.lora_training.train import lora_setup, optim
    from modules.lora_training.train.step import diffusion_loss, optimizer_step

    preset, res, batch = a.case.split(":")
    res, batch = int(res), int(batch)
    cuda = a.device.startswith("cuda")
    p = case_params(preset, res, batch)
    ran = p if cuda or p.optimizer != "adamw8bit" else p.model_copy(update={"optimizer": "adamw"})
    t0 = time.perf_counter()
    unet = fast_unet(a.device)
    groups = lora_setup.setup(unet, None, None, ran)
    trainable = [q for g in groups for q in g["params"]]
    unet.set_attn_processor(AttnProcessor2_0())
    unet.enable_gradient_checkpointing() if ran.gradient_checkpointing else unet.disable_gradient_checkpointing()
    unet.train()
    opt = optim.build_optimizer(ran.optimizer, groups, 1e-2, a.device)
    sched = optim.build_scheduler("constant", opt, 0, 10)
    scaler = torch.amp.GradScaler("cuda" if cuda else "cpu", enabled=False)
    x = rp.inputs(batch, res, a.device, torch.Generator().manual_seed(0))
    del x["pixels"]
    gen = torch.Generator().manual_seed(0)
    build_s = time.perf_counter() - t0
    n_unet = sum(q.numel() for q in unet.parameters()) - sum(q.numel() for q in trainable)
    n_lora = sum(q.numel() for q in trainable)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = psutil.Process().memory_info().rss
    saved = SavedBytes(unet)
    rss = None if cuda else rp.PeakRSS()
    t1, c1 = time.perf_counter(), time.process_time()
    with rss or contextlib.nullcontext():
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
            loss = diffusion_loss(unet, DDPMScheduler(**rp.SDXL_SCHEDULER), x["latents"], x["embeds"], x["pooled"],
                                  x["tids"], gen, min_snr_gamma=ran.min_snr_gamma, autocast_dtype=torch.bfloat16,
                                  weight_dtype=torch.bfloat16)
        loss.backward()
        optimizer_step(opt, sched, scaler, trainable, 1.0)
        value = float(loss.detach())
    if cuda:
        torch.cuda.synchronize()
    step_s, step_cpu = time.perf_counter() - t1, time.process_time() - c1
    peak = torch.cuda.max_memory_allocated() if cuda else rss.peak
    est_ran = cfg.estimate(ran, 1, n_unet, n_lora, device=a.device)["vram_gib"]
    est_preset = cfg.estimate(p, 1, n_unet, n_lora, device="cuda")["vram_gib"]
    print("RESULT " + json.dumps({
        "case": a.case, "preset": preset, "resolution": res, "batch": batch,
        "gradient_checkpointing": ran.gradient_checkpointing, "rank": ran.rank, "optimizer_ran": ran.optimizer,
        "optimizer_preset": p.optimizer, "unet_params": n_unet, "lora_params": n_lora,
        "build_s": round(build_s, 1), "step_s": round(step_s, 1), "step_cpu_s": round(step_cpu, 1),
        "rss_before_step_gib": round(before / 2**30, 3), "peak_gib": round(peak / 2**30, 3),
        "saved_activations_gib": round(saved.gib, 3), "estimate_gib": est_ran, "estimate_preset_gib": est_preset,
        "loss": value, "threads": torch.get_num_threads()}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cases", default="", help="preset:resolution:batch,... (preset: 8, 12, 16, 24)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--heap", choices=["mmap", "default"], default="mmap", help="CPU only, see the docstring")
    ap.add_argument("--append", action="store_true", help="add the cases to the last run's JSON")
    ap.add_argument("--held-out", action="store_true",
                    help="mark the cases as held out: not among those the estimate's constants were fitted on")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite the report from the last JSON")
    a = ap.parse_args()
    kind = "cuda" if a.device.startswith("cuda") else "cpu"
    out = ROOT / "bench" / "results" / f"lora_memory_{kind}{'_glibc' if kind == 'cpu' and a.heap == 'default' else ''}.json"
    if a.case:
        import torch

        if a.threads:
            torch.set_num_threads(a.threads)
        return child(a)
    if a.markdown_only:
        return write()
    doc = {"device": a.device, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": _machine(a.device), "heap": a.heap if kind == "cpu" else None, "load_avg_before": [round(v, 2) for v in os.getloadavg()], "cases": []}
    out.parent.mkdir(parents=True, exist_ok=True)
    if a.append and out.is_file():
        doc = {**json.loads(out.read_text(encoding="utf-8")), "appended": doc["date"]}
    for case in (a.cases or DEFAULT_CASES[kind]).split(","):
        cmd = [sys.executable, __file__, "--device", a.device, "--case", case, "--threads", str(a.threads)]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        if kind == "cpu" and a.heap == "mmap":
            env["MALLOC_MMAP_THRESHOLD_"] = "262144"
        run = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = [x for x in run.stdout.splitlines() if x.startswith("RESULT ")]
        row = json.loads(line[0][7:]) if line else {"case": case, "failed": (run.stderr or run.stdout)[-400:]}
        row["held_out"] = a.held_out
        print(json.dumps(row), flush=True)
        doc["cases"].append(row)
        doc["load_avg_after"] = [round(v, 2) for v in os.getloadavg()]
        out.write_text(json.dumps(doc, indent=2), encoding="utf-8")  # after each case: a cut run keeps its rows
    write()


def _machine(device: str) -> str:
    import platform

    import torch

    cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"
    return (torch.cuda.get_device_name(0) + ", " + cpu) if device.startswith("cuda") else cpu


def case_params(preset: str, resolution: int, batch: int, **recorded):
    """A case's TrainParams: the preset's configuration at this resolution, the case's batch,
    and (when re-reading a recorded case) the values it ran with."""
    from modules.lora_training.train import config as cfg

    p = cfg.apply_preset(cfg.TrainParams(vram_preset=preset, resolution=resolution, precision="bf16"))
    return p.model_copy(update={"batch_size": batch, **recorded})


def current_estimate(r: dict, device: str) -> tuple[float, float]:
    """The estimate today's code gives for a recorded case: (for what ran, for the preset)."""
    from modules.lora_training.train import config as cfg

    p = case_params(r["preset"], r["resolution"], r["batch"], gradient_checkpointing=r["gradient_checkpointing"])
    ran = p.model_copy(update={"optimizer": r["optimizer_ran"]})
    return (cfg.estimate(ran, 1, r["unet_params"], r["lora_params"], device=device)["vram_gib"],
            cfg.estimate(p, 1, r["unet_params"], r["lora_params"], device="cuda")["vram_gib"])


SECTIONS = [
    # live tensors are what a GPU's max_memory_allocated counts: compared with the GPU estimate
    ("lora_memory_cpu.json", "CPU, live tensors (large allocations mmapped)", "peak RSS (GiB)", "cuda"),
    ("lora_memory_cpu_glibc.json", "CPU, glibc's default heap", "peak RSS (GiB)", "cpu"),
    ("lora_memory_cuda.json", "GPU", "peak allocated (GiB)", "cuda"),
]


def write() -> None:
    """docs/bench/lora_memory.md from every recorded run (a device that never ran says so).
    Estimates are recomputed with today's `config.estimate`, the figure the tab shows now."""
    md = ["# Real-size SDXL LoRA memory: estimate against measured peak", "",
          "`python bench/lora_memory_bench.py --device cpu|cuda`: one training step of the real SDXL UNet "
          "(2.57 G parameters, bf16 base, fp32 LoRA, random weights) per case, each in a fresh process, through "
          "the studio's own step code with the VRAM preset's rank, gradient checkpointing and batch. The "
          "estimate is the figure the LoRA tab shows before a run (`config.estimate`); the goal is within 15 % "
          "of the measured peak. *Activations* is what autograd saves for the backward (distinct storages), "
          "the part that grows with pixels x batch. The estimate's constants (train/config.py) were fitted on "
          "the CPU cases not marked *held out*; the held-out ones were run after the fit, to check it. "
          "Raw figures: `bench/results/lora_memory_*.json`.", ""]
    for name, title, what, device in SECTIONS:
        f = ROOT / "bench" / "results" / name
        md += [f"## {title}", ""]
        if name == "lora_memory_cpu.json":
            md += ["The estimate here is the one shown for a GPU (no CPU heap allowance): these peaks count "
                   "live tensors plus the process, as `max_memory_allocated` plus the CUDA context would.", ""]
        elif name == "lora_memory_cpu_glibc.json":
            md += ["The estimate here is the one shown for a CPU run: it adds glibc's heap high-water "
                   "mark (3 GiB per megapixel of resolution).", ""]
        if not f.is_file():
            md += ["Not measured: no GPU was lent to this work, so no GPU figure exists. "
                   "`bench/gpu_all.sh` runs this bench on CUDA.", ""] if device == "cuda" else ["Not run.", ""]
            continue
        doc = json.loads(f.read_text(encoding="utf-8"))
        md += [f"Machine: {doc['machine']}; {doc['date']}; load average before {doc['load_avg_before']}, "
               f"after {doc.get('load_avg_after')}.", "",
               f"| preset | px | batch | grad. ckpt | optimizer (ran) | {what} | activations (GiB) | "
               "estimate (GiB) | estimate / peak | step s (CPU s) |", "|---|---|---|---|---|---|---|---|---|---|"]
        ok = [r for r in doc["cases"] if "failed" not in r]
        for r in doc["cases"]:
            if "failed" in r:
                md.append(f"| {r['case']} | | | | | failed: {r['failed'][-120:].replace('|', '/')} | | | | |")
                continue
            est, _ = current_estimate(r, device)
            md.append(f"| {r['preset']}{' (held out)' if r.get('held_out') else ''} | {r['resolution']} | {r['batch']} | {'on' if r['gradient_checkpointing'] else 'off'}"
                      f" | {r['optimizer_ran']} | {r['peak_gib']:.2f} | {r['saved_activations_gib']:.2f} | "
                      f"{est:.2f} | {est / r['peak_gib']:.2f} | {r['step_s']:.0f} ({r['step_cpu_s']:.0f}) |")
        if ok:
            ratios = [current_estimate(r, device)[0] / r["peak_gib"] for r in ok]
            md += ["", f"Estimate / peak: {min(ratios):.2f} to {max(ratios):.2f} over {len(ok)} cases "
                   f"({'all within' if all(0.85 <= x <= 1.15 for x in ratios) else '**not all within**'} 15 %)."]
        subst = [r for r in ok if r["optimizer_ran"] != r["optimizer_preset"]]
        if subst:
            md += ["", "Presets whose optimizer is `adamw8bit` ran with AdamW here (8-bit AdamW needs CUDA). "
                   "For their own optimizer the estimate is " + ", ".join(
                       f"{current_estimate(r, device)[1]:.2f} GiB ({r['case']})" for r in subst) + "."]
        md.append("")
    (ROOT / "docs" / "bench").mkdir(parents=True, exist_ok=True)
    (ROOT / "docs" / "bench" / "lora_memory.md").write_text("\n".join(md), encoding="utf-8")


if __name__ == "__main__":
    main()
