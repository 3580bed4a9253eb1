"""Aspect-ratio buckets and crop geometry for SDXL training images.

SDXL was trained on buckets of about 1024x1024 pixels of area with sides in multiples of
64 (SDXL paper, appendix). Training on the bucket nearest an image's aspect ratio keeps
most of the picture, where a square crop would cut heads and feet. For another target
resolution R the list is scaled by R/1024 and rounded to multiples of 64.

`plan_bucket` / `plan_center_crop` return a `Plan`: how to resize, where to crop, and the
sizes SDXL's time ids need. We never upscale silently: an image smaller than its bucket
keeps its own size (floored to a multiple of 64, kohya's "no upscale" rule) unless the
caller allows upscaling, and either way the plan says so, so the importer can warn.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

STEP = 64
# (width, height) pairs of the SDXL bucket list at 1024^2 area (portrait half; mirrored below).
_SDXL_PORTRAIT = [
    (512, 2048), (512, 1984), (512, 1920), (512, 1856), (576, 1792), (576, 1728), (576, 1664),
    (640, 1600), (640, 1536), (704, 1472), (704, 1408), (704, 1344), (768, 1344), (768, 1280),
    (832, 1216), (832, 1152), (896, 1152), (896, 1088), (960, 1088), (960, 1024), (1024, 1024),
]
SDXL_BUCKETS_1024: list[tuple[int, int]] = sorted(set(_SDXL_PORTRAIT + [(h, w) for w, h in _SDXL_PORTRAIT]))


def _round64(x: float) -> int:
    return max(STEP, int(math.floor(x / STEP + 0.5)) * STEP)


def bucket_list(resolution: int = 1024, max_aspect: float = 4.0) -> list[tuple[int, int]]:
    """(width, height) buckets for a target resolution, multiples of 64, sorted by aspect."""
    if resolution < STEP or resolution % STEP:
        raise ValueError(f"resolution must be a positive multiple of {STEP}, got {resolution}")
    scale = resolution / 1024
    out = set()
    for w, h in SDXL_BUCKETS_1024:
        bw, bh = _round64(w * scale), _round64(h * scale)
        if max(bw, bh) / min(bw, bh) <= max_aspect + 1e-9:
            out.add((bw, bh))
    return sorted(out, key=lambda wh: (wh[0] / wh[1], wh[0]))


def nearest_bucket(width: int, height: int, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest in log space (so 2:1 and 1:2 weigh the same)."""
    target = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - target), -b[0] * b[1]))


@dataclass(frozen=True)
class Plan:
    """How one image becomes a training image. Sizes are (width, height) unless named _hw."""

    original: tuple[int, int]
    resized: tuple[int, int]  # size after resizing (before the crop)
    crop_left: int
    crop_top: int
    target: tuple[int, int]  # final size = bucket
    upscaled: bool  # resized is larger than original
    too_small_for_bucket: bool  # the nominal bucket was larger than the image

    @property
    def original_size_hw(self) -> list[int]:
        return [self.original[1], self.original[0]]

    @property
    def resized_size_hw(self) -> list[int]:
        return [self.resized[1], self.resized[0]]

    @property
    def crop_top_left_yx(self) -> list[int]:
        return [self.crop_top, self.crop_left]

    @property
    def target_size_hw(self) -> list[int]:
        return [self.target[1], self.target[0]]


def _cover(width: int, height: int, tw: int, th: int, upscale: bool) -> Plan:
    """Resize (aspect kept) so the image covers tw x th, then center-crop to it."""
    scale = max(tw / width, th / height)
    too_small = scale > 1.0
    if too_small and not upscale:
        # Keep the pixels we have: crop to the largest centered box of the bucket's
        # aspect that fits, floored to multiples of 64. No resize at all.
        ratio = tw / th
        cw, ch = (width, width / ratio) if width / height <= ratio else (height * ratio, height)
        cw, ch = int(cw) // STEP * STEP, int(ch) // STEP * STEP
        cw, ch = max(cw, STEP), max(ch, STEP)
        return Plan((width, height), (width, height), (width - cw) // 2, (height - ch) // 2, (cw, ch), False, True)
    rw, rh = max(tw, round(width * scale)), max(th, round(height * scale))
    return Plan((width, height), (rw, rh), (rw - tw) // 2, (rh - th) // 2, (tw, th), rw > width or rh > height, too_small)


def plan_bucket(width: int, height: int, resolution: int = 1024, upscale: bool = False,
                buckets: list[tuple[int, int]] | None = None) -> Plan:
    """Plan for bucket mode: nearest-aspect bucket, resize down to cover it, center crop."""
    bw, bh = nearest_bucket(width, height, buckets or bucket_list(resolution))
    return _cover(width, height, bw, bh, upscale)


def plan_center_crop(width: int, height: int, resolution: int = 1024, upscale: bool = False) -> Plan:
    """Plan for crop mode: a square `resolution` image (short side resized, center crop)."""
    return _cover(width, height, resolution, resolution, upscale)
