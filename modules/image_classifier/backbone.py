"""Backbones in, classifier folders out.

`load_backbone` opens a pretrained `AutoModelForImageClassification` (ResNet, ConvNeXt,
ViT, MobileNet... and timm models through transformers' timm wrapper when timm is
installed) from a local folder or a hub id, and gives it a new head for the user's
classes. `save_classifier` / `load_classifier` write and read the output folder:

    <CLASSIFIERS_DIR>/<name>/
      config.json, model.safetensors   save_pretrained (id2label = the class names)
      preprocessor_config.json         Hugging Face image-processor file (resize, crop, mean/std)
      classifier.json                  our metadata: classes, preprocessing, backbone, metrics
      split.json, metrics.json, confusion_matrix.png, model.onnx (optional), state/ (resume)

Our own classifiers are reloaded with `core.models.load_state_dict_file` (safetensors only);
no remote code is ever run.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from core.errors import StudioError
from core.models import load_state_dict_file

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
CROP_PCT = 0.875  # evaluation: resize to size / 0.875, then centre crop `size`
META_FILE = "classifier.json"


def backbones_dir(ctx) -> Path:
    folder = ctx.path("CLASSIFIERS_DIR") / "backbones"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def resolve_backbone(ref: str, ctx) -> str:
    """A local folder for `ref` if there is one, else `ref` itself (a hub id)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if ctx is not None:
        for cand in (backbones_dir(ctx) / ref.replace("/", "--"), backbones_dir(ctx) / ref.split("/")[-1]):
            if (cand / "config.json").is_file():
                return str(cand)
    if path.is_absolute() or ref.startswith((".", "~")):
        raise StudioError("clf.backbone_missing", name=ref, folder=str(backbones_dir(ctx)) if ctx else "")
    return ref


def _head_and_body(model) -> tuple[list, list]:
    """(backbone parameters, head parameters): the head is what is outside base_model."""
    prefix = model.base_model_prefix + "."
    body, head = [], []
    for name, p in model.named_parameters():
        (body if name.startswith(prefix) else head).append((name, p))
    return body, head


def load_backbone(ref: str, class_names: list[str], ctx=None) -> tuple[Any, dict]:
    """Pretrained model with a fresh head for `class_names`, and its preprocessing."""
    from transformers import AutoConfig, AutoModelForImageClassification

    where = resolve_backbone(ref, ctx)
    id2label = {i: c for i, c in enumerate(class_names)}
    try:
        old = AutoConfig.from_pretrained(where)
        model = AutoModelForImageClassification.from_pretrained(
            where, id2label=id2label, label2id={c: i for i, c in id2label.items()},
            ignore_mismatched_sizes=True, use_safetensors=None)
    except OSError as exc:
        raise StudioError("clf.backbone_missing", name=ref,
                          folder=str(backbones_dir(ctx)) if ctx else "") from exc
    old_labels = [old.id2label[i] for i in sorted(old.id2label)] if getattr(old, "id2label", None) else []
    if old_labels != list(class_names):
        # Same head size but other classes: the old head means nothing here, start it afresh.
        for module in _head_modules(model):
            module.reset_parameters()
    return model, backbone_preprocessing(where, model.config)


def _head_modules(model) -> list:
    prefix = model.base_model_prefix
    return [m for name, m in model.named_modules()
            if name and not (name == prefix or name.startswith(prefix + ".")) and hasattr(m, "reset_parameters")]


def backbone_preprocessing(where: str, config) -> dict:
    """mean/std (and a native size) from the backbone's preprocessor_config.json."""
    mean, std, size = IMAGENET_MEAN, IMAGENET_STD, None
    cfg_file = Path(where) / "preprocessor_config.json"
    data: dict = {}
    if cfg_file.is_file():
        data = json.loads(cfg_file.read_text(encoding="utf-8"))
    else:
        try:
            from huggingface_hub import hf_hub_download

            data = json.loads(Path(hf_hub_download(where, "preprocessor_config.json")).read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001 - no processor file: ImageNet statistics
            data = {}
    mean = [float(v) for v in data.get("image_mean", mean)][:3]
    std = [float(v) for v in data.get("image_std", std)][:3]
    crop = data.get("crop_size") or data.get("size")
    if isinstance(crop, dict):
        size = crop.get("height") or crop.get("shortest_edge")
    elif isinstance(crop, int):
        size = crop
    fixed = getattr(config, "image_size", None) if config.model_type in ("vit", "deit", "beit", "dinov2") else None
    return {"mean": mean, "std": std, "native_size": int(fixed or size or 224),
            "fixed_size": bool(fixed)}


def freeze_backbone(model, freeze: bool) -> int:
    """Freeze (or unfreeze) everything but the head; returns the trainable parameter count."""
    body, head = _head_and_body(model)
    for _, p in body:
        p.requires_grad_(not freeze)
    for _, p in head:
        p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def preprocessing_config(size: int, mean: list[float], std: list[float]) -> dict:
    base = max(size, round(size / CROP_PCT))
    return {"size": size, "resize": base, "mean": list(mean), "std": list(std), "crop": "center"}


def hf_processor_config(pre: dict) -> dict:
    """The same preprocessing as a Hugging Face BitImageProcessor (shortest edge + crop)."""
    return {"image_processor_type": "BitImageProcessor", "do_resize": True,
            "size": {"shortest_edge": pre["resize"]}, "resample": 3, "do_center_crop": True,
            "crop_size": {"height": pre["size"], "width": pre["size"]}, "do_rescale": True,
            "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": pre["mean"],
            "image_std": pre["std"], "do_convert_rgb": True}


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


def save_classifier(model, folder: Path, meta: dict) -> None:
    """save_pretrained into a temp folder, then move each file into place (a reader
    never sees half a model)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".saving"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    write_json(tmp / "preprocessor_config.json", hf_processor_config(meta["preprocessing"]))
    write_json(tmp / META_FILE, meta)
    for f in tmp.iterdir():
        os.replace(f, folder / f.name)
    tmp.rmdir()


def read_meta(folder: Path) -> dict:
    meta_file = Path(folder) / META_FILE
    if not meta_file.is_file():
        raise StudioError("clf.model_unknown", name=Path(folder).name)
    return json.loads(meta_file.read_text(encoding="utf-8"))


def load_classifier(folder: str | Path) -> tuple[Any, dict]:
    """(model in eval mode on CPU, metadata) of a saved classifier folder."""
    from transformers import AutoConfig, AutoModelForImageClassification

    folder = Path(folder)
    meta = read_meta(folder)
    config = AutoConfig.from_pretrained(str(folder))
    model = AutoModelForImageClassification.from_config(config)
    state = load_state_dict_file(folder / "model.safetensors")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if [k for k in missing if "num_batches_tracked" not in k] or unexpected:
        raise StudioError("models.bad_weights", path=str(folder / "model.safetensors"),
                          error=f"missing={list(missing)[:5]} unexpected={list(unexpected)[:5]}")
    return model.eval(), meta


def list_classifiers(root: Path) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir() if (p / META_FILE).is_file()) if Path(root).is_dir() else []


def model_folder(ctx, name: str) -> Path:
    """The folder of a saved model by name; unknown names (or path tricks) -> clf.model_unknown."""
    root = ctx.path("CLASSIFIERS_DIR")
    folder = (root / name).resolve()
    if folder.parent != root.resolve() or not (folder / META_FILE).is_file():
        raise StudioError("clf.model_unknown", name=name)
    return folder
