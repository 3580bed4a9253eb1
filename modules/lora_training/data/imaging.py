"""Image reading/writing for the data pipeline, through the studio's `core.media`.

`core.media.load_image(path, "RGB")` is the one image reader (EXIF orientation, CMYK
with its ICC profile, palette, 16-bit scaled to 8-bit, transparent pixels composited on
white, clear `StudioError("media.*")` for empty, corrupt and truncated files). A
transparent background matters here: flattened on black, the LoRA would learn black
backgrounds. Prepared images are PNG (lossless), written atomically.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from core.media import IMAGE_EXTS


def is_image_name(path: Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTS


def load_rgb_on_white(path: Path) -> Image.Image:
    """Decode any supported image to 8-bit RGB, upright, alpha composited on white."""
    from core.media import load_image

    return load_image(path, mode="RGB")


def save_png_atomic(img: Image.Image, path: Path) -> None:
    """Write a PNG under a temp name then rename (never a half-written training image)."""
    from core.media import save_image

    save_image(img, path)
