"""Image reading/writing for the data pipeline, through `core.media` when it is there.

`core.media.load_image` is the studio's one image reader (EXIF orientation, CMYK,
palette, 16-bit, clear errors for corrupt files). Until that module is merged into this
branch a local PIL reader with the same contract stands in, so the importer and its tests
run either way. Transparent pixels are composited on white (a transparent background
otherwise turns black in RGB and the LoRA learns black backgrounds).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import StudioError

from .fileio import atomic_target

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".jfif"}

try:  # pragma: no cover - depends on the media branch being merged
    from core import media as _media
except ImportError:  # pragma: no cover
    _media = None


def is_image_name(path: Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTS


def _local_load_rgba(path: Path) -> Image.Image:
    path = Path(path)
    if path.stat().st_size == 0:
        raise StudioError("lora_data.empty_file", path=path.name)
    try:
        with Image.open(path) as im:
            im.load()  # forces a full decode: truncated files fail here, not later
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                arr = np.asarray(im, dtype=np.float64)
                peak = 65535.0 if arr.max() > 255 else 255.0
                im = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
            elif im.mode == "F":
                arr = np.asarray(im, dtype=np.float64)
                im = Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            return im.convert("RGBA")
    except StudioError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise StudioError("lora_data.unreadable", path=path.name, error=f"{type(exc).__name__}: {exc}"[:200]) from exc


def load_rgb_on_white(path: Path) -> Image.Image:
    """Decode any supported image to 8-bit RGB, EXIF applied, alpha composited on white."""
    if _media is not None and hasattr(_media, "load_image"):
        img = _media.load_image(path, mode="RGBA")
    else:
        img = _local_load_rgba(path)
    if img.mode != "RGBA":
        img = img.convert("RGBA")
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, img).convert("RGB")


def save_png_atomic(img: Image.Image, path: Path) -> None:
    """Write a PNG under a temp name then rename (never a half-written training image)."""
    if _media is not None and hasattr(_media, "save_image"):
        _media.save_image(img, path)
        return
    with atomic_target(path) as tmp:
        img.save(tmp, format="PNG", optimize=False, compress_level=4)
