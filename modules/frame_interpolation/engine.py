"""The interpolation engine: frames in (uint8 HxWx3 arrays), interpolated frames out.

`Interpolator` owns an IFNet on a device and dtype (fp16 on GPU when asked), pads every
frame to the model's multiple (replicate padding, then cropped back), applies the flow
`scale` (0.5 / 0.25 for 4K: the flow is estimated at lower resolution, the warp stays at
full resolution), keeps a frame's encoder features so a frame shared by two pairs is
encoded once, and runs several timesteps of one pair as one batch.

No UI, no IO: used by the video pipeline, the two-image job, the CLI and the bench.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import StudioError

SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass
class Prepared:
    """A frame on the device, padded, with its encoder features (4.25 family) cached."""

    tensor: torch.Tensor  # (1,3,Hp,Wp)
    feats: torch.Tensor | None
    height: int
    width: int


class Interpolator:
    def __init__(self, net, device: str = "cpu", dtype: torch.dtype = torch.float32, scale: float = 1.0,
                 batch: int = 1) -> None:
        if scale not in SCALES:
            raise StudioError("rife.bad_scale", scale=scale, allowed=", ".join(str(s) for s in SCALES))
        if device == "cpu" and dtype == torch.float16:
            dtype = torch.float32  # half convolutions on CPU are slow and inexact: never worth it
        self.net = net.to(device=device, dtype=dtype).eval()
        self.device = device
        self.dtype = dtype
        self.scale = float(scale)
        self.batch = max(1, int(batch))
        self.multiple = net.config.multiple(self.scale)
        self.variant = net.config.variant

    # -- frames in and out -------------------------------------------------------
    def pad_size(self, height: int, width: int) -> tuple[int, int]:
        m = self.multiple
        return -(-height // m) * m, -(-width // m) * m

    @torch.inference_mode()
    def prepare(self, frame: np.ndarray) -> Prepared:
        """uint8 (H,W,3) -> padded device tensor in [0,1] (+ encoder features)."""
        if frame.ndim != 3 or frame.shape[2] < 3:
            raise StudioError("rife.bad_frame", shape=str(tuple(frame.shape)))
        h, w = frame.shape[:2]
        arr = np.ascontiguousarray(frame[:, :, :3])
        if not arr.flags.writeable:  # e.g. np.asarray(PIL image): torch wants a writable buffer
            arr = arr.copy()
        x = torch.from_numpy(arr).to(self.device, non_blocking=True)
        x = x.permute(2, 0, 1).unsqueeze(0).to(self.dtype) / 255.0
        ph, pw = self.pad_size(h, w)
        if (ph, pw) != (h, w):
            # replicate, not zeros: a black border would pull flow and mask at the edges
            x = F.pad(x, (0, pw - w, 0, ph - h), mode="replicate")
        return Prepared(x, self.net.encode_frame(x), h, w)

    def to_uint8(self, x: torch.Tensor, height: int, width: int) -> list[np.ndarray]:
        x = x[:, :, :height, :width].float().clamp_(0, 1).mul_(255).round_().to(torch.uint8)
        arr = x.permute(0, 2, 3, 1).cpu().numpy()
        return [np.ascontiguousarray(a) for a in arr]

    # -- inference ------------------------------------------------------------
    @torch.inference_mode()
    def interpolate(self, a: Prepared, b: Prepared, timesteps: Sequence[float]) -> list[np.ndarray]:
        """Frames at each timestep in (0,1) between prepared frames `a` and `b`, as uint8."""
        if (a.height, a.width) != (b.height, b.width):
            raise StudioError("rife.size_mismatch", a=f"{a.width}x{a.height}", b=f"{b.width}x{b.height}")
        out: list[np.ndarray] = []
        for start in range(0, len(timesteps), self.batch):
            chunk = list(timesteps[start:start + self.batch])
            t = torch.tensor(chunk, device=self.device, dtype=self.dtype).view(-1, 1, 1, 1)
            feats = (a.feats, b.feats) if a.feats is not None else None
            y = self.net(a.tensor, b.tensor, t, scale=self.scale, feats=feats)
            out.extend(self.to_uint8(y, a.height, a.width))
        return out

    def interpolate_arrays(self, frame0: np.ndarray, frame1: np.ndarray, timesteps: Sequence[float]) -> list[np.ndarray]:
        return self.interpolate(self.prepare(frame0), self.prepare(frame1), timesteps)


def make_interpolator(model_path, device: str = "cpu", precision: str = "fp32", scale: float = 1.0,
                      batch: int = 1) -> Interpolator:
    """Load weights from `model_path` and wrap them (precision: "fp32" | "fp16" | "auto")."""
    from modules.frame_interpolation.weights import load_ifnet

    dtype = torch.float32
    if device.startswith("cuda") and precision in ("fp16", "auto"):
        dtype = torch.float16  # RIFE is trained for fp16 inference (Practical-RIFE --fp16)
    return Interpolator(load_ifnet(model_path), device, dtype, scale, batch)
