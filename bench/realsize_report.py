"""docs/bench/lora_realsize.md from bench/results/lora_realsize_{cpu,cuda}.json.

Either device may be missing: its columns then say "not measured" (never estimated). The
estimate column is recomputed with the current `config.estimate`, so a change of the
estimate model is checked against the stored measurements: `python bench/realsize_report.py`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NO_GPU = "not measured: no GPU lent"


def _load(dev: str) -> dict | None:
    f = ROOT / "bench" / "results" / f"lora_realsize_{dev}.json"
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None


def _estimate(row: dict, device: str) -> float:
    from modules.lora_training.train import config as cfg

    p = cfg.TrainParams.model_validate(row["params"])
    return cfg.estimate(p, 1, row["unet_params"], row["lora_params"], device=device)["vram_gib"]


def _s(r: dict, cpu_time: bool = True) -> str:
    if "skipped" in r:
        return f"skipped: {r['skipped']}"
    if "failed" in r:
        return f"failed: {r['failed']}"
    cpu = f" (CPU {r['cpu_s_per_step']:.3g} s)" if cpu_time and r.get("cpu_s_per_step") else ""
    return f"{r['s_per_step']:.3g} s{cpu}"


def _lever_cell(res: dict | None, name: str) -> str:
    if res is None:
        return NO_GPU
    lv = res["levers"].get(name)
    base = res["levers"].get("_baseline", {})
    if lv is None:
        return {"adamw_loop": "measured alone: optimizer table below", "adamw_foreach": "measured alone: optimizer "
                "table below", "adamw_fused": "measured alone: optimizer table below",
                "sync_every_step": "n/a on CPU (no asynchronous device: reading a CPU loss waits for nothing)",
                "compile": "not run on CPU (compiling the real UNet exceeds the bench budget)",
                "fp8": "GPU only"}.get(name, "not run") if res["device"] == "cpu" else "not run"
    if "s_per_step" not in lv or "s_per_step" not in base:
        return _s(lv)
    key = "cpu_s_per_step" if res["device"] == "cpu" and lv.get("cpu_s_per_step") else "s_per_step"
    c = res["device"] == "cpu"
    return f"{_s(lv, c)} vs {_s(base, c)} (x{base[key] / lv[key]:.2f})"


def write() -> Path:
    cpu, gpu = _load("cpu"), _load("cuda")
    md = ["# Real-size SDXL LoRA benchmark", "",
          "`python bench/lora_realsize_bench.py --device cpu|cuda`: the real SDXL UNet (published config, "
          "2.57 G parameters, random weights: speed and memory do not depend on the values) trains LoRA steps "
          "through the studio's step code (`step.diffusion_loss` + `step.optimizer_step`, cached latents and "
          "embeddings of the exact SDXL shapes) and through the loop of diffusers' `train_dreambooth_lora_sdxl.py` "
          "(VAE encode every step, torch's default AdamW, `loss.item()` every step) on the same model and settings, "
          "in the same process, alternating ours / reference / ours. Raw figures: `bench/results/lora_realsize_*.json`.",
          ""]
    for dev, res in (("cpu", cpu), ("cuda", gpu)):
        title = "CPU" if dev == "cpu" else "GPU"
        md += [f"## {title}", ""]
        if res is None:
            md += ["Not measured: no GPU was lent to this session, so no GPU figure exists yet. `bench/gpu_all.sh` runs this bench on CUDA "
                   "(1024 px, every VRAM preset, MFU, the levers) and rewrites this page. Whether the 8 GB preset "
                   "peaks under 8 GiB at 1024 px on a GPU is **not yet verified**; on CPU its step at 1024 px "
                   "peaks at 6.0 GiB of live memory, process included (next section).", ""] if dev == "cuda" else [
                "Not run yet.", ""]
            continue
        md += [f"Machine: {res['machine']}, {res['torch_threads']} torch threads, {res['resolution']} px, "
               f"{res['steps']} step(s) per timed block x {res['rounds']} block(s) after {res['warmup']} warm-up "
               f"step(s); {res['date']}; whole run {res['wall_s']:.0f} s. Load average (1/5/15 min) before "
               f"{res['load_avg_before']}, after {res['load_avg_after']}"
               + (" on 2 cores shared with other jobs: wall times are inflated and noisy." if dev == "cpu" else "."),
               "", "| preset | trainer | s / step | img / s | peak memory (GiB) | estimate (GiB) | estimate / peak |"
               " speed-up vs reference |", "|---|---|---|---|---|---|---|---|"]
        for preset, row in res["presets"].items():
            est = _estimate(row, dev)
            ref = row["reference"].get("s_per_step")
            for key, label in (("ours", "ours"), ("reference", "diffusers script loop"), ("ours_again", "ours (again)")):
                r = row[key]
                s = r.get("s_per_step")
                peak = r.get("peak_gib")
                if dev == "cpu" and r.get("cpu_s_per_step") and row["reference"].get("cpu_s_per_step"):
                    sp = f"x{row['reference']['cpu_s_per_step'] / r['cpu_s_per_step']:.2f} (CPU time)" \
                        if key != "reference" else ""
                else:
                    sp = f"x{ref / s:.2f}" if (s and ref and key != "reference") else ""
                md.append(f"| {preset} | {label} | {_s(r, dev == 'cpu')} | {r['batch'] / s:.3g} | " if s else
                          f"| {preset} | {label} | {_s(r, dev == 'cpu')} | | ")
                md[-1] += (f"{peak:.2f} | {est:.2f} | {est / peak:.2f} | {sp} |" if peak else f" | | | {sp} |")
        md.append("")
        if dev == "cpu":
            md += ["On CPU the peak is the process's resident memory (psutil, sampled every 10 ms) during our first "
                   "block, in a fresh process: the estimate shown before a run (`config.estimate`) is checked against "
                   "it (goal: within 15 %). Speed: the CPU time per step is the comparable figure on this shared "
                   "machine. At this resolution the reference's per-step VAE encode is small next to the real UNet, "
                   "so ours and the script's loop are close; the gap of caching grows with resolution.", ""]
        for preset, row in res["presets"].items():
            if dev == "cpu" and row["config"].get("kernel") == "foreach":
                md.append(f"- preset {preset}: this run used the trainer's former CPU optimizer (foreach AdamW); "
                          "after the optimizer table below (same run) the default for LoRAs of 1 M parameters or "
                          "more is now the fused kernel.")
            if row.get("flops_per_step"):
                mfu = row.get("mfu")
                md.append(f"- preset {preset}: {row['flops_per_step'] / 1e12:.3f} TFLOP per step (torch flop "
                          f"counter, forward + backward), {row.get('achieved_tflops')} TFLOP/s achieved"
                          + (f", MFU {mfu:.1%} of the dense bf16 peak" if mfu else
                             (", MFU: unknown bf16 peak for this GPU" if dev == "cuda" else "")) + ".")
            bt = row.get("batch_for_target")
            if bt:
                md.append(f"- preset {preset}: largest batch under {preset} GiB: {bt['batch']} "
                          f"({bt['img_per_s']} img/s, peak {bt['peak_gib']} GiB).")
        if dev == "cuda" and "8" in res["presets"]:
            pk = res["presets"]["8"]["ours"].get("peak_gib")
            md.append(f"- 8 GB preset at {res['resolution']} px: peak {pk} GiB allocated: "
                      + ("**under 8 GiB**." if pk and pk < 8 else "**not under 8 GiB**."))
        md.append("")
    md += ["## Speed levers", "",
           "Each lever is the preset's default configuration with one change, timed in the same process as the "
           "default (ratio = default s/step / lever s/step: above 1 the lever is faster). CPU column measured on "
           "this machine (real size, small resolution); GPU column from a CUDA run of the same bench.", "",
           "| lever | CPU (real size) | GPU (1024 px) |", "|---|---|---|"]
    from lora_realsize_bench import LEVERS

    for name, label, _ in LEVERS:
        cpu_cell = _lever_cell(cpu, name) if cpu else "not run"
        md.append(f"| {label} | {cpu_cell} | {_lever_cell(gpu, name)} |")
    md += ["",
           "Optimizer step + gradient clipping alone on the real LoRA parameters (23 M for rank 16 `attn`), wall "
           "ms per step (5 steps; on CPU under the load given above):", "",
           "| AdamW kernel + clip | CPU | GPU |", "|---|---|---|"]
    keys = list((cpu or gpu or {}).get("optimizer_levers", {}))
    for k in keys:
        c = (cpu or {}).get("optimizer_levers", {}).get(k)
        g = (gpu or {}).get("optimizer_levers", {}).get(k) if gpu else None
        cell = (lambda v: f"{v * 1000:.1f}" if isinstance(v, float) else (v or ""))
        md.append(f"| {k} | {cell(c)} | {cell(g) if gpu else NO_GPU} |")
    md += ["", "What the defaults keep from these figures: SDPA attention on and the contiguous memory format "
           "(turning SDPA off or channels_last on was slower on CPU at real size); AdamW fused for LoRAs of 1 M "
           "parameters or more on CPU (foreach below: see the tiny-model step profile) and fused on CUDA; foreach "
           "gradient clipping; the loss read back every 10 steps on CUDA (every step on CPU, where it costs "
           "nothing). bf16 base weights were faster than fp32 on this CPU (it has avx512_bf16), but `precision: "
           "auto` stays fp32 on CPU (numerics of CPU runs and tests); choose bf16 to use it. The VRAM presets are "
           "unchanged: their GPU levers (compile, fp8, batch for the VRAM target) have no figure yet, and a "
           "default is only changed on a measured gain.", ""]
    out = ROOT / "docs" / "bench" / "lora_realsize.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(md), encoding="utf-8")
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "bench"))
    print(write())
