"""Image files for the upscaler: read to an integer array (8 or 16 bit kept), write atomically.

Reading goes through `core.media` when it is installed (EXIF orientation, 16-bit RGB,
clear errors for broken files); otherwise Pillow, which keeps 8-bit images and 16-bit
greyscale. Writing always goes to a temporary name first and is renamed when complete,
so an interrupted run never leaves a half-written file under the final name.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from core.errors import StudioError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".tga", ".gif"}


def _media():
    try:
        import core.media as media  # lands on branch `media`; optional until then
        return media
    except ImportError:
        return None


def is_image(path: Path) -> bool:
    media = _media()
    if media is not None and hasattr(media, "is_image_file"):
        return bool(media.is_image_file(path))
    return path.suffix.lower() in IMAGE_EXTS


def list_images(folder: Path) -> list[Path]:
    """Images under `folder`, recursively, sorted; hidden files and folders skipped."""
    media = _media()
    if media is not None and hasattr(media, "list_images"):
        return sorted(Path(p) for p in media.list_images(folder, recursive=True))
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if is_image(p):
            out.append(p)
    return out


def read_image(path: Path) -> np.ndarray:
    """HxWxC uint8 or uint16 array, C = 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA)."""
    media = _media()
    if media is not None and hasattr(media, "load_image_array"):
        arr, info = media.load_image_array(path)
        bits = int(getattr(info, "bits", None) or (info.get("bits") if isinstance(info, dict) else 8) or 8)
        arr = np.asarray(arr, np.float32)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        scale = 65535.0 if bits > 8 else 255.0
        return (np.clip(arr, 0, 1) * scale + 0.5).astype(np.uint16 if bits > 8 else np.uint8)
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.uint32 if im.mode == "I" else np.uint16)
                return np.clip(arr, 0, 65535).astype(np.uint16)[:, :, None]
            if im.mode not in ("L", "LA", "RGB", "RGBA"):
                has_alpha = "A" in im.getbands() or "transparency" in im.info
                im = im.convert("RGBA" if has_alpha else "RGB")
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise StudioError("sr.bad_image", path=str(path), error=str(exc)[:200]) from exc
    return arr[:, :, None] if arr.ndim == 2 else arr


def write_image(arr: np.ndarray, path: Path) -> Path:
    """Save atomically (temp name in the same folder, then rename). 16-bit needs PNG/TIFF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    media = _media()
    tmp = path.with_name(f".{path.stem}.part{path.suffix}")
    try:
        if media is not None and hasattr(media, "save_image"):
            bits = 16 if arr.dtype == np.uint16 else 8
            data = arr.astype(np.float32) / (65535.0 if bits == 16 else 255.0)
            media.save_image(data[..., 0] if data.shape[2] == 1 else data, path, bits=bits)
            return path
        _pil_save(arr, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _pil_save(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    ext = path.suffix.lower()
    if arr.dtype == np.uint16:
        if arr.shape[2] != 1:
            raise StudioError("sr.no_16bit_writer", path=str(path))
        Image.fromarray(arr[..., 0]).save(path, format="PNG" if ext == ".png" else None)
        return
    if ext in (".jpg", ".jpeg") and arr.shape[2] in (2, 4):
        arr = arr[..., :-1]  # JPEG has no alpha; the caller picks PNG when alpha matters
    im = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(ext)
    kwargs = {"quality": 95} if fmt == "JPEG" or ext == ".webp" else {}
    im.save(path, format=fmt, **kwargs)


def save_preview(arr: np.ndarray, path: Path, max_side: int = 768) -> Path:
    """A small 8-bit PNG of an array (for the job's preview strip)."""
    from PIL import Image

    a = arr if arr.dtype == np.uint8 else (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    im = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)
    im.thumbnail((max_side, max_side), Image.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path
