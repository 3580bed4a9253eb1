"""Prediction type and zero-terminal-SNR for an SDXL base: from the checkpoint or the user.

v-prediction models (NoobAI-XL v-pred and others) mark their single files with a `v_pred`
key and, when trained with zero terminal SNR (Lin et al. 2023), a `ztsnr` key; a diffusers
folder says it in its scheduler config. The same choice drives the training target (v), the
noise schedule (betas rescaled so that alphas_cumprod[-1] == 0) and the sampler, so samples
and validation match what is trained.
"""
from __future__ import annotations

from typing import Any


def resolve(base_config: dict, facts: dict, prediction_type: str = "auto", zero_terminal_snr: str = "auto"
            ) -> tuple[str, bool]:
    """(prediction type, zero terminal SNR) from the user's choice, else the checkpoint."""
    if prediction_type in ("epsilon", "v_prediction"):
        pred = prediction_type
    elif facts.get("v_pred"):
        pred = "v_prediction"
    else:
        pred = str(base_config.get("prediction_type") or "epsilon")
    if zero_terminal_snr in ("on", "off"):
        zt = zero_terminal_snr == "on"
    else:
        zt = bool(facts.get("ztsnr") or base_config.get("rescale_betas_zero_snr"))
    return pred, zt


def configs(base_config: dict, facts: dict, prediction_type: str = "auto", zero_terminal_snr: str = "auto"
            ) -> tuple[dict, dict]:
    """(training noise-scheduler config, sampling scheduler config) for this base + choice."""
    pred, zt = resolve(base_config, facts, prediction_type, zero_terminal_snr)
    train = {k: v for k, v in dict(base_config).items() if not k.startswith("_")}
    train.update(prediction_type=pred, rescale_betas_zero_snr=zt)
    sample = dict(train)
    if zt:  # the last sampling step must be the zero-SNR timestep (Lin et al. 2023, sec. 3.3)
        sample["timestep_spacing"] = "trailing"
    return train, sample


def noise_scheduler(train_config: dict) -> Any:
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(train_config)
