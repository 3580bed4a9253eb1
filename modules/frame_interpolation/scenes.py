"""Scene-cut and repeated-frame detection on small thumbnails (numpy + PIL, no torch).

Each frame is reduced once to a 64x64 RGB thumbnail (box filter); comparisons between
consecutive frames are then cheap enough to run in the decode thread:

* ``"hist"`` - half the L1 distance between normalised 16-bin per-channel histograms
  (0 = same colour distribution, 1 = disjoint). Robust to fast motion inside one shot.
* ``"ssim"`` - 1 - SSIM of 32x32 greyscale thumbnails (7x7 box windows), what
  Practical-RIFE does (it treats SSIM < 0.2 as a cut, i.e. a score > 0.8 here).
Both compare thumbnails whose levels are stretched per channel first, so fades and
exposure changes do not look like cuts, and a pair is a cut only when its score exceeds
``threshold`` and the thumbnails also differ by more than `MIN_CUT_CHANGE` (mean absolute
change). Dedupe uses the mean absolute
difference of the thumbnails in [0, 1] (a repeated frame of an animation on twos, or a
frozen capture, scores ~0.001; compression noise stays under ~0.004).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

THUMB = 64
MIN_CUT_CHANGE = 0.05  # mean absolute thumbnail change (0..1) below which no pair is a cut
METHODS = ("off", "hist", "ssim")


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """(H,W,3) uint8 -> (64,64,3) float32 in [0,1]."""
    img = Image.fromarray(np.ascontiguousarray(frame[:, :, :3]))
    return np.asarray(img.resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.float32) / 255.0


def hist_distance(a: np.ndarray, b: np.ndarray, bins: int = 16) -> float:
    total = 0.0
    for c in range(3):
        ha, _ = np.histogram(a[:, :, c], bins=bins, range=(0.0, 1.0))
        hb, _ = np.histogram(b[:, :, c], bins=bins, range=(0.0, 1.0))
        total += 0.5 * np.abs(ha / ha.sum() - hb / hb.sum()).sum()
    return float(total / 3)


def _box(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over every k x k window (valid positions only), via a summed-area table."""
    s = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]) / (k * k)


def ssim(a: np.ndarray, b: np.ndarray, k: int = 7) -> float:
    """Mean SSIM of two greyscale images in [0,1] with k x k box windows."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    a, b = a.astype(np.float64), b.astype(np.float64)
    ma, mb = _box(a, k), _box(b, k)
    va = _box(a * a, k) - ma * ma
    vb = _box(b * b, k) - mb * mb
    cov = _box(a * b, k) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return float(s.mean())


def _grey32(t: np.ndarray) -> np.ndarray:
    g = t @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return g.reshape(32, 2, 32, 2).mean(axis=(1, 3))


def _normalise(t: np.ndarray) -> np.ndarray:
    """Per-channel contrast stretch to [0,1]: a fade or a flash changes levels, not content."""
    lo = t.min(axis=(0, 1), keepdims=True)
    span = t.max(axis=(0, 1), keepdims=True) - lo
    return (t - lo) / np.maximum(span, 0.05)  # near-flat frames (black) are not blown up


def cut_score(a: np.ndarray, b: np.ndarray, method: str) -> float:
    """Difference of two thumbnails in [0,1] by `method` ("hist" | "ssim"), after levels
    are normalised (so fades and exposure changes score low)."""
    a, b = _normalise(a), _normalise(b)
    if method == "hist":
        return hist_distance(a, b)
    if method == "ssim":
        return float(np.clip(1.0 - ssim(_grey32(a), _grey32(b)), 0.0, 1.0))
    raise ValueError(method)


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


@dataclass
class Verdict:
    keep: bool  # False: a repeated frame, dropped (dedupe)
    cut_before: bool  # a scene cut lies between the previous kept frame and this one
    score: float
    diff: float


class SceneDetector:
    """Feed frames in order; tells whether each is a duplicate to drop and/or after a cut."""

    def __init__(self, method: str = "hist", threshold: float = 0.5, dedupe: bool = False,
                 dedupe_threshold: float = 0.004) -> None:
        if method not in METHODS:
            raise ValueError(method)
        self.method, self.threshold = method, float(threshold)
        self.dedupe, self.dedupe_threshold = dedupe, float(dedupe_threshold)
        self.prev: np.ndarray | None = None  # thumbnail of the previous kept frame

    def check(self, frame: np.ndarray) -> Verdict:
        if self.method == "off" and not self.dedupe:
            return Verdict(True, False, 0.0, 0.0)
        thumb = thumbnail(frame)
        if self.prev is None:
            self.prev = thumb
            return Verdict(True, False, 0.0, 0.0)
        diff = frame_difference(self.prev, thumb)
        if self.dedupe and diff < self.dedupe_threshold:
            return Verdict(False, False, 0.0, diff)
        score = cut_score(self.prev, thumb, self.method) if self.method != "off" else 0.0
        self.prev = thumb
        # a cut also changes the pixels themselves: small steps (a slow fade from black,
        # where levels are too low to normalise) are never cuts
        return Verdict(True, score > self.threshold and diff > MIN_CUT_CHANGE, score, diff)
