"""Image IO for every module: safe loading, atomic saving, folder listing, safe paths.

Loading (`load_image`, `load_image_array`):
- EXIF orientation is applied, so pixels are what the user sees in a viewer;
- palette (with transparency), CMYK (ICC profile honoured when present), LA, I;16,
  16-bit PNG and alpha are handled; `mode="RGB"` composites alpha on white;
- 16-bit RGB(A) PNGs keep their precision in `load_image_array` (Pillow reduces them to
  8 bits, so those are decoded with PyAV's ffmpeg PNG decoder);
- a missing, empty, non-image, corrupt, truncated or oversized file raises
  `StudioError("media.<reason>", path=<file name>)`; the pixels are always fully decoded
  (`im.load()`) so truncation is found here, not halfway through a job.

Saving (`save_image`) goes through `atomic_path`: a temp name in the same folder, fsync,
`os.replace`; a crash never leaves a half-written output, and `protect=` refuses to
overwrite a source. `safe_name` / `resolve_inside` turn user text into file names and
paths that cannot escape a root folder.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Iterable, Iterator, Union

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from core.errors import StudioError

PathLike = Union[str, os.PathLike]

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}

# Decompression-bomb cap (pixels). 16k x 16k by default; CYBERBILL_MAX_IMAGE_PIXELS or
# set_max_pixels() change it. Pillow's own guard is aligned on it (it warns above the cap
# and refuses above twice the cap); our check runs on the header size, before decoding.
MAX_PIXELS = int(os.environ.get("CYBERBILL_MAX_IMAGE_PIXELS", 16384 * 16384))


def set_max_pixels(pixels: int) -> None:
    """Change the pixel cap for every later load (and Pillow's own guard with it)."""
    global MAX_PIXELS
    MAX_PIXELS = int(pixels)
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS


set_max_pixels(MAX_PIXELS)


# --------------------------------------------------------------------------- paths

def is_image_file(path: PathLike) -> bool:
    """True for a visible file with an image extension (content is checked when loading)."""
    p = Path(path)
    return p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".") and p.is_file()


def _natural_key(p: Path) -> list:
    # frame_2 before frame_10: image sequences come out in the order they were made
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.as_posix())]


def list_images(folder: PathLike, recursive: bool = True) -> list[Path]:
    """Image files under `folder`, in natural order; hidden files and folders skipped."""
    root = Path(folder)
    if not root.is_dir():
        raise StudioError("media.not_a_folder", path=root.name or str(root))
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if recursive else []
        for name in filenames:
            p = Path(dirpath) / name
            if not name.startswith(".") and p.suffix.lower() in IMAGE_EXTS and p.is_file():
                found.append(p)
    return sorted(found, key=lambda p: _natural_key(p.relative_to(root)))


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


def resolve_inside(root: PathLike, user_path: PathLike) -> Path:
    """`root / user_path` resolved (symlinks too); raises if it lands outside `root`."""
    text = os.fspath(user_path)
    if "\x00" in text:
        raise StudioError("media.outside_root", path=text.replace("\x00", "\\0"))
    base = Path(root).resolve()
    target = (base / Path(text)).resolve()
    if target != base and base not in target.parents:
        raise StudioError("media.outside_root", path=text)
    return target


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temp path next to `path`; on success fsync it and rename it onto `path`.

    On an exception the temp file is removed and `path` is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem[:60]}.", suffix=".part" + final.suffix,
                                    dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX only)
        dfd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# --------------------------------------------------------------------------- loading

def _open_checked(path: PathLike, max_pixels: int | None) -> Image.Image:
    """Open and fully decode an image; every failure becomes a StudioError naming the file."""
    p = Path(path)
    name = p.name
    if not p.is_file():
        raise StudioError("media.not_found", path=name)
    if p.stat().st_size == 0:
        raise StudioError("media.empty", path=name)
    cap = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        im = Image.open(p)
    except Image.DecompressionBombError:
        raise StudioError("media.too_large", path=name, pixels="?", limit=cap) from None
    except UnidentifiedImageError:
        raise StudioError("media.not_image", path=name) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise StudioError("media.corrupt", path=name, error=str(exc)) from exc
    w, h = im.size
    if w * h > cap:
        im.close()
        raise StudioError("media.too_large", path=name, pixels=f"{w}x{h}", limit=cap)
    try:
        im.load()  # full decode: a truncated file fails here, not inside a job
    except Image.DecompressionBombError:
        raise StudioError("media.too_large", path=name, pixels=f"{w}x{h}", limit=cap) from None
    except OSError as exc:
        msg = str(exc)
        key = "media.truncated" if "truncated" in msg or "end of file" in msg.lower() else "media.corrupt"
        raise StudioError(key, path=name, error=msg) from exc
    except (SyntaxError, ValueError, EOFError, Exception) as exc:  # noqa: BLE001 - decoders raise anything
        raise StudioError("media.corrupt", path=name, error=str(exc)) from exc
    return im


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the image unreadable
        return 1


def _orient(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im) or im
    except Exception:  # noqa: BLE001 - same: keep the pixels, skip the rotation
        return im


def _orient_array(a: np.ndarray, orientation: int) -> np.ndarray:
    """EXIF orientation (1-8) applied to an HxWxC array, as ImageOps.exif_transpose does."""
    ops = {2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
           5: lambda x: x.swapaxes(0, 1), 6: lambda x: np.rot90(x, -1),
           7: lambda x: x.swapaxes(0, 1)[::-1, ::-1], 8: lambda x: np.rot90(x, 1)}
    return np.ascontiguousarray(ops[orientation](a)) if orientation in ops else a


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        im.mode == "P" and "transparency" in im.info)


def _wide_to_8bit(im: Image.Image) -> Image.Image:
    """I;16 / I / F -> L, scaling (Pillow's convert clips at 255 instead of scaling)."""
    a = np.asarray(im)
    if im.mode == "F":
        a8 = np.clip(a, 0.0, 1.0) * 255.0 if a.max(initial=0) <= 1.0 else np.clip(a, 0, 255)
    else:
        top = 65535.0 if (im.mode.startswith("I;16") or a.max(initial=0) > 255) else 255.0
        a8 = np.clip(a.astype(np.float64), 0, top) * (255.0 / top)
    return Image.fromarray(np.round(a8).astype(np.uint8), "L")


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    icc = im.info.get("icc_profile")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"),
                                             outputMode="RGB")
        except Exception:  # noqa: BLE001 - a bad profile falls back to the plain formula
            pass
    return im.convert("RGB")


def _to_mode(im: Image.Image, mode: str) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        im = _wide_to_8bit(im)
    if im.mode == "CMYK":
        im = _cmyk_to_rgb(im)
    if mode == "RGBA":
        return im if im.mode == "RGBA" else im.convert("RGBA")
    if mode == "L":
        return _to_mode(im, "RGB").convert("L") if _has_alpha(im) else im.convert("L")
    # RGB: transparent pixels become white, as most viewers show them on a light page
    if _has_alpha(im):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def load_image(path: PathLike, mode: str = "RGB", max_pixels: int | None = None) -> Image.Image:
    """Load an image, fully decoded and upright.

    mode: "RGB" (alpha composited on white), "RGBA", "L", or "keep" (the file's own mode,
    e.g. "I;16", "P", "LA", "CMYK").
    """
    if mode not in ("RGB", "RGBA", "L", "keep"):
        raise ValueError(f"mode must be RGB, RGBA, L or keep, not {mode!r}")
    im = _open_checked(path, max_pixels)
    fmt = im.format
    out = _orient(im)
    if mode != "keep":
        out = _to_mode(out, mode)
    if out is im:
        out = im.copy()  # detach from the file handle
    im.close()
    out.format = fmt  # type: ignore[attr-defined]
    return out


def _png_bit_depth(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR, (0, -1) when not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(29)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return 0, -1
    return head[24], head[25]


def _decode_png16(path: Path, alpha: bool) -> np.ndarray:
    import av  # lazy: only 16-bit colour PNGs need ffmpeg's decoder

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgba64le" if alpha else "rgb48le")


def load_image_array(path: PathLike, max_pixels: int | None = None,
                     keep_gray: bool = False) -> tuple[np.ndarray, dict]:
    """(float32 HxWxC in [0,1], info); 16-bit precision and alpha kept.

    C is 3 (RGB) or 4 (RGBA when the file has alpha); with keep_gray a grayscale file
    gives C=1 (or 2 with alpha). info: width, height, bits, has_alpha, mode, format,
    channels, icc_profile (bytes or None).
    """
    p = Path(path)
    im = _open_checked(p, max_pixels)
    src_mode, fmt, orientation = im.mode, im.format, _orientation(im)
    alpha = _has_alpha(im)
    icc = im.info.get("icc_profile")
    bits = 8
    depth, ctype = _png_bit_depth(p) if fmt == "PNG" else (0, -1)
    if depth == 16 and ctype in (2, 4, 6):  # RGB16 / LA16 / RGBA16: Pillow would drop to 8 bits
        im.close()
        a = _decode_png16(p, alpha=ctype in (4, 6)).astype(np.float32) / 65535.0
        a = _orient_array(a, orientation)
        bits = 16
        if keep_gray and ctype == 4:
            a = a[..., [0, 3]]
    else:
        im2 = _orient(im)
        if im2.mode in ("I;16", "I;16B", "I;16L", "I"):
            raw = np.asarray(im2).astype(np.float32)
            bits = 16 if (im2.mode.startswith("I;16") or depth == 16 or raw.max(initial=0) > 255) else 8
            a = (raw / (65535.0 if bits == 16 else 255.0))[..., None]
        elif im2.mode == "F":
            a = np.asarray(im2, dtype=np.float32)[..., None]
            bits = 32
        elif keep_gray and im2.mode in ("L", "LA", "1"):
            a = np.asarray(im2.convert("LA" if alpha else "L"), dtype=np.float32) / 255.0
            a = a if a.ndim == 3 else a[..., None]
        else:
            a = np.asarray(_to_mode(im2, "RGBA" if alpha else "RGB"), dtype=np.float32) / 255.0
        im.close()
        if a.shape[-1] == 1 and not keep_gray:
            a = np.repeat(a, 3, axis=-1)
    a = np.ascontiguousarray(np.clip(a, 0.0, 1.0), dtype=np.float32)
    info = {"width": a.shape[1], "height": a.shape[0], "channels": a.shape[2], "bits": bits,
            "has_alpha": alpha, "mode": src_mode, "format": fmt, "icc_profile": icc}
    return a, info


# --------------------------------------------------------------------------- saving

def _array_to_image(arr: np.ndarray) -> Image.Image:
    """uint8 / uint16 / float [0,1] HxW(xC) array -> 8-bit PIL image."""
    a = np.asarray(arr)
    if a.dtype == np.uint16:
        a = np.round(a.astype(np.float32) / 257.0).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.round(np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    mode = "L" if a.ndim == 2 else {2: "LA", 3: "RGB", 4: "RGBA"}.get(a.shape[2]) if a.ndim == 3 else None
    if mode is None:
        raise ValueError(f"cannot save an array of shape {a.shape}")
    return Image.fromarray(np.ascontiguousarray(a), mode)


def _to_uint16(data: Union[Image.Image, np.ndarray]) -> np.ndarray:
    if isinstance(data, Image.Image):
        if data.mode.startswith("I"):
            return np.clip(np.asarray(data), 0, 65535).astype(np.uint16)[..., None]
        a = np.asarray(_to_mode(data, "RGBA" if _has_alpha(data) else "RGB")).astype(np.uint16) * 257
        return a
    a = np.asarray(data)
    if a.dtype == np.uint16:
        out = a
    elif a.dtype == np.uint8:
        out = a.astype(np.uint16) * 257
    else:
        out = np.round(np.clip(a.astype(np.float64), 0.0, 1.0) * 65535.0).astype(np.uint16)
    return out if out.ndim == 3 else out[..., None]


def _encode_png16(a: np.ndarray) -> bytes:
    """16-bit PNG bytes from an HxWxC uint16 array (C = 1..4), via ffmpeg's PNG encoder."""
    import av  # lazy: only 16-bit output needs it

    c = a.shape[2]
    if c == 2:  # gray + alpha: ffmpeg's ya16 has no ndarray path; store as RGBA
        a = np.concatenate([a[..., :1]] * 3 + [a[..., 1:]], axis=2)
        c = 4
    src, dst = {1: ("gray16le", "gray16be"), 3: ("rgb48le", "rgb48be"),
                4: ("rgba64le", "rgba64be")}[c]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(a[..., 0] if c == 1 else a), format=src)
    ctx = av.CodecContext.create("png", "w")
    ctx.width, ctx.height, ctx.pix_fmt = a.shape[1], a.shape[0], dst
    return b"".join(bytes(pkt) for pkt in ctx.encode(frame) + ctx.encode(None))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def save_image(image: Union[Image.Image, np.ndarray], path: PathLike, bits: int = 8,
               quality: int = 95, protect: PathLike | Iterable[PathLike] | None = None,
               icc_profile: bytes | None = None) -> Path:
    """Write an image atomically; the format comes from the extension.

    image: PIL image, or array (uint8, uint16, or float in [0,1]) HxW, HxWx{1,2,3,4}.
    bits=16 writes a 16-bit PNG (PNG only). quality applies to JPEG/WebP (100 = lossless
    WebP). protect: source path(s) this call must never overwrite.
    """
    out = Path(path)
    fmt = SAVE_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise StudioError("media.unsupported_format", path=out.name, ext=out.suffix or "?")
    if bits not in (8, 16):
        raise ValueError("bits must be 8 or 16")
    if bits == 16 and fmt != "PNG":
        raise StudioError("media.bits_unsupported", path=out.name, ext=out.suffix)
    protected = [protect] if isinstance(protect, (str, os.PathLike)) else list(protect or [])
    for src in protected:
        if _same_file(out, Path(src)):
            raise StudioError("media.overwrite_source", path=out.name)
    if bits == 16:
        payload = _encode_png16(_to_uint16(image))
        with atomic_path(out) as tmp:
            tmp.write_bytes(payload)
        return out
    im = image if isinstance(image, Image.Image) else _array_to_image(image)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        im = _wide_to_8bit(im)
    if fmt == "JPEG" or (fmt == "BMP" and im.mode not in ("RGB", "L", "1", "P")):
        im = _to_mode(im, "L" if im.mode == "L" else "RGB")
    elif im.mode == "CMYK" and fmt != "TIFF":
        im = _cmyk_to_rgb(im)
    kwargs: dict = {}
    if fmt == "JPEG":
        kwargs = {"quality": int(quality), "subsampling": 0 if quality >= 90 else 2, "optimize": True}
    elif fmt == "WEBP":
        kwargs = {"quality": int(quality), "lossless": quality >= 100, "method": 4}
    elif fmt == "PNG":
        kwargs = {"compress_level": 6}
    if icc_profile and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        kwargs["icc_profile"] = icc_profile
    with atomic_path(out) as tmp:
        im.save(tmp, format=fmt, **kwargs)
    return out
