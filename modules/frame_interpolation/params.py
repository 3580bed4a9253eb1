"""Job parameters (pydantic): what the UI, the CLI and ``POST /api/jobs`` all validate.

`InterpolateVideoParams` drives ``rife.interpolate_video``, `InterpolatePairParams`
drives ``rife.interpolate_pair``. Field constraints give REST a 422 naming the field; `StrictParams` refuses unknown
fields, over-long strings and non-finite numbers.
Frame rates are strings so exact rates can be typed: ``"60"``, ``"59.94"``, ``"60000/1001"``.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Literal

from pydantic import Field, field_validator

from core.params import StrictParams
from core.paths import RelPath

Precision = Literal["auto", "fp16", "fp32"]
Scale = Literal[0.25, 0.5, 1.0, 2.0, 4.0]
# NTSC rates typed as decimals map to their exact fractions (29.97 means 30000/1001)
_NTSC = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001), "47.952": Fraction(48000, 1001),
         "59.94": Fraction(60000, 1001), "119.88": Fraction(120000, 1001)}


def parse_fps(text: str | float | int) -> Fraction:
    """'60' / '59.94' / '60000/1001' / 24.0 -> Fraction; ValueError when not a rate in (0, 1000]."""
    s = str(text).strip()
    try:
        value = _NTSC.get(s) or Fraction(s).limit_denominator(1_000_000)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"not a frame rate: {text!r}") from None
    if not 0 < value <= 1000:
        raise ValueError(f"frame rate out of range (0, 1000]: {text!r}")
    return value


class ModelParams(StrictParams):
    model: str = Field("", description="weights file or folder under RIFE_DIR (empty: newest found)")
    scale: Scale = Field(1.0, description="flow resolution: 0.5 for 4K, 0.25 for 8K")
    precision: Precision = Field("auto", description="fp16 on GPU when auto; always fp32 on CPU")
    batch: int = Field(1, ge=1, le=16, description="timesteps of one frame pair run together")


class InterpolateVideoParams(ModelParams):
    input: str = Field(..., min_length=1, description="source video")
    output: RelPath = Field("", description="output file under OUTPUTS_DIR (empty: OUTPUTS_DIR/rife/<name>_<mode>.mp4)")
    mode: Literal["multiply", "fps", "slowmo"] = "multiply"
    multiplier: int = Field(2, ge=2, le=16, description="mode multiply: 2x, 4x, ... Nx the frame rate")
    target_fps: str = Field("60", max_length=40, description="mode fps: output frame rate, e.g. 60 or 60000/1001")
    slowmo: float = Field(2.0, ge=1.0, le=16.0, description="mode slowmo: times slower, frame rate kept")
    scene_detect: Literal["off", "hist", "ssim"] = "hist"
    scene_threshold: float = Field(0.3, ge=0.0, le=1.0, description="cut when the difference exceeds this")
    dedupe: bool = Field(False, description="drop repeated frames before interpolating")
    dedupe_threshold: float = Field(0.004, ge=0.0, le=0.1)
    codec: Literal["h264", "hevc"] = "h264"
    crf: int = Field(18, ge=0, le=51, description="quality: lower is better and larger")
    preset: Literal["ultrafast", "veryfast", "fast", "medium", "slow"] = Field(
        "medium", description="encoder speed / size trade-off")
    keep_audio: bool = Field(True, description="copy the source audio (not in slow motion)")

    @field_validator("target_fps")
    @classmethod
    def _fps(cls, v: str) -> str:
        parse_fps(v)
        return str(v).strip()


class InterpolatePairParams(ModelParams):
    image_a: str = Field(..., min_length=1)
    image_b: str = Field(..., min_length=1)
    timestep: float = Field(0.5, gt=0.0, lt=1.0, description="where the single output frame lies")
    frames: int = Field(7, ge=1, le=63, description="in-between frames of the preview animation")
    fps: float = Field(12.0, gt=0.0, le=60.0, description="preview animation frame rate")
    boomerang: bool = Field(True, description="play the animation forth and back")
    gif: bool = True
    mp4: bool = True
    output_dir: RelPath = Field("", description="folder under OUTPUTS_DIR (empty: OUTPUTS_DIR/rife)")
