"""Job parameters of the style tab (pydantic, torch-free so the module imports fast).

Field constraints are the validation (on top of `core.params.StrictParams`: unknown
fields, over-long strings and non-finite numbers refused): the REST API answers 422 naming the field, the UI
shows the same message. Paths are plain strings here; the runners resolve and check them.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator, model_validator

from core.params import MAX_SEED, StrictParams
from core.paths import RelPath, SafeName

from modules.style_transfer.layers import LAYER_NAMES

ColorSpace = Literal["ycbcr", "yiq"]
Weight = Annotated[float, Field(ge=0, le=1e6)]


def _check_layers(v: list[str]) -> list[str]:
    bad = [n for n in v if n not in LAYER_NAMES]
    if bad:
        raise ValueError(f"unknown VGG19 layer(s) {bad}; use names like relu4_2")
    return v


class _Base(StrictParams):
    pass


class GatysParams(_Base):
    content: str = Field(min_length=1, description="content image path")
    styles: list[str] = Field(min_length=1, max_length=8, description="style image paths")
    style_weights: Optional[list[Weight]] = Field(None, max_length=8, description="one weight >= 0 per style image")
    output: Optional[RelPath] = Field(None, description="output file under OUTPUTS_DIR (default: OUTPUTS_DIR/style/...png)")
    vgg_weights: Optional[str] = Field(None, description="VGG19 weights file in STYLE_DIR (default: vgg19*.pth)")
    size: int = Field(512, ge=32, le=4096, description="longer side of the output")
    steps: int = Field(300, ge=1, le=10000, description="optimisation steps per scale")
    scales: int = Field(1, ge=1, le=5, description="coarse-to-fine levels")
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    lr: Optional[float] = Field(None, gt=0, le=100)
    content_weight: float = Field(1.0, ge=0, le=1e14)
    style_weight: float = Field(1e6, ge=0, le=1e14)
    tv_weight: float = Field(1.0, ge=0, le=1e9)
    content_layers: list[str] = Field(default_factory=lambda: ["relu4_2"], min_length=1, max_length=8)
    style_layers: list[str] = Field(default_factory=lambda: ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"],
                                    min_length=1, max_length=16)
    style_layer_weights: Optional[list[Weight]] = Field(None, max_length=16)
    style_scale: float = Field(1.0, ge=0.1, le=4.0)
    init: Literal["content", "noise"] = "content"
    original_colors: bool = False
    color_space: ColorSpace = "ycbcr"
    pool: Literal["max", "avg"] = "max"
    preview_every: int = Field(50, ge=0, le=10000)
    seed: int = Field(0, ge=0, le=MAX_SEED)

    _layers = field_validator("content_layers", "style_layers")(_check_layers)

    @model_validator(mode="after")
    def _weights_match(self) -> "GatysParams":
        if self.style_weights is not None:
            if len(self.style_weights) != len(self.styles) or any(w < 0 for w in self.style_weights) \
                    or sum(self.style_weights) <= 0:
                raise ValueError("style_weights needs one weight >= 0 per style image, not all zero")
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            raise ValueError("style_layer_weights needs one weight per style layer")
        return self


class FastApplyParams(_Base):
    model: str = Field(min_length=1, description="fast style network (.pth/.safetensors) in STYLE_DIR, or a path")
    inputs: list[str] = Field(min_length=1, max_length=1000, description="image files, folders or videos")
    output_dir: Optional[RelPath] = Field(None, description="folder under OUTPUTS_DIR (default: OUTPUTS_DIR/style/<job id>)")
    recursive: bool = True
    max_side: Optional[int] = Field(None, ge=32, le=8192, description="network input's longer side")
    original_colors: bool = False
    color_space: ColorSpace = "ycbcr"
    strength: float = Field(1.0, ge=0.0, le=1.0)
    image_format: Literal["png", "jpg", "webp"] = "png"
    codec: Literal["h264", "hevc"] = "h264"
    crf: int = Field(18, ge=0, le=51)


class FastTrainParams(_Base):
    style: str = Field(min_length=1, description="style image path")
    content_dir: str = Field(min_length=1, description="folder of content images")
    name: SafeName = Field(min_length=1, max_length=80, description="network name: STYLE_DIR/<name>.pth")
    vgg_weights: Optional[str] = None
    init_from: Optional[str] = Field(None, description="fine-tune from this network instead of from scratch")
    image_size: int = Field(256, ge=32, le=1024)
    batch_size: int = Field(4, ge=1, le=64)
    steps: int = Field(2000, ge=1, le=500000)
    lr: float = Field(1e-3, gt=0, le=1)
    content_weight: float = Field(1e5, ge=0, le=1e14)
    style_weight: float = Field(1e10, ge=0, le=1e14)
    tv_weight: float = Field(0.0, ge=0, le=1e9)
    content_layer: str = Field("relu2_2", max_length=40)
    style_layers: list[str] = Field(default_factory=lambda: ["relu1_2", "relu2_2", "relu3_4", "relu4_4"],
                                    min_length=1, max_length=16)
    style_size: Optional[int] = Field(None, ge=32, le=2048)
    preview_every: int = Field(100, ge=0, le=500000)
    checkpoint_every: int = Field(500, ge=0, le=500000)
    seed: int = Field(42, ge=0, le=MAX_SEED)

    _layers = field_validator("style_layers")(_check_layers)

    @field_validator("content_layer")
    @classmethod
    def _content_layer(cls, v: str) -> str:
        return _check_layers([v])[0]


class ExportOnnxParams(_Base):
    model: str = Field(min_length=1, description="fast style network in STYLE_DIR, or a path")
    output: Optional[RelPath] = Field(None, description="file under OUTPUTS_DIR (default: next to the network, .onnx)")
    opset: int = Field(17, ge=11, le=21)
    check_size: int = Field(256, ge=32, le=1024, description="side of the test image for the numerical check")
    atol: float = Field(1e-2, gt=0, le=255, description="absolute tolerance, in 0-255 pixel units")
    benchmark: bool = True
