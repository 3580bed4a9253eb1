"""Image IO used by the classifier: `core.media` when it is there.

Transitional: until `core/media.py` lands on this branch, a minimal PIL fallback with the
same signatures keeps the module working (EXIF rotation, RGB conversion, clear error).
"""
from __future__ import annotations

from pathlib import Path

try:  # pragma: no cover - depends on the branch state
    from core.media import is_image_file, list_images, load_image  # noqa: F401
except ImportError:  # pragma: no cover
    from PIL import Image, ImageOps

    from core.errors import StudioError

    _EXT = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}

    def is_image_file(path: str | Path) -> bool:
        return Path(path).suffix.lower() in _EXT and Path(path).is_file()

    def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
        it = Path(folder).rglob("*") if recursive else Path(folder).glob("*")
        return sorted(p for p in it if is_image_file(p) and not p.name.startswith("."))

    def load_image(path: str | Path, mode: str = "RGB") -> Image.Image:
        try:
            with Image.open(path) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                return im.convert(mode) if mode != "keep" else im.copy()
        except Exception as exc:  # noqa: BLE001
            raise StudioError("media.corrupt", path=str(path), error=str(exc)[:200]) from exc
