"""Media IO used by every module: one import point for images, video and safe paths.

    from core.media import load_image, save_image, VideoReader, VideoWriter, safe_name

This file holds the naming helpers (`safe_name`, `list_images`,
`is_image_file`), re-exports the file primitives of the leaf `core.files` (`atomic_path`,
`temp_sibling`, `commit_file`, ...), the image API of `core.media_image` (loading with EXIF /
modes / 16-bit / alpha, atomic saving) and the video API of `core.media_video` (PyAV, with
audio). Those two are imported on first use, so `import core.media` stays light (no PyAV,
no numpy work); they import `core.files`, not this file, so there is no import cycle.
Both raise `StudioError("media.*", path=<file name>)` for anything a user's file can get
wrong; the messages are in locales/*/media.json.
"""
from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import StudioError
from core.files import (  # noqa: F401 - the file primitives, re-exported from their leaf module
    _UMASK, PathLike, atomic_path, commit_file, refuse_overwrite, require_file, temp_sibling)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time see __getattr__ below
    from core.media_image import (  # noqa: F401
        MAX_PIXELS, SAVE_FORMATS, image_size, load_image, load_image_array, save_image,
        set_max_pixels)
    from core.media_video import CODECS, VideoReader, VideoWriter, codec_available  # noqa: F401

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".avif", ".bmp", ".tif", ".tiff",
                        ".gif"})

_LAZY = {
    "core.media_image": ("MAX_PIXELS", "SAVE_FORMATS", "image_size", "load_image",
                         "load_image_array", "save_image", "set_max_pixels"),
    "core.media_video": ("CODECS", "VideoReader", "VideoWriter", "codec_available"),
}
_LAZY_NAMES = {name: mod for mod, names in _LAZY.items() for name in names}

__all__ = ["IMAGE_EXTS", "PathLike", "atomic_path", "is_image_file", "list_images",
           "safe_name", "temp_sibling", "commit_file",
           "require_file", "refuse_overwrite", *_LAZY_NAMES]


def __getattr__(name: str):
    mod = _LAZY_NAMES.get(name)
    if mod is None:
        raise AttributeError(f"module 'core.media' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)


def is_image_file(path: PathLike) -> bool:
    """True for a visible file with an image extension (content is checked when loading)."""
    p = Path(path)
    return p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".") and p.is_file()


def list_images(folder: PathLike, recursive: bool = True, on_skip=None, within: PathLike | None = None) -> list[Path]:
    """Image files under `folder`, in natural order; hidden files and folders skipped.

    The scan is `core.folders.walk_files`: links leaving the folder, loops and broken links
    are skipped and reported to `on_skip(path, reason)` (see there)."""
    from core.folders import walk_files

    root = Path(folder)
    if not root.is_dir():
        raise StudioError("media.not_a_folder", path=root.name or str(root))
    return walk_files(root, recursive, on_skip=on_skip, within=within, suffixes=IMAGE_EXTS)


_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_BAD_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


def safe_name(text: str, default: str = "untitled", max_bytes: int = 200) -> str:
    """A file name made from user text: no separators, NUL, `..`, reserved names or chars."""
    name = unicodedata.normalize("NFC", str(text))
    name = _BAD_CHARS.sub("_", name)
    name = re.sub(r"\.{2,}", ".", name).strip(" .")
    if _RESERVED.match(name):
        name = "_" + name
    # cut on a character boundary so the UTF-8 name fits the file system's 255 bytes
    while len(name.encode("utf-8")) > max_bytes:
        name = name[:-1]
    name = name.strip(" .")
    return name or default
