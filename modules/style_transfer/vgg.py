"""VGG19 feature extractor (our own code), state-dict compatible with torchvision's vgg19.

The published ImageNet weights (`vgg19-dcbb9e9d.pth`, torchvision layout) store the
convolutions as `features.N.weight/bias`; a full vgg19 state dict also carries
`classifier.*` keys, which we drop. Only the layers up to the deepest one a loss needs
are built, so Gatys with relu4_2/relu5_1 never runs the classifier or unused convs.

Inputs are RGB in [0, 1]; the ImageNet mean/std normalisation happens inside.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from modules.style_transfer.layers import LAYER_INDEX, LAYER_NAMES, VGG19_CFG  # noqa: F401 - re-exported

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_features(upto: int | None = None, pool: str = "max") -> nn.Sequential:
    """`features` as in torchvision (same indices), truncated after index `upto`."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2) if pool == "max" else nn.AvgPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(v)
    if upto is not None:
        layers = layers[: upto + 1]
    return nn.Sequential(*layers)


def features_state_dict(state: dict) -> dict[str, torch.Tensor]:
    """Keep only the `features.N.*` tensors, renamed `N.*` (drop classifier, tolerate prefixes).

    Accepts torchvision's `features.0.weight`, a wrapped `module.features.0.weight` or a
    bare `0.weight` features-only dict.
    """
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    out: dict[str, torch.Tensor] = {}
    for key, val in state.items():
        m = re.search(r"(?:^|\.)features\.(\d+\.(?:weight|bias))$", key) or re.fullmatch(r"(\d+\.(?:weight|bias))", key)
        if m and isinstance(val, torch.Tensor):
            out[m.group(1)] = val
    return out


class VGG19Features(nn.Module):
    """Runs VGG19 `features` and returns the activations of the requested named layers."""

    def __init__(self, layers: list[str] | tuple[str, ...] = ("relu5_1",), pool: str = "max") -> None:
        super().__init__()
        unknown = [n for n in layers if n not in LAYER_INDEX]
        if unknown:
            raise ValueError(f"unknown VGG19 layers: {unknown}")
        self.upto = max(LAYER_INDEX[n] for n in layers)
        self.features = build_features(self.upto, pool)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def load_features(self, state: dict) -> None:
        """Load torchvision-layout weights; missing convs below `upto` is an error."""
        feats = features_state_dict(state)
        own = self.features.state_dict()
        wanted = {k: v for k, v in feats.items() if k in own}
        missing = sorted(set(own) - set(wanted), key=lambda k: int(k.split(".")[0]))
        if missing:
            raise KeyError(f"VGG19 weights lack {missing[:4]}")
        for k, v in wanted.items():
            if v.shape != own[k].shape:
                raise ValueError(f"VGG19 weight {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
        self.features.load_state_dict(wanted)

    def forward(self, x: torch.Tensor, names: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
        """`x`: (N,3,H,W) RGB in [0,1]. Returns {name: activation} for `names`."""
        want = {LAYER_INDEX[n]: n for n in names}
        out: dict[str, torch.Tensor] = {}
        h = (x - self.mean) / self.std
        last = max(want)
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in want:
                out[want[i]] = h
            if i >= last:
                break
        return out


def find_vgg_weights(folder: Path, name: str | None = None) -> Path | None:
    """The VGG19 weights file in `folder`: `name` if given, else the first vgg19*.pth/.safetensors."""
    if name:
        p = Path(name)
        p = p if p.is_absolute() else folder / p
        return p if p.is_file() else None
    for pattern in ("vgg19*.safetensors", "vgg19*.pth", "vgg19*.pt", "vgg19*.bin"):
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0]
    return None


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """(N,C,H,W) -> (N,C,C), normalised by C*H*W so layer sizes weigh alike."""
    n, c, h, w = feat.shape
    f = feat.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)
