"""Job parameters and model-size presets of the image classifier.

Presets (seed 004's "lightweight -> xlarge" ladder, for images): each names a pretrained
`AutoModelForImageClassification` backbone and the defaults that suit it. A preset's
backbone is looked up first in `<CLASSIFIERS_DIR>/backbones/<org>--<name>` (put a
downloaded folder there to work offline), then in the Hugging Face cache / hub.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from core.params import MAX_SEED, StrictParams
from core.paths import SafeName


@dataclass(frozen=True)
class Preset:
    backbone: str
    params_m: float  # millions of parameters, shown in the UI
    image_size: int
    batch_size: int
    lr_head: float  # learning rate when only the head trains
    lr_full: float  # learning rate when everything is fine-tuned


PRESETS: dict[str, Preset] = {
    "lightweight": Preset("google/mobilenet_v2_1.0_224", 3.5, 224, 64, 1e-3, 3e-4),
    "baseline": Preset("microsoft/resnet-18", 11.7, 224, 64, 1e-3, 2e-4),
    "medium": Preset("microsoft/resnet-50", 25.6, 224, 32, 1e-3, 1e-4),
    "large": Preset("facebook/convnext-tiny-224", 28.6, 224, 32, 1e-3, 1e-4),
    "xlarge": Preset("google/vit-base-patch16-224", 86.6, 224, 32, 1e-3, 5e-5),
}

PresetName = Literal["lightweight", "baseline", "medium", "large", "xlarge"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # a model name is a folder name


class TrainParams(StrictParams):
    """`clf.train`: train (or resume) a classifier on an ImageFolder dataset."""

    data_dir: str = Field(min_length=1, description="folder with one sub-folder of images per class")
    name: SafeName = Field(pattern=NAME_PATTERN, description="output model folder name in CLASSIFIERS_DIR")
    preset: PresetName = "baseline"
    backbone: str = Field("", description="local folder or hub id; overrides the preset's backbone")
    image_size: int | None = Field(None, ge=16, le=1024)
    freeze_backbone: bool = False
    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int | None = Field(None, ge=1, le=1024)
    lr: float | None = Field(None, gt=0, le=1.0)
    weight_decay: float = Field(0.05, ge=0, le=1.0)
    warmup_ratio: float = Field(0.05, ge=0, le=0.5)
    label_smoothing: float = Field(0.0, ge=0, lt=1.0)
    val_ratio: float = Field(0.2, ge=0.05, le=0.5)
    test_ratio: float = Field(0.0, ge=0, le=0.5)
    seed: int = Field(42, ge=0, le=MAX_SEED)
    augment: bool = True
    hflip: bool = True
    vflip: bool = False
    crop_scale_min: float = Field(0.6, ge=0.05, le=1.0)
    color_jitter: float = Field(0.2, ge=0, le=1.0)
    monitor: Literal["val_loss", "val_acc"] = "val_loss"
    patience: int = Field(5, ge=0, le=1000, description="epochs without improvement before stopping; 0 = off")
    export_onnx: bool = False
    resume: bool = Field(False, description="continue the run saved under `name`")
    overwrite: bool = Field(False, description="replace an existing model of that name")

    def preset_obj(self) -> Preset:
        return PRESETS[self.preset]


class ExportParams(StrictParams):
    """`clf.export_onnx`: export a saved classifier to ONNX and check it against PyTorch."""

    model: SafeName = Field(pattern=NAME_PATTERN, description="model folder name in CLASSIFIERS_DIR")
    opset: int = Field(17, ge=11, le=23)
    tolerance: float = Field(1e-4, gt=0, le=0.1, description="max |probability difference| accepted")
