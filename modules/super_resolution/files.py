"""Image files for the upscaler, through `core.media`: integer arrays in, atomic files out.

`read_image` gives uint8 or uint16 (16-bit sources stay 16-bit, 32-bit float stays float),
grey kept as 1 channel and alpha as the last one. `write_image` saves atomically
(temp name then rename, never onto a source); 16-bit results go to PNG, the one format
`core.media` writes at 16 bits.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core import media


def is_image(path: Path) -> bool:
    return media.is_image_file(path)


def list_images(folder: Path) -> list[Path]:
    """Images under `folder`, recursively, natural order; hidden files and folders skipped."""
    return [Path(p) for p in media.list_images(folder, recursive=True)]


def read_image(path: Path) -> np.ndarray:
    """HxWxC array, C = 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA); dtype from the file."""
    arr, info = media.load_image_array(path, keep_gray=True)
    bits = int(info.get("bits", 8))
    if bits == 8:
        return (arr * 255.0 + 0.5).astype(np.uint8)
    if bits == 16:
        return (arr * 65535.0 + 0.5).astype(np.uint16)
    return arr  # 32-bit float greyscale: processed and written as float


def output_path(dst: Path, arr: np.ndarray) -> Path:
    """16-bit results only fit in PNG: switch the extension rather than lose bits."""
    if arr.dtype != np.uint8 and dst.suffix.lower() != ".png":
        return dst.with_suffix(".png")
    return dst


def write_image(arr: np.ndarray, path: Path, source: Path | None = None) -> Path:
    """Save atomically; `source` is never overwritten (core.media checks it)."""
    bits = 8 if arr.dtype == np.uint8 else 16
    data = arr[..., 0] if arr.shape[2] == 1 else arr
    return Path(media.save_image(data, path, bits=bits, protect=source))


def save_preview(arr: np.ndarray, path: Path, max_side: int = 768) -> Path:
    """A small 8-bit PNG of an array (the job's preview strip)."""
    from PIL import Image

    a = arr if arr.dtype == np.uint8 else (np.clip(arr.astype(np.float32) / (257.0 if arr.dtype == np.uint16
                                                                            else 1 / 255.0), 0, 255) + 0.5).astype(np.uint8)
    im = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)
    im.thumbnail((max_side, max_side), Image.LANCZOS)
    return Path(media.save_image(im, path))
