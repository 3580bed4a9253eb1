"""Media IO used by every module: one import point for images, video and safe paths.

    from core.media import load_image, save_image, VideoReader, VideoWriter

Images live in `core.media_image` (loading with EXIF/modes/16-bit/alpha, atomic saving,
listing, `safe_name`, `resolve_inside`, `atomic_path`); video with audio in
`core.media_video` (PyAV). Both raise `StudioError("media.*", path=<file name>)` for
anything a user's file can get wrong; the messages are in locales/*/media.json.
"""
from __future__ import annotations

from core.media_image import (  # noqa: F401 - re-exported API
    IMAGE_EXTS,
    MAX_PIXELS,
    atomic_path,
    is_image_file,
    list_images,
    load_image,
    load_image_array,
    resolve_inside,
    safe_name,
    save_image,
    set_max_pixels,
)

__all__ = [
    "IMAGE_EXTS", "MAX_PIXELS", "atomic_path", "is_image_file", "list_images", "load_image",
    "load_image_array", "resolve_inside", "safe_name", "save_image", "set_max_pixels",
]
