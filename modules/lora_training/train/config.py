"""Training parameters (pydantic, validated for REST/CLI/UI alike), VRAM presets and the
pre-run estimate of steps, VRAM and time.

A preset only fills the fields the user did not set explicitly (`model_fields_set`), so
"12 GB + rank 64" keeps the rank 64. The VRAM estimate is computed from the real parameter
counts of the UNet (built on the meta device from its config, no weights read) plus
activation figures per megapixel that are rough, documented approximations.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from core.params import MAX_NAME, MAX_SEED, Prompt, StrictParams
from core.paths import SafeName

Optimizer = Literal["adamw", "adamw8bit", "lion", "prodigy"]
Precision = Literal["auto", "fp32", "fp16", "bf16"]
Target = Literal["attn", "attn_mlp", "full"]
Preset = Literal["none", "8", "12", "16", "24"]
LossType = Literal["l2", "l1", "huber", "smooth_l1"]
HuberSchedule = Literal["constant", "exponential", "snr"]
BlockLR = Annotated[float, Field(ge=0.0, le=10.0)]  # one UNet block's LR (0 freezes its adapters)
Prediction = Literal["auto", "epsilon", "v_prediction"]
ZeroSNR = Literal["auto", "on", "off"]
NetworkType = Literal["lora", "locon", "loha", "lokr", "dora"]
Scheduler = Literal["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"]


class TrainParams(StrictParams):
    """Everything a training run needs. Paths are resolved by the trainer, never here."""

    project: SafeName = Field("my_lora", min_length=1, max_length=MAX_NAME, description="project folder under LORA_PROJECTS_DIR")
    data_dir: str = Field("", description="images + .txt captions; default <project>/data")
    output_name: SafeName = Field("", max_length=MAX_NAME, description="LoRA file name in LORAS_DIR; default = project")
    base_model: str = Field("", description="diffusers folder, .safetensors file or hub id; default from config")
    trigger_word: str = Field("", max_length=MAX_NAME)
    resolution: int = Field(1024, ge=64, le=2048, multiple_of=8)
    # base checkpoint (single files, v-prediction, separate VAE, continue a LoRA): see core/sdxl
    vae: str = Field("", description="separate VAE file or folder (e.g. fp16-fix); default the base's")
    prediction_type: Prediction = Field("auto", description="auto = from the checkpoint (v_pred key / scheduler)")
    zero_terminal_snr: ZeroSNR = Field("auto", description="rescale betas to zero terminal SNR; auto = ztsnr key")
    init_lora: str = Field("", description="kohya LoRA file to continue from (same rank/targets)")
    # LoRA
    rank: int = Field(16, ge=1, le=256)
    alpha: float = Field(16.0, gt=0, le=1024)
    dropout: float = Field(0.0, ge=0.0, le=0.9)
    target: Target = "attn"
    train_text_encoder: bool = False
    lr_unet: float = Field(1e-4, gt=0, le=10.0)
    lr_te1: float = Field(5e-5, gt=0, le=10.0)
    lr_te2: float = Field(5e-5, gt=0, le=10.0)
    # network (train/networks.py): LyCORIS types adapt the ResNet convolutions too
    network_type: NetworkType = Field("lora", description="lora, dora (PEFT) or locon/loha/lokr (LyCORIS)")
    conv_rank: int = Field(0, ge=0, le=256, description="rank on 3x3 convolutions (locon/loha/lokr); 0 = rank")
    conv_alpha: float = Field(0.0, ge=0.0, le=1024, description="alpha on 3x3 convolutions; 0 = alpha")
    lokr_factor: int = Field(-1, ge=-1, le=1024, description="LoKr Kronecker factor; -1 = automatic")
    overwrite: bool = Field(False, description="replace an existing LoRA file of the same name")
    # optimisation
    optimizer: Optimizer = "adamw"
    weight_decay: float = Field(1e-2, ge=0.0, le=1.0)
    lr_scheduler: Scheduler = "constant_with_warmup"
    warmup_steps: int = Field(0, ge=0, le=100_000)
    epochs: int = Field(10, ge=1, le=10_000)
    max_steps: int = Field(0, ge=0, le=1_000_000, description="optimizer steps; 0 = from epochs")
    batch_size: int = Field(1, ge=1, le=64)
    grad_accum: int = Field(1, ge=1, le=256)
    max_grad_norm: float = Field(1.0, ge=0.0, le=1000.0, description="0 disables clipping")
    precision: Precision = "auto"
    gradient_checkpointing: bool = False
    cache_latents: bool = True
    min_snr_gamma: float = Field(5.0, ge=0.0, le=100.0, description="0 disables min-SNR weighting")
    noise_offset: float = Field(0.0, ge=0.0, le=1.0)
    seed: int = Field(42, ge=0, le=MAX_SEED)
    vram_preset: Preset = "none"
    # recipe (issue 14): EMA, masked loss, caption runtime, concepts/regularisation, loss & noise
    # variants, LoRA+ and per-block UNet LR. Every default is "off" and leaves a run unchanged.
    ema: bool = False
    ema_decay: float = Field(0.999, ge=0.0, le=1.0)
    ema_start_step: int = Field(0, ge=0, le=1_000_000, description="raw weights copied until this step")
    ema_for_samples: bool = False
    masked_loss: bool = Field(False, description="use name.mask.png / masks/name.png beside each image")
    caption_dropout: float = Field(0.0, ge=0.0, le=1.0, description="probability of an empty caption")
    shuffle_tags: bool = False
    keep_tokens: int = Field(0, ge=0, le=75, description="first N comma-separated tags kept in place")
    reg_data_dir: str = Field("", max_length=4096, description="regularisation (class) images; empty = none")
    prior_loss_weight: float = Field(1.0, ge=0.0, le=100.0)
    loss_type: LossType = "l2"
    huber_schedule: HuberSchedule = "snr"
    huber_c: float = Field(0.1, gt=0.0, le=10.0)
    huber_scale: float = Field(1.0, gt=0.0, le=100.0)
    debiased_estimation: bool = False
    multires_noise_iterations: int = Field(0, ge=0, le=16, description="0 disables pyramid noise")
    multires_noise_discount: float = Field(0.3, ge=0.0, le=1.0)
    ip_noise_gamma: float = Field(0.0, ge=0.0, le=1.0, description="input-perturbation noise")
    min_timestep: int = Field(0, ge=0, le=1000)
    max_timestep: int = Field(1000, ge=0, le=1000, description="exclusive; min = max trains that one step")
    loraplus_ratio: float = Field(0.0, ge=0.0, le=1000.0, description="LR multiplier of lora_B; 0 = off")
    unet_block_lr: list[BlockLR] = Field(default_factory=list, max_length=64,
                                       description="down blocks..., mid, up blocks... LRs; empty = lr_unet")
    # live
    sample_prompts: list[Prompt] = Field(default_factory=list, max_length=8)
    sample_every_steps: int = Field(0, ge=0, le=1_000_000)
    sample_inference_steps: int = Field(20, ge=1, le=150)
    sample_seed: int = Field(1234, ge=0, le=MAX_SEED)
    validation_images: int = Field(0, ge=0, le=1000, description="images held out for validation loss")
    validation_every_steps: int = Field(0, ge=0, le=1_000_000)
    # checkpoints / output
    save_every_steps: int = Field(0, ge=0, le=1_000_000)
    # time-based by default: once per epoch was a state every few steps on a small set, and
    # hours of work lost to a kill on a large one
    save_every_minutes: float = Field(10.0, ge=0.0, le=10_000.0,
                                      description="save a resumable state every N minutes of training (0 = off)")
    save_every_epochs: int = Field(0, ge=0, le=10_000)
    keep_last: int = Field(3, ge=1, le=100)
    resume_from: str = Field("", description="a state folder, or 'latest' in the project")
    export_diffusers: bool = False

    @field_validator("lokr_factor")
    @classmethod
    def _factor(cls, v: int) -> int:
        if v in (0, 1):
            raise ValueError("-1 (automatic) or a factor of 2 or more")
        return v

    @model_validator(mode="after")
    def _diffusers_export(self) -> "TrainParams":
        if self.export_diffusers and self.network_type in ("locon", "loha", "lokr"):
            raise ValueError("export_diffusers is for lora/dora; LyCORIS types are saved in the kohya file only")
        return self

    @field_validator("sample_prompts")
    @classmethod
    def _prompts(cls, v: list[str]) -> list[str]:
        return [p.strip() for p in v if p and p.strip()]

    @model_validator(mode="after")
    def _timestep_range(self) -> "TrainParams":
        if self.min_timestep > self.max_timestep:
            raise ValueError("min_timestep must not exceed max_timestep")
        return self

    @property
    def name(self) -> str:
        return self.output_name or self.project


# What each preset sets (only fields the user left at their default).
PRESETS: dict[str, dict] = {
    "8": dict(batch_size=1, gradient_checkpointing=True, optimizer="adamw8bit", cache_latents=True,
              train_text_encoder=False, precision="auto", rank=8, alpha=8.0),
    "12": dict(batch_size=1, gradient_checkpointing=True, optimizer="adamw8bit", cache_latents=True,
               train_text_encoder=False, precision="auto"),
    "16": dict(batch_size=2, gradient_checkpointing=True, optimizer="adamw", cache_latents=True, precision="auto"),
    "24": dict(batch_size=4, gradient_checkpointing=False, optimizer="adamw", cache_latents=True, precision="auto"),
}


# A preset keeps its estimate (for SDXL, on a GPU) under this share of its VRAM target.
PRESET_HEADROOM = 0.9


def apply_preset(params: TrainParams) -> TrainParams:
    """Return params with the preset's values for every field the user did not set.

    The preset's batch size is an upper bound: where the estimate at this resolution passes
    90 % of the preset's VRAM (e.g. the 24 GB preset's batch 4 without checkpointing at
    1024 px: 29.5 GiB), the batch is halved until it fits, then checkpointing is turned on.
    Fields the user set are never changed."""
    preset = PRESETS.get(params.vram_preset)
    if not preset:
        return params
    changes = {k: v for k, v in preset.items() if k not in params.model_fields_set}
    out = params.model_copy(update=changes)
    budget = PRESET_HEADROOM * float(params.vram_preset)
    while "batch_size" in changes and out.batch_size > 1 and _preset_estimate(out) > budget:
        out = out.model_copy(update={"batch_size": out.batch_size // 2})
    if "gradient_checkpointing" in changes and not out.gradient_checkpointing and _preset_estimate(out) > budget:
        out = out.model_copy(update={"gradient_checkpointing": True})
    return out


def _preset_estimate(p: TrainParams) -> float:
    return estimate(p, 1, SDXL_COUNTS["unet"], _sdxl_lora_count(p.rank, p.target), device="cuda")["vram_gib"]


# LoRA parameters per unit of rank on the SDXL UNet, by target (lora_param_count of the real
# config; tests/lora_training/test_train_estimate.py checks them): a preset is sized without
# building a model. Other network types are within the same order, and the activations, not
# the adapter, decide whether a batch fits.
_SDXL_LORA_PER_RANK = {"attn": 1_451_520, "attn_mlp": 2_659_840, "full": 3_074_240}


def _sdxl_lora_count(rank: int, target: str) -> int:
    return rank * _SDXL_LORA_PER_RANK.get(target, _SDXL_LORA_PER_RANK["full"])


def total_steps(params: TrainParams, n_train: int, world: int = 1) -> tuple[int, int]:
    """(optimizer steps, micro-batches per epoch) for `n_train` images.

    Gradient accumulation cycles stay inside an epoch (the last one may be shorter), so an
    epoch is ceil(micro-batches / grad_accum) optimizer steps."""
    per_epoch = max(1, math.ceil(n_train / (params.batch_size * world)))
    steps = params.max_steps or math.ceil(per_epoch / params.grad_accum) * params.epochs
    return steps, per_epoch


# Activation memory of the SDXL UNet per image and megapixel (GiB), gradient checkpointing on /
# off: measured on the real-size UNet (bf16, SDPA, one step at 256-1024 px, batch 1-2) as the
# live-tensor peak over the loaded model, less gradients and optimizer states
# (bench/lora_memory_bench.py, docs/BENCHMARKS.md): 0.42-0.49 with checkpointing, 5.4-6.6 without.
_ACT_GIB_PER_MP = {True: 0.5, False: 5.7}
# On CPU, glibc's heap keeps freed activation blocks: the process peak is higher than the live
# tensors by about this much per megapixel of resolution (same bench, default heap: 2.6-3.3).
_CPU_HEAP_GIB_PER_MP = 3.0
_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
# Real SDXL parameter counts, used when the UNet config cannot be read (single-file base).
SDXL_UNET_CONFIG = dict(
    sample_size=128, cross_attention_dim=2048, block_out_channels=(320, 640, 1280), layers_per_block=2,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
SDXL_COUNTS = {"unet": 2_567_463_684, "te1": 123_060_480, "te2": 694_659_840, "vae": 83_653_863}


def lora_param_count(unet_config: dict | None, rank: int, target: str, params: "TrainParams | None" = None) -> int:
    """Exact LoRA parameter count on the UNet, from a meta-device model of its config.

    Other network types (`params.network_type`): the real adapters, built on the meta device."""
    import torch
    from diffusers import UNet2DConditionModel

    from modules.lora_training.train.lora_setup import network_param_count, unet_target_modules

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config or SDXL_UNET_CONFIG)
    if params is not None and params.network_type != "lora":
        return network_param_count(unet, params)
    names = set(unet_target_modules(unet, target))
    n = 0
    for name, mod in unet.named_modules():
        if name in names:
            if isinstance(mod, torch.nn.Linear):
                n += rank * (mod.in_features + mod.out_features)
            elif isinstance(mod, torch.nn.Conv2d):
                k = mod.kernel_size[0] * mod.kernel_size[1]
                n += rank * (mod.in_channels * k + mod.out_channels)
    return n


def estimate(params: TrainParams, n_train: int, unet_params: int, lora_params: int,
             sec_per_step: float | None = None, world: int = 1, device: str = "cuda") -> dict:
    """Steps, VRAM (GiB, rough) and time (s, when a measured speed is known)."""
    steps, per_epoch = total_steps(params, n_train, world)
    prec = params.precision if params.precision != "auto" else ("bf16" if device.startswith("cuda") else "fp32")
    weights = unet_params * _BYTES[prec]
    if params.train_text_encoder or not params.cache_latents:
        weights += (SDXL_COUNTS["te1"] + SDXL_COUNTS["te2"]) * _BYTES[prec] * unet_params / SDXL_COUNTS["unet"]
    opt_bytes = {"adamw": 8, "adamw8bit": 2, "lion": 4, "prodigy": 16}[params.optimizer]
    trainable = lora_params * (4 + 4 + opt_bytes)  # fp32 weights + grads + optimizer states
    mp = params.resolution ** 2 / 1e6
    act = _ACT_GIB_PER_MP[params.gradient_checkpointing] * mp * params.batch_size * unet_params / SDXL_COUNTS["unet"]
    # + 0.5 GiB: CUDA context / allocator slack on a GPU, the Python + torch process on CPU
    # (measured there: 0.58). Within 2 % of the measured peak in every case of the memory bench
    # on CPU; not yet checked on a GPU (none lent), where cuDNN workspaces may add to it.
    vram = (weights + trainable) / 2**30 + act + 0.5
    if device == "cpu":
        vram += _CPU_HEAP_GIB_PER_MP * mp * unet_params / SDXL_COUNTS["unet"]
    return {"steps": steps, "micro_batches_per_epoch": per_epoch, "epochs": params.epochs,
            "vram_gib": round(vram, 2), "lora_params": lora_params,
            "seconds": round(steps * sec_per_step * params.grad_accum, 1) if sec_per_step else None}
