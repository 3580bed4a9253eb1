"""Parameters of the `sr.upscale` job (validated by pydantic: REST answers 422 naming the field)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.params import MAX_ITEMS, StrictParams
from core.paths import RelPath

VIDEO_EXTS = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
WEIGHT_EXTS = {".pth", ".pt", ".safetensors", ".ckpt", ".bin"}


class UpscaleParams(StrictParams):
    model: str = Field(min_length=1, description="Weights file: a name in UPSCALERS_DIR or a path")
    inputs: list[str] = Field(min_length=1, max_length=MAX_ITEMS, description="Image files, folders (recursive) and/or videos")
    output_dir: RelPath | None = Field(None, description="Folder under OUTPUTS_DIR (default OUTPUTS_DIR/upscaled/<job>)")
    outscale: float | None = Field(None, gt=0, le=16, description="Final scale; the model's result is "
                                   "Lanczos-resampled to it (e.g. 2 with a 4x model). Default: the model's")
    tile: int = Field(0, ge=0, le=8192, description="Tile size in input pixels, 0 = automatic from free memory")
    overlap: int = Field(8, ge=0, le=256, description="Pixels where neighbouring tiles are cross-faded")
    pad: int = Field(16, ge=0, le=256, description="Context pixels around each tile, discarded after")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    alpha: Literal["model", "lanczos"] = "model"
    format: Literal["same", "png", "jpg", "webp", "tif"] = "same"
    suffix: str = Field("", max_length=40, pattern=r"^[\w\-. ]*$", description="Appended to each output name")
    skip_existing: bool = False
    video_codec: Literal["h264", "hevc"] = "h264"
    crf: int = Field(18, ge=0, le=51)
