"""Fixtures: tiny random backbones saved with save_pretrained, a generated colour dataset,
and one trained classifier shared by the predict / ONNX / REST tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

COLORS = {"blue": (40, 60, 200), "red": (200, 50, 40)}


def make_image(color: tuple[int, int, int], rng: np.random.Generator, size: int = 32) -> Image.Image:
    """A noisy grey background with a coloured square somewhere: the class is the colour."""
    a = rng.integers(90, 160, size=(size, size, 3)).astype(np.int16)
    s = int(rng.integers(size // 2, size - 4))
    x, y = rng.integers(0, size - s, size=2)
    a[y:y + s, x:x + s] = np.asarray(color) + rng.integers(-25, 25, size=(s, s, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def make_dataset(root: Path, per_class: int = 20, seed: int = 0, corrupt: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    for name, color in COLORS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            make_image(color, rng).save(root / name / f"{name}_{i:03d}.png")
    if corrupt:
        (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        (root / "blue" / "empty.jpg").write_bytes(b"")
    return root


def save_tiny_resnet(folder: Path, num_labels: int = 5) -> Path:
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    cfg = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                       layer_type="basic", num_labels=num_labels)
    ResNetForImageClassification(cfg).save_pretrained(str(folder))
    return folder


def save_tiny_vit(folder: Path, image_size: int = 32) -> Path:
    import json

    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    cfg = ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                    image_size=image_size, patch_size=8, num_labels=10)
    ViTForImageClassification(cfg).save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "size": {"height": 32, "width": 32}}))
    return folder


def train_params(data: Path, backbone: Path, name: str, **over) -> dict:
    p = {"data_dir": str(data), "name": name, "backbone": str(backbone), "image_size": 32, "epochs": 6,
         "batch_size": 8, "lr": 3e-3, "val_ratio": 0.25, "seed": 7, "patience": 0, "warmup_ratio": 0.1,
         "crop_scale_min": 0.7}
    p.update(over)
    return p


@pytest.fixture(scope="session")
def tiny_resnet(tmp_path_factory) -> Path:
    return save_tiny_resnet(tmp_path_factory.mktemp("backbones") / "tiny-resnet")


@pytest.fixture(scope="session")
def color_data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "colors")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_resnet, color_data):
    """(ctx, job row, model folder) of one completed clf.train job, MLflow on (file store)."""
    from core.context import build_context

    home = tmp_path_factory.mktemp("studio")
    ctx = build_context(home, overrides={"MLFLOW_ENABLED": True,
                                         "MLFLOW_TRACKING_URI": str(home / "mlruns_files")})
    job_id = ctx.jobs.submit("clf.train", train_params(color_data, tiny_resnet, "colors", test_ratio=0.1))
    row = ctx.jobs.wait(job_id, timeout=300)
    # No runner threads outlive the training: other suites (reliability) count them.
    ctx.jobs.shutdown()
    yield ctx, row, ctx.path("CLASSIFIERS_DIR") / "colors"
    ctx.store.close()
