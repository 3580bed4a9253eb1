"""Image IO: a table of nasty files (generated here), atomic saving, safe paths."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import media, media_image
from core.errors import StudioError
from core.i18n import Translator


def _jpeg_with_orientation(path: Path, orientation: int) -> np.ndarray:
    """A 40x20 JPEG (wide) whose EXIF says `orientation`; returns the stored pixels."""
    a = np.zeros((20, 40, 3), np.uint8)
    a[:10, :20] = (255, 0, 0)      # red top-left block
    a[10:, 20:] = (0, 0, 255)      # blue bottom-right block
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(a).save(path, quality=98, exif=exif.tobytes())
    return a


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _huge_header_png(path: Path, w: int, h: int) -> None:
    """A valid PNG signature + IHDR claiming w x h, with a tiny IDAT: a bomb's header."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))


# ----------------------------------------------------------------- table of nasty images

def test_exif_rotated_jpeg_is_upright(tmp_path):
    p = tmp_path / "rot.jpg"
    _jpeg_with_orientation(p, 6)  # 6 = rotate 90 clockwise to display
    im = media.load_image(p)
    assert im.size == (20, 40)  # width/height swapped
    a = np.asarray(im)
    # clockwise rotation moves the red top-left block to the top-right
    assert a[5, 15, 0] > 200 and a[5, 15, 2] < 60
    assert a[35, 5, 2] > 200 and a[35, 5, 0] < 60
    arr, info = media.load_image_array(p)
    assert arr.shape == (40, 20, 3) and info["bits"] == 8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_array_orientation_matches_pillow(orientation, tmp_path):
    from PIL import ImageOps
    a = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    got = media_image._orient_array(a, orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    im = Image.fromarray(a)
    im.info["exif"] = exif.tobytes()
    want = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(got, want)


def test_cmyk_jpeg_gives_expected_rgb(tmp_path):
    p = tmp_path / "cmyk.jpg"
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    cmyk.paste((0, 0, 0, 128), (0, 8, 16, 16))           # 50% grey at the bottom
    cmyk.save(p, quality=100)
    assert Image.open(p).mode == "CMYK"
    a = np.asarray(media.load_image(p)).astype(int)
    assert a.shape == (16, 16, 3)
    assert np.abs(a[2, 2] - (255, 0, 0)).max() <= 6
    assert np.abs(a[12, 12] - (127, 127, 127)).max() <= 6


def test_16bit_gray_png_keeps_precision_and_round_trips(tmp_path):
    p = tmp_path / "g16.png"
    ramp = (np.arange(64 * 32, dtype=np.uint32).reshape(32, 64) * 31 + 5).astype(np.uint16)
    Image.fromarray(ramp).save(p)  # Pillow writes I;16 grayscale PNG
    arr, info = media.load_image_array(p)
    assert info["bits"] == 16 and arr.dtype == np.float32 and arr.shape == (32, 64, 3)
    back = np.round(arr[..., 0] * 65535).astype(np.uint16)
    assert np.array_equal(back, ramp)
    # neighbours differ by 31/65535: finer than one 8-bit step
    assert 0 < arr[0, 1, 0] - arr[0, 0, 0] < 1 / 255
    out = tmp_path / "g16_out.png"
    media.save_image(arr[..., :1], out, bits=16)
    again, info2 = media.load_image_array(out)
    assert info2["bits"] == 16
    assert np.array_equal(np.round(again[..., 0] * 65535).astype(np.uint16), ramp)
    assert media.load_image(p).mode == "RGB"  # 8-bit view is scaled, not clipped
    assert np.asarray(media.load_image(p))[-1, -1, 0] == round(ramp[-1, -1] / 257)


def test_16bit_rgba_png_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    a16 = rng.integers(0, 65536, size=(24, 40, 4), dtype=np.uint16)
    p = tmp_path / "rgba16.png"
    media.save_image(a16, p, bits=16)
    with open(p, "rb") as fh:
        head = fh.read(26)
    assert head[24] == 16 and head[25] == 6  # IHDR: 16-bit RGBA
    arr, info = media.load_image_array(p)
    assert info["bits"] == 16 and info["has_alpha"] and arr.shape == (24, 40, 4)
    assert np.array_equal(np.round(arr * 65535).astype(np.uint16), a16)
    rgb = media.load_image(p, mode="RGBA")
    assert rgb.mode == "RGBA" and rgb.size == (40, 24)


def test_palette_with_transparency_gives_alpha(tmp_path):
    p = tmp_path / "pal.png"
    im = Image.new("P", (8, 8), 0)
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    im.paste(1, (0, 0, 4, 8))
    im.info["transparency"] = 0
    im.save(p, transparency=0)
    rgba = np.asarray(media.load_image(p, mode="RGBA"))
    assert rgba[0, 0].tolist() == [0, 255, 0, 255]
    assert rgba[0, 7, 3] == 0
    rgb = np.asarray(media.load_image(p, mode="RGB"))
    assert rgb[0, 7].tolist() == [255, 255, 255]  # transparent -> white
    arr, info = media.load_image_array(p)
    assert info["has_alpha"] and arr.shape[2] == 4 and arr[0, 7, 3] == 0


def test_la_image(tmp_path):
    p = tmp_path / "la.png"
    a = np.zeros((4, 4, 2), np.uint8)
    a[..., 0] = 100
    a[..., 1] = 255
    a[0, 0, 1] = 0
    Image.fromarray(a, "LA").save(p)
    rgb = np.asarray(media.load_image(p))
    assert rgb[1, 1].tolist() == [100, 100, 100] and rgb[0, 0].tolist() == [255, 255, 255]
    rgba = np.asarray(media.load_image(p, mode="RGBA"))
    assert rgba[0, 0, 3] == 0 and rgba[1, 1].tolist() == [100, 100, 100, 255]
    assert media.load_image(p, mode="keep").mode == "LA"


def _truncated(tmp_path: Path) -> Path:
    p = tmp_path / "cut.jpg"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(p, quality=90)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def _truncated_png(tmp_path: Path) -> Path:
    p = tmp_path / "cut.png"
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) * 2 // 3])
    return p


def _zero(tmp_path: Path) -> Path:
    p = tmp_path / "zero.png"
    p.write_bytes(b"")
    return p


def _text(tmp_path: Path) -> Path:
    p = tmp_path / "notes.png"
    p.write_text("this is not an image\n" * 10)
    return p


def _bomb(tmp_path: Path) -> Path:
    p = tmp_path / "bomb.png"
    _huge_header_png(p, 40000, 40000)
    return p


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "nope.png"


@pytest.mark.parametrize("make,key", [
    (_truncated, "media.truncated"),
    (_truncated_png, "media.truncated"),
    (_zero, "media.empty"),
    (_text, "media.not_image"),
    (_bomb, "media.too_large"),
    (_missing, "media.not_found"),
])
@pytest.mark.parametrize("loader", ["load_image", "load_image_array"])
def test_bad_files_raise_clear_errors(make, key, loader, tmp_path):
    p = make(tmp_path)
    with pytest.raises(StudioError) as ei:
        getattr(media, loader)(p)
    assert ei.value.key == key
    assert ei.value.params["path"] == p.name
    for lang in ("en", "fr"):
        text = Translator(lang)(ei.value.key, **ei.value.params)
        assert p.name in text and not text.startswith("media.")


def test_pixel_cap_is_configurable(tmp_path):
    p = tmp_path / "small.png"
    Image.new("RGB", (100, 100)).save(p)
    with pytest.raises(StudioError) as ei:
        media.load_image(p, max_pixels=5000)
    assert ei.value.key == "media.too_large"
    assert media.load_image(p, max_pixels=10000).size == (100, 100)


# ----------------------------------------------------------------- saving

@pytest.mark.parametrize("ext,fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP"),
                                     (".tif", "TIFF"), (".bmp", "BMP")])
def test_save_picks_format_from_extension(ext, fmt, tmp_path):
    a = np.zeros((10, 12, 4), np.float32)
    a[..., 0] = 1.0
    a[..., 3] = 1.0
    out = media.save_image(a, tmp_path / f"x{ext}")
    with Image.open(out) as im:
        assert im.format == fmt and im.size == (12, 10)
        assert np.asarray(im.convert("RGB"))[5, 5, 0] > 240
    assert [f.name for f in tmp_path.iterdir()] == [f"x{ext}"]  # no temp file left


def test_save_jpeg_quality_and_rgba_flattened(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 255, (64, 64, 4), dtype=np.uint8)
    lo = media.save_image(a, tmp_path / "lo.jpg", quality=30).stat().st_size
    hi = media.save_image(a, tmp_path / "hi.jpg", quality=95).stat().st_size
    assert lo < hi


def test_save_refuses_to_overwrite_source(tmp_path):
    src = tmp_path / "in.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(src)
    before = src.read_bytes()
    with pytest.raises(StudioError) as ei:
        media.save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "." / "in.png", protect=src)
    assert ei.value.key == "media.overwrite_source"
    assert src.read_bytes() == before
    with pytest.raises(StudioError):
        media.save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "x.gif")
    with pytest.raises(StudioError):
        media.save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "x.jpg", bits=16)


def test_atomic_path_crash_keeps_original(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"original")
    with pytest.raises(RuntimeError):
        with media.atomic_path(target) as tmp:
            tmp.write_bytes(b"half written")
            assert tmp.parent == target.parent and tmp != target
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"original"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["out.png"]
    with media.atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["out.png"]


def test_save_crash_inside_encoder_keeps_original(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    Image.new("RGB", (4, 4), (9, 9, 9)).save(target)
    before = target.read_bytes()

    def boom(self, fp, *a, **k):
        Path(fp).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError):
        media.save_image(np.zeros((4, 4, 3), np.uint8), target)
    assert target.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["keep.png"]


# ----------------------------------------------------------------- listing and paths

def test_list_images_sorted_skips_hidden_and_non_images(tmp_path):
    for rel in ["b/img10.png", "b/img2.png", "a.jpg", "notes.txt", ".hidden.png",
                ".cache/x.png", "c/d/e.webp", "README"]:
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    got = [p.relative_to(tmp_path).as_posix() for p in media.list_images(tmp_path)]
    assert got == ["a.jpg", "b/img2.png", "b/img10.png", "c/d/e.webp"]
    flat = [p.name for p in media.list_images(tmp_path, recursive=False)]
    assert flat == ["a.jpg"]
    assert media.is_image_file(tmp_path / "a.jpg") and not media.is_image_file(tmp_path / "notes.txt")


@pytest.mark.parametrize("text,want", [
    ("my image.png", "my image.png"),
    ("../../etc/passwd", "_._etc_passwd"),
    ("/abs/path", "_abs_path"),
    ("a\x00b", "a_b"),
    ("..", "untitled"),
    ("CON", "_CON"),
    ('a<b>c:d"e|f?g*h', "a_b_c_d_e_f_g_h"),
    ("", "untitled"),
])
def test_safe_name(text, want):
    got = media.safe_name(text)
    assert got == want
    assert "/" not in got and "\\" not in got and "\x00" not in got and ".." not in got


def test_safe_name_length_in_bytes():
    got = media.safe_name("é" * 500)
    assert len(got.encode("utf-8")) <= 200 and got


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "a\x00b"])
def test_resolve_inside_rejects_escape(bad, tmp_path):
    with pytest.raises(StudioError) as ei:
        media.resolve_inside(tmp_path, bad)
    assert ei.value.key == "media.outside_root"


def test_resolve_inside_accepts_and_follows_symlinks(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    assert media.resolve_inside(root, "sub/x.png") == (root / "sub" / "x.png").resolve()
    assert media.resolve_inside(root, str(root / "y.png")) == (root / "y.png").resolve()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(StudioError):
        media.resolve_inside(root, "link/secret")
