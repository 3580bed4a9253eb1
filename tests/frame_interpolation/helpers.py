"""Shared test helpers: tiny real RIFE networks saved like Practical-RIFE files, synthetic clips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from modules.frame_interpolation.ifnet import IFNet, IFNetConfig

TINY = IFNetConfig("4.25", (8, 8, 8, 8, 8), 4, 4)


TINY46 = IFNetConfig("4.6", (8, 8, 8, 8))


def tiny_net(seed: int = 0, config: IFNetConfig = TINY) -> IFNet:
    torch.manual_seed(seed)
    net = IFNet(config)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if not name.endswith("beta"):
                p.mul_(0.5)
    return net.eval()


def save_tiny_model(folder: Path, name: str = "4.25/flownet.pkl", seed: int = 0) -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"module." + k: v for k, v in tiny_net(seed).state_dict().items()}, path)
    return path


def scene(i: int, h: int = 48, w: int = 64, kind: int = 0) -> np.ndarray:
    """Frame i of a moving pattern; `kind` 1 is a different scene (other colours and shapes)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:
        r = np.sin((xx + 3 * i) / 6.0) * 0.5 + 0.5
        g = np.cos((yy + i) / 9.0) * 0.5 + 0.5
        img = np.stack([r, g, r * g], -1) * 0.8 + 0.1
    else:
        c = ((xx // 8 + yy // 8 + i) % 2).astype(np.float32)
        img = np.stack([0.1 + 0.2 * c, 0.9 - 0.3 * c, 0.2 + 0.7 * c], -1)
    return (img * 255).round().astype(np.uint8)


class ListWriter:
    """A writer that keeps frames (for pipeline tests without a container)."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.closed = False

    def write(self, frame: np.ndarray, pts_seconds: float | None = None) -> None:
        self.frames.append(frame)
        self.times.append(pts_seconds)

    def close(self) -> None:
        self.closed = True
