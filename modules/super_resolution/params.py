"""Parameters of the `sr.upscale` job (validated by pydantic: REST answers 422 naming the field)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from core.params import MAX_ITEMS, StrictParams
from core.paths import RelPath

# the smallest tile a user may type: below it the padding context dwarfs the tile
MIN_USER_TILE = 16
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
    video_codec: Literal["h264", "hevc", "vp9"] = "h264"
    crf: int = Field(18, ge=0, le=51)

    @field_validator("tile")
    @classmethod
    def _tile(cls, v: int) -> int:
        if 0 < v < MIN_USER_TILE:
            raise ValueError(f"tile must be 0 (automatic) or at least {MIN_USER_TILE} px, not {v}")
        return v

    @field_validator("overlap")
    @classmethod
    def _overlap(cls, v: int, info: ValidationInfo) -> int:
        # checked together with the tile: an overlap over half the tile makes tiles advance by
        # a few pixels (tile 8, overlap 8: 1 px a step), so it is refused, naming the field
        tile = info.data.get("tile")
        if tile and v > tile // 2:
            raise ValueError(f"overlap ({v}) must be at most half the tile ({tile} px): {tile // 2} or less")
        return v
