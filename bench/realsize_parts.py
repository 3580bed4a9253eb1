"""Parts of the real-size SDXL LoRA benchmark (bench/lora_realsize_bench.py).

The real SDXL UNet (published config, `config.SDXL_UNET_CONFIG`, 2.57 G parameters) and VAE
are built with random weights: speed and memory do not depend on the values. Text encoders
are not built: the studio trains from cached text embeddings, so the step sees tensors of the
exact SDXL shapes (77 x 2048 embeddings, 1280 pooled, 6 time ids).

- `our_step`: the studio's own step code (`step.diffusion_loss` + `step.optimizer_step`,
  optimizer from `optim.build_optimizer`), with the trainer's loss read-back cadence;
- `reference_step`: the loop of diffusers' `examples/dreambooth/train_dreambooth_lora_sdxl.py`
  with its defaults (VAE encode of the pixels every step in fp32, `torch.optim.AdamW` with
  torch's default kernels, `loss.detach().item()` for the progress bar every step).
"""
from __future__ import annotations

import threading
import time
from typing import Any

SDXL_VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=1024, scaling_factor=0.13025,
    block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
SDXL_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                      beta_schedule="scaled_linear", prediction_type="epsilon")
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets, for MFU.
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100 SXM": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0,
                    "L40S": 362.1, "L4": 121.0, "A10": 125.0, "RTX 4090": 165.2, "RTX 3090": 71.0}


def bf16_peak(device_name: str) -> float | None:
    for key in sorted(BF16_PEAK_TFLOPS, key=len, reverse=True):
        if key in device_name:
            return BF16_PEAK_TFLOPS[key] * 1e12
    return None


def build_unet(device: str, dtype: Any):
    """The real SDXL UNet, random weights, built straight in `dtype` on `device`."""
    import torch
    from diffusers import UNet2DConditionModel

    from modules.lora_training.train.config import SDXL_UNET_CONFIG

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            unet = UNet2DConditionModel.from_config(SDXL_UNET_CONFIG)
    finally:
        torch.set_default_dtype(old)
    return unet


def build_vae(device: str):
    import torch
    from diffusers import AutoencoderKL

    with torch.device(device):
        vae = AutoencoderKL.from_config(SDXL_VAE_CONFIG)
    return vae.requires_grad_(False).eval()


def inputs(batch: int, resolution: int, device: str, gen: Any) -> dict:
    """Correctly shaped SDXL conditioning (what the studio's caches hold)."""
    import torch

    r = resolution
    return {"latents": torch.randn((batch, 4, r // 8, r // 8), generator=gen).to(device),
            "embeds": torch.randn((batch, 77, 2048), generator=gen).to(device),
            "pooled": torch.randn((batch, 1280), generator=gen).to(device),
            "tids": torch.tensor([[r, r, 0, 0, r, r]] * batch, dtype=torch.float32, device=device),
            "pixels": (torch.rand((batch, 3, r, r), generator=gen) * 2 - 1).to(device)}


class OurStep:
    """One optimizer step of the studio's trainer (cached latents + embeddings)."""

    def __init__(self, unet, scheduler, trainable, opt, lr_sched, scaler, dtype, min_snr: float, sync_every: int):
        import torch

        self.unet, self.scheduler, self.trainable = unet, scheduler, trainable
        self.opt, self.lr_sched, self.scaler, self.dtype = opt, lr_sched, scaler, dtype
        self.min_snr, self.sync_every = min_snr, sync_every
        self.gen = torch.Generator().manual_seed(0)
        self.pending: list = []
        self.losses: list[float] = []

    def __call__(self, x: dict) -> None:
        import torch

        from modules.lora_training.train.step import diffusion_loss, optimizer_step

        loss = diffusion_loss(self.unet, self.scheduler, x["latents"], x["embeds"], x["pooled"], x["tids"], self.gen,
                              min_snr_gamma=self.min_snr, autocast_dtype=self.dtype if self.dtype != torch.float32
                              else None, weight_dtype=self.dtype)
        self.scaler.scale(loss).backward()
        optimizer_step(self.opt, self.lr_sched, self.scaler, self.trainable, 1.0)
        self.pending.append(loss.detach())
        if len(self.pending) >= self.sync_every:
            self.flush()

    def flush(self) -> None:
        import torch

        if self.pending:
            self.losses += torch.stack(self.pending).float().tolist()
            self.pending = []


class ReferenceStep:
    """One step of diffusers' train_dreambooth_lora_sdxl.py (defaults, prompt embeddings
    pre-computed as the script does when the text encoders are frozen)."""

    def __init__(self, unet, vae, scheduler, trainable, opt, dtype, min_snr: float):
        self.unet, self.vae, self.scheduler, self.trainable = unet, vae, scheduler, trainable
        self.opt, self.dtype, self.min_snr = opt, dtype, min_snr
        self.losses: list[float] = []

    def __call__(self, x: dict) -> None:
        import torch
        import torch.nn.functional as F
        from diffusers.training_utils import compute_snr

        dev = x["pixels"].device
        with torch.no_grad():
            model_input = self.vae.encode(x["pixels"]).latent_dist.sample() * self.vae.config.scaling_factor
        model_input = model_input.to(self.dtype)
        noise = torch.randn_like(model_input)
        bsz = model_input.shape[0]
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (bsz,), device=dev).long()
        noisy = self.scheduler.add_noise(model_input, noise, t)
        with torch.autocast(dev.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            pred = self.unet(noisy, t, x["embeds"].to(self.dtype),
                             added_cond_kwargs={"text_embeds": x["pooled"].to(self.dtype),
                                                "time_ids": x["tids"].to(self.dtype)}, return_dict=False)[0]
        if self.min_snr > 0:
            snr = compute_snr(self.scheduler, t)
            w = torch.stack([snr, self.min_snr * torch.ones_like(t)], dim=1).min(dim=1)[0] / snr
            loss = F.mse_loss(pred.float(), noise.float(), reduction="none").mean(dim=(1, 2, 3)) * w
            loss = loss.mean()
        else:
            loss = F.mse_loss(pred.float(), noise.float(), reduction="mean")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable, 1.0)
        self.opt.step()
        self.opt.zero_grad()
        self.losses.append(loss.detach().item())  # the script's progress bar, every step

    def flush(self) -> None:
        pass


class PeakRSS:
    """Peak resident memory of this process while active (sampled every 10 ms)."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> "PeakRSS":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def timed(step, x: dict, n: int, device: str) -> tuple[float, float]:
    """(wall, process CPU) seconds per step over `n` steps, timed as a block: the host only
    waits for the device at the ends, so a step that syncs every time pays for it and one
    that does not, does not. On a shared CPU the CPU time is the steadier figure."""
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        step(x)
    step.flush()
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def step_flops(step, x: dict) -> int:
    """FLOPs of one step (forward + backward + optimizer), torch's flop counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        step(x)
        step.flush()
    return int(fc.get_total_flops())
