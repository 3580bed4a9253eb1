"""Image loading: a table of nasty files (all generated here), 16-bit, alpha, EXIF."""
from __future__ import annotations

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


def test_image_size_from_header_counts_exif_rotation(tmp_path):
    p = tmp_path / "rot.jpg"
    _jpeg_with_orientation(p, 6)
    assert media.image_size(p) == (20, 40)
    _jpeg_with_orientation(p, 3)
    assert media.image_size(p) == (40, 20)
    with pytest.raises(StudioError) as ei:
        media.image_size(_text(tmp_path))
    assert ei.value.key == "media.not_image"


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
    with Image.open(p) as raw:
        assert raw.mode == "CMYK"
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


def _tiff16(path: Path, a: np.ndarray) -> None:
    """An uncompressed little-endian 16-bit RGB TIFF written by hand (no library involved)."""
    h, w, _ = a.shape
    data = a.astype("<u2").tobytes()
    n_tags = 10
    bps_off = 8 + 2 + 12 * n_tags + 4
    pix_off = bps_off + 6
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, bps_off), (259, 3, 1, 1),
            (262, 3, 1, 2), (273, 4, 1, pix_off), (277, 3, 1, 3), (278, 4, 1, h),
            (279, 4, 1, len(data)), (284, 3, 1, 1)]
    ifd = struct.pack("<H", n_tags) + b"".join(
        struct.pack("<HHII", tag, typ, cnt, val) if typ == 4 or cnt > 1 else
        struct.pack("<HHIHH", tag, typ, cnt, val, 0) for tag, typ, cnt, val in tags)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
                     + struct.pack("<HHH", 16, 16, 16) + data)


def test_16bit_rgb_tiff_keeps_precision_and_round_trips(tmp_path):
    rng = np.random.default_rng(4)
    a16 = rng.integers(0, 65536, size=(10, 14, 3), dtype=np.uint16)
    p = tmp_path / "deep.tif"
    _tiff16(p, a16)
    assert media.load_image(p).size == (14, 10)  # Pillow reads it (as 8-bit)
    arr, info = media.load_image_array(p)
    assert info["bits"] == 16 and arr.shape == (10, 14, 3)
    assert np.array_equal(np.round(arr * 65535).astype(np.uint16), a16)
    out = media.save_image(arr, tmp_path / "out.tiff", bits=16)
    again, info2 = media.load_image_array(out)
    assert info2["bits"] == 16 and np.array_equal(np.round(again * 65535).astype(np.uint16), a16)


def test_16bit_png_with_exif_rotation(tmp_path):
    a16 = (np.arange(6 * 4 * 3, dtype=np.uint16).reshape(4, 6, 3) * 700 + 1)
    plain = tmp_path / "plain.png"
    media.save_image(a16, plain, bits=16)
    # add an eXIf chunk (orientation 8) before IEND, as cameras/phones do
    exif = Image.Exif()
    exif[0x0112] = 8
    data = plain.read_bytes()
    rotated = tmp_path / "rot.png"
    rotated.write_bytes(data[:-12] + _png_chunk(b"eXIf", exif.tobytes()[6:]) + data[-12:])
    arr, info = media.load_image_array(rotated)
    assert info["bits"] == 16 and arr.shape == (6, 4, 3)
    assert np.array_equal(np.round(arr * 65535).astype(np.uint16), np.rot90(a16, 1))
    assert media.load_image(rotated).size == (4, 6)


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
