"""The "Recipe" part of the training tab's Advanced section (issue 14 options of TrainParams):
EMA, masked loss, captions during training, regularisation images, loss/noise variants,
timestep range, LoRA+ and per-block UNet learning rates. Same field names as REST and CLI.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

RECIPE_FIELDS = ["ema", "ema_decay", "ema_start_step", "ema_for_samples", "masked_loss", "caption_dropout",
                 "shuffle_tags", "keep_tokens", "reg_data_dir", "prior_loss_weight", "loss_type", "huber_schedule",
                 "huber_c", "huber_scale", "debiased_estimation", "multires_noise_iterations",
                 "multires_noise_discount", "ip_noise_gamma", "min_timestep", "max_timestep", "loraplus_ratio",
                 "unet_block_lr"]
INT_FIELDS = ("ema_start_step", "keep_tokens", "multires_noise_iterations", "min_timestep", "max_timestep")


def convert(name: str, value: Any) -> Any:
    """A form value -> the TrainParams value (block LRs are typed as "1e-4, 2e-4, ...")."""
    if name in INT_FIELDS:
        return int(value or 0)
    if name == "unet_block_lr":
        text = value if isinstance(value, str) else ",".join(map(str, value or []))
        return [float(x) for x in text.replace(";", ",").split(",") if x.strip()]
    if name == "reg_data_dir":
        return (value or "").strip()
    return value


def build(w: dict, d: Any, i18n: Any) -> None:
    """Add the recipe widgets to `w` (inside the Advanced accordion)."""
    with gr.Accordion(i18n("lora.ui.recipe"), open=False):
        with gr.Row():
            w["ema"] = gr.Checkbox(d.ema, label=i18n("lora.ui.ema"), info=i18n("lora.ui.ema_info"))
            w["ema_decay"] = gr.Number(d.ema_decay, label=i18n("lora.ui.ema_decay"), minimum=0, maximum=1)
            w["ema_start_step"] = gr.Number(d.ema_start_step, label=i18n("lora.ui.ema_start_step"), precision=0,
                                            minimum=0)
            w["ema_for_samples"] = gr.Checkbox(d.ema_for_samples, label=i18n("lora.ui.ema_for_samples"))
        with gr.Row():
            w["masked_loss"] = gr.Checkbox(d.masked_loss, label=i18n("lora.ui.masked_loss"),
                                           info=i18n("lora.ui.masked_loss_info"))
            w["caption_dropout"] = gr.Slider(0, 1, d.caption_dropout, step=0.01, label=i18n("lora.ui.caption_dropout"))
            w["shuffle_tags"] = gr.Checkbox(d.shuffle_tags, label=i18n("lora.ui.shuffle_tags"),
                                            info=i18n("lora.ui.shuffle_tags_info"))
            w["keep_tokens"] = gr.Number(d.keep_tokens, label=i18n("lora.ui.keep_tokens"), precision=0, minimum=0)
        with gr.Row():
            w["reg_data_dir"] = gr.Textbox(d.reg_data_dir, label=i18n("lora.ui.reg_data_dir"),
                                           placeholder=i18n("lora.ui.reg_data_dir_ph"))
            w["prior_loss_weight"] = gr.Number(d.prior_loss_weight, label=i18n("lora.ui.prior_loss_weight"), minimum=0)
        with gr.Row():
            w["loss_type"] = gr.Dropdown(["l2", "l1", "huber", "smooth_l1"], value=d.loss_type,
                                         label=i18n("lora.ui.loss_type"))
            w["huber_schedule"] = gr.Dropdown(["constant", "exponential", "snr"], value=d.huber_schedule,
                                              label=i18n("lora.ui.huber_schedule"))
            w["huber_c"] = gr.Number(d.huber_c, label=i18n("lora.ui.huber_c"), minimum=0)
            w["huber_scale"] = gr.Number(d.huber_scale, label=i18n("lora.ui.huber_scale"), minimum=0)
            w["debiased_estimation"] = gr.Checkbox(d.debiased_estimation, label=i18n("lora.ui.debiased"))
        with gr.Row():
            w["multires_noise_iterations"] = gr.Number(d.multires_noise_iterations, precision=0, minimum=0,
                                                       label=i18n("lora.ui.multires_iterations"))
            w["multires_noise_discount"] = gr.Number(d.multires_noise_discount, minimum=0, maximum=1,
                                                     label=i18n("lora.ui.multires_discount"))
            w["ip_noise_gamma"] = gr.Number(d.ip_noise_gamma, minimum=0, maximum=1, label=i18n("lora.ui.ip_noise"))
            w["min_timestep"] = gr.Number(d.min_timestep, precision=0, minimum=0, maximum=1000,
                                          label=i18n("lora.ui.min_timestep"))
            w["max_timestep"] = gr.Number(d.max_timestep, precision=0, minimum=0, maximum=1000,
                                          label=i18n("lora.ui.max_timestep"))
        with gr.Row():
            w["loraplus_ratio"] = gr.Number(d.loraplus_ratio, minimum=0, label=i18n("lora.ui.loraplus_ratio"),
                                            info=i18n("lora.ui.loraplus_info"))
            w["unet_block_lr"] = gr.Textbox("", label=i18n("lora.ui.unet_block_lr"),
                                            placeholder=i18n("lora.ui.unet_block_lr_ph"))
