"""Real-size SDXL LoRA benchmark: the studio's step vs diffusers' script, speed levers,
estimate vs measured peak memory.

The real SDXL UNet architecture (random weights, see bench/realsize_parts.py) trains LoRA
steps through the studio's own step code, and through the loop of diffusers'
`train_dreambooth_lora_sdxl.py` on the same model and settings, in the same process,
alternating blocks of steps (ours, reference, ours, reference) so machine load hits both.

- CPU (default 128 px, bf16, a few steps): proves the real-size path, checks the RAM estimate
  (`config.estimate`) against the measured peak RSS, measures the levers that exist on CPU.
- CUDA (1024 px): every VRAM preset (it/s, `torch.cuda.max_memory_allocated`, MFU = torch
  flop counter FLOPs x it/s / the device's dense bf16 peak), reference per preset, levers,
  largest batch under each preset's VRAM target.

Writes bench/results/lora_realsize_<cpu|cuda>.json and docs/bench/lora_realsize.md (both
devices' tables, "not measured" where a device never ran).

    python bench/lora_realsize_bench.py --device cpu [--resolution 128] [--steps 2]
    python bench/lora_realsize_bench.py --device cuda [--presets 8,12,16,24] [--compile]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import realsize_parts as rp  # noqa: E402

# Lever variants: what each one changes against the preset's configuration.
LEVERS = [
    ("sdpa_off", "SDPA attention off (classic attention processor)", {"sdpa": False}),
    ("adamw_loop", "AdamW per-tensor loop (torch's CPU default)", {"kernel": "loop"}),
    ("adamw_foreach", "AdamW foreach", {"kernel": "foreach"}),
    ("adamw_fused", "AdamW fused", {"kernel": "fused"}),
    ("sync_every_step", "loss read back every step (host sync)", {"sync_every": 1}),
    ("channels_last", "channels_last memory format", {"channels_last": True}),
    ("fp32_weights", "fp32 base weights (no bf16)", {"weights": "fp32"}),
    ("compile", "torch.compile of the UNet", {"compile": True}),
    ("fp8", "fp8 base weights (torchao float8 training)", {"fp8": True}),
]


def config_for(preset: str, device: str, resolution: int) -> dict:
    """The studio's configuration for a preset (what `apply_preset` gives a default run)."""
    from modules.lora_training.train.config import TrainParams, apply_preset
    from modules.lora_training.train.trainer import SYNC_EVERY

    p = apply_preset(TrainParams(vram_preset=preset, resolution=resolution, precision="bf16"))
    cuda = device.startswith("cuda")
    return {"preset": preset, "params": p, "batch": p.batch_size, "gc": p.gradient_checkpointing,
            "optimizer": p.optimizer, "kernel": "default" if p.optimizer == "adamw" else "8bit",
            "sdpa": True,
            "sync_every": SYNC_EVERY["cuda" if cuda else "cpu"], "channels_last": False, "weights": "bf16",
            "compile": False, "fp8": False}


def skip_reason(c: dict, device: str) -> str | None:
    import torch

    cuda = device.startswith("cuda")
    if c["optimizer"] == "adamw8bit" and not cuda:
        return "adamw8bit needs CUDA"
    if c["fp8"]:
        if not cuda:
            return "GPU only"
        if torch.cuda.get_device_capability() < (8, 9):
            return "GPU without fp8 tensor cores"
        try:
            import torchao.float8  # noqa: F401
        except ImportError:
            return "torchao not installed"
    if c["compile"] and not cuda and not os.environ.get("BENCH_COMPILE_CPU"):
        return "not run on CPU (compiling the real UNet takes longer than the bench budget)"
    if c["kernel"] in ("loop", "foreach", "fused") and c["optimizer"] != "adamw":
        return "n/a for adamw8bit"
    return None


class Model:
    """One real-size UNet with a LoRA of the given rank, reconfigured per variant."""

    def __init__(self, device: str, params) -> None:
        import torch
        from diffusers import DDPMScheduler

        from modules.lora_training.train import lora_setup

        t0 = time.perf_counter()
        self.device, self.params = device, params
        self.unet = rp.build_unet(device, torch.bfloat16)
        self.n_params = sum(q.numel() for q in self.unet.parameters())
        groups = lora_setup.setup(self.unet, None, None, params)
        self.trainable = [q for g in groups for q in g["params"]]
        self.n_lora = sum(q.numel() for q in self.trainable)
        self.scheduler = DDPMScheduler(**rp.SDXL_SCHEDULER)
        self.vae = None
        self.build_s = time.perf_counter() - t0

    def configure(self, c: dict):
        """Apply a variant; returns the module the step calls (compiled or not)."""
        import torch
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
        from diffusers.training_utils import cast_training_params

        u = self.unet
        want = torch.float32 if c["weights"] == "fp32" else torch.bfloat16
        if next(p for p in u.parameters() if not p.requires_grad).dtype != want:
            u.to(dtype=want)
            cast_training_params(u, dtype=torch.float32)
        u.set_attn_processor(AttnProcessor2_0() if c["sdpa"] else AttnProcessor())
        u.enable_gradient_checkpointing() if c["gc"] else u.disable_gradient_checkpointing()
        u.to(memory_format=torch.channels_last if c["channels_last"] else torch.contiguous_format)
        u.train()
        if c["fp8"]:
            from torchao.float8 import convert_to_float8_training

            # base Linear layers only: the LoRA A/B stay fp32 (irreversible: run last)
            convert_to_float8_training(u, module_filter_fn=lambda m, name: "lora_" not in name
                                       and m.in_features % 16 == 0 and m.out_features % 16 == 0)
        if c["compile"]:
            return torch.compile(u)
        return u

    def optimizer(self, c: dict, reference: bool = False):
        import torch

        from modules.lora_training.train import optim

        groups = [{"params": self.trainable, "lr": 1e-4}]
        if c["optimizer"] == "adamw8bit" or (reference and c["optimizer"] != "adamw"):
            return optim.build_optimizer("adamw8bit", groups, 1e-2, self.device)
        if reference:  # the script: torch.optim.AdamW with torch's default kernel choice
            return torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
        if c["kernel"] == "default":
            return optim.build_optimizer("adamw", groups, 1e-2, self.device)  # the studio's choice
        flags = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[c["kernel"]]
        return torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8, **flags)


def make_step(m: Model, c: dict, reference: bool):
    import torch

    from modules.lora_training.train.optim import build_scheduler

    unet = m.configure(c)
    opt = m.optimizer(c, reference)
    dtype = torch.float32 if c["weights"] == "fp32" else torch.bfloat16
    if reference:
        if m.vae is None:
            m.vae = rp.build_vae(m.device)
        return rp.ReferenceStep(unet, m.vae, m.scheduler, m.trainable, opt, dtype, c["params"].min_snr_gamma)
    sched = build_scheduler("constant", opt, 0, 1000)
    scaler = torch.amp.GradScaler("cuda" if m.device.startswith("cuda") else "cpu", enabled=False)
    return rp.OurStep(unet, m.scheduler, m.trainable, opt, sched, scaler, dtype, c["params"].min_snr_gamma,
                      c["sync_every"])


def reset_peak(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str, rss=None) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return rss.peak / 2**30


def run_variant(m: Model, c: dict, a, x: dict, reference: bool = False, measure_peak: bool = False) -> dict:
    """Warm-up, then `a.rounds` timed blocks of `a.steps` steps. Returns s/step and peak."""
    import contextlib

    reason = skip_reason(c, a.device)
    if reason:
        return {"skipped": reason}
    reset_peak(a.device)
    rss = rp.PeakRSS() if measure_peak and not a.device.startswith("cuda") else None
    try:
        with rss or contextlib.nullcontext():
            step = make_step(m, c, reference)
            for _ in range(a.warmup):
                step(x)
            step.flush()
            times = [rp.timed(step, x, a.steps, a.device) for _ in range(a.rounds)]
    except Exception as exc:  # noqa: BLE001 - an OOM or a failed compile is a result, not a crash
        return {"failed": f"{type(exc).__name__}: {str(exc)[:160]}"}
    best = min(times)  # the block least disturbed by other load
    out = {"s_per_step": best[0], "cpu_s_per_step": best[1], "blocks": times, "batch": c["batch"],
           "loss": step.losses[-1]}
    if a.device.startswith("cuda") or rss is not None:
        out["peak_gib"] = round(peak_gib(a.device, rss), 3)
    del step
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--resolution", type=int, default=0, help="default 64 on CPU, 1024 on CUDA")
    ap.add_argument("--steps", type=int, default=0, help="steps per timed block (default 1 CPU, 3 CUDA)")
    ap.add_argument("--rounds", type=int, default=0, help="timed blocks per variant (default 2 CUDA, 1 CPU)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--presets", default="", help="comma list; default 'none' on CPU, 8,12,16,24 on CUDA")
    ap.add_argument("--levers", default="default", help="comma list of lever names, 'all', 'none' or 'default'")
    ap.add_argument("--compile", action="store_true", help="also on CPU (slow)")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    import torch

    cuda = a.device.startswith("cuda")
    a.resolution = a.resolution or (1024 if cuda else 64)
    a.steps = a.steps or (3 if cuda else 1)
    a.rounds = a.rounds or (2 if cuda else 1)
    if a.levers == "default":  # on CPU a real-size step takes a minute: the levers that matter there
        a.levers = "all" if cuda else "sdpa_off,channels_last,fp32_weights"
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.compile:
        os.environ["BENCH_COMPILE_CPU"] = "1"
    presets = [s for s in (a.presets or ("8,12,16,24" if cuda else "none")).split(",") if s]
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    res = {"device": a.device, "machine": machine(a.device), "resolution": a.resolution, "steps": a.steps,
           "rounds": a.rounds, "warmup": a.warmup, "torch_threads": torch.get_num_threads(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "presets": {}, "levers": {}}
    gen = torch.Generator().manual_seed(0)
    first = True
    out = ROOT / "bench" / "results" / f"lora_realsize_{'cuda' if cuda else 'cpu'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every part: a run cut short by its time cap keeps what it measured
        res["load_avg_before"], res["load_avg_after"] = [round(v, 2) for v in load0], \
            [round(v, 2) for v in os.getloadavg()]
        res["wall_s"] = round(time.perf_counter() - t_start, 1)
        out.write_text(json.dumps(res, indent=2, default=str), encoding="utf-8")

    for preset in presets:
        c = config_for(preset, a.device, a.resolution)
        m = Model(a.device, c["params"])
        x = rp.inputs(c["batch"], a.resolution, a.device, gen)
        row = {"config": {k: v for k, v in c.items() if k != "params"}, "unet_params": m.n_params,
               "params": c["params"].model_dump(mode="json"),
               "lora_params": m.n_lora, "build_s": round(m.build_s, 1)}
        # ours first in a fresh process: its peak is the one the estimate is checked against
        row["ours"] = run_variant(m, c, a, x, measure_peak=first)
        row["reference"] = run_variant(m, c, a, x, reference=True, measure_peak=False)
        m.vae = None  # the reference's VAE must not weigh on the later peaks
        row["ours_again"] = run_variant(m, c, a, x)  # interleaved: load drift shows here
        row["estimate"] = estimate_for(c, m, a.device)
        row.update(flops_and_mfu(m, c, a, x, row))
        if cuda:
            row["batch_for_target"] = batch_for_target(m, c, a, gen)
        res["presets"][preset] = row
        if preset == presets[-1]:
            res["optimizer_levers"] = optimizer_levers(m, a.device)
        if preset == presets[-1] and a.levers != "none":
            names = [n for n, _, _ in LEVERS] if a.levers == "all" else a.levers.split(",")
            res["levers"]["_baseline"] = {"label": "preset default", "preset": preset, **run_variant(m, c, a, x)}
            for name, label, change in LEVERS:  # fp32 and fp8 change the model: they run last
                if name in names:
                    res["levers"][name] = {"label": label, "preset": preset,
                                           **run_variant(m, {**c, **change}, a, x)}
                    print(name, res["levers"][name], flush=True)
                    save()
        print(preset, json.dumps(row, default=str), flush=True)
        save()
        first = False
        del m
        reset_peak(a.device)
    save()
    import realsize_report

    realsize_report.write()


def optimizer_levers(m: Model, device: str, reps: int = 5) -> dict:
    """Optimizer step + grad clipping alone on the real LoRA parameters (23 M for rank 16
    attn): their cost does not depend on the forward, so it is timed exactly, without it."""
    import torch

    for q in m.trainable:
        q.grad = torch.randn_like(q) * 1e-3
    out = {}
    for kernel, flags in (("loop", {"foreach": False}), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
        for clip_foreach in (False, True):
            try:
                opt = torch.optim.AdamW([{"params": m.trainable, "lr": 1e-6}], weight_decay=1e-2, **flags)
                opt.step()
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(reps):
                    torch.nn.utils.clip_grad_norm_(m.trainable, 1.0, foreach=clip_foreach)
                    opt.step()
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                out[f"{kernel}+clip_{'foreach' if clip_foreach else 'loop'}"] = (time.perf_counter() - t0) / reps
            except Exception as exc:  # noqa: BLE001
                out[f"{kernel}+clip_{'foreach' if clip_foreach else 'loop'}"] = f"failed: {str(exc)[:100]}"
            del opt
    for q in m.trainable:
        q.grad = None
    return out


def estimate_for(c: dict, m: Model, device: str) -> dict:
    from modules.lora_training.train import config as cfg

    est = cfg.estimate(c["params"], 1, m.n_params, m.n_lora, device=device)
    return {"gib": est["vram_gib"]}


def flops_and_mfu(m: Model, c: dict, a, x: dict, row: dict) -> dict:
    """FLOPs of one of our steps (torch flop counter), achieved FLOP/s, MFU on a known GPU."""
    import torch

    try:
        step = make_step(m, c, reference=False)
        flops = rp.step_flops(step, x)
    except Exception as exc:  # noqa: BLE001
        return {"flops": None, "flops_error": str(exc)[:160]}
    out = {"flops_per_step": flops}
    s = row["ours"].get("s_per_step")
    if s:
        out["achieved_tflops"] = round(flops / s / 1e12, 3)
        peak = rp.bf16_peak(torch.cuda.get_device_name(0)) if a.device.startswith("cuda") else None
        out["mfu"] = round(flops / s / peak, 4) if peak else None
    return out


def batch_for_target(m: Model, c: dict, a, gen) -> dict:
    """Largest batch (1, 2, 4, 8) whose peak stays under the preset's VRAM target, and its img/s."""
    target = float(c["preset"]) if c["preset"] != "none" else None
    if target is None:
        return {}
    best = {}
    for b in (1, 2, 4, 8):
        x = rp.inputs(b, a.resolution, a.device, gen)
        r = run_variant(m, {**c, "batch": b}, argparse.Namespace(**{**vars(a), "rounds": 1, "steps": 2}), x)
        if "peak_gib" not in r or r["peak_gib"] > target:
            break
        best = {"batch": b, "img_per_s": round(b / r["s_per_step"], 3), "peak_gib": r["peak_gib"]}
    return best


def machine(device: str) -> str:
    import torch

    cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"
    return (torch.cuda.get_device_name(0) + ", " + cpu) if device.startswith("cuda") else cpu


if __name__ == "__main__":
    main()
