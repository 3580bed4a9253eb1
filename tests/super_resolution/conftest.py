"""Tiny real SR networks saved in the published layouts, built on the spot (no downloads)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch


def new_rrdb_sd(nf: int = 8, nb: int = 1, gc: int = 4, n_up: int = 2, unshuffle: int = 1, seed: int = 0) -> dict:
    """A random state dict in BasicSR / Real-ESRGAN key names."""
    from modules.super_resolution.archs import RRDBNet

    torch.manual_seed(seed)
    return {k: v.clone() for k, v in RRDBNet(3, 3, nf, nb, gc, n_up, unshuffle).state_dict().items()}


def to_old_keys(sd: dict, n_up: int) -> dict:
    """BasicSR names -> original ESRGAN sequential names (written from the ESRGAN repo layout)."""
    nb = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
    out = {}
    for k, v in sd.items():
        m = re.match(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)", k)
        if m:
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{m[4]}"] = v
            continue
        name, kind = k.rsplit(".", 1)
        if name == "conv_first":
            out[f"model.0.{kind}"] = v
        elif name == "conv_body":
            out[f"model.1.sub.{nb}.{kind}"] = v
        elif name.startswith("conv_up"):
            out[f"model.{3 * int(name[7:])}.{kind}"] = v
        elif name == "conv_hr":
            out[f"model.{3 * n_up + 2}.{kind}"] = v
        elif name == "conv_last":
            out[f"model.{3 * n_up + 4}.{kind}"] = v
    return out


def compact_sd(nf: int = 8, nc: int = 2, scale: int = 4, seed: int = 0, zero_last: bool = False) -> dict:
    """Real-ESRGAN SRVGGNetCompact layout. zero_last: the net reduces to a nearest upscale."""
    from modules.super_resolution.archs import SRVGGNetCompact

    torch.manual_seed(seed)
    sd = {k: v.clone() for k, v in SRVGGNetCompact(3, 3, nf, nc, scale).state_dict().items()}
    if zero_last:
        last = max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
        sd[f"body.{last}.weight"].zero_()
        sd[f"body.{last}.bias"].zero_()
    return sd


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    d = tmp_path / "upscalers"
    d.mkdir()
    return d


@pytest.fixture
def nearest4(models_dir: Path) -> Path:
    """A x4 compact net whose output is exactly the nearest-neighbour upscale of its input."""
    p = models_dir / "nearest_x4.pth"
    torch.save({"params": compact_sd(zero_last=True)}, p)
    return p


def lively(sd: dict) -> dict:
    """Random nets output ~0 +- 0.03, clipped to black; spread the output over [0, 1]."""
    sd["conv_last.weight"] = sd["conv_last.weight"] * 8
    sd["conv_last.bias"] = sd["conv_last.bias"] + 0.5
    return sd


@pytest.fixture
def rrdb4(models_dir: Path) -> Path:
    p = models_dir / "RealESRGAN_tiny_x4.pth"
    torch.save({"params_ema": lively(new_rrdb_sd()), "params": new_rrdb_sd(seed=1)}, p)
    return p
