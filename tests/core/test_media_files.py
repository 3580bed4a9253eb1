"""Saving (formats, modes, atomicity, sources protected), listing, safe names and paths."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import media
from core.errors import StudioError


# ----------------------------------------------------------------- saving

@pytest.mark.parametrize("ext,fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP"),
                                     (".avif", "AVIF"), (".tif", "TIFF"), (".bmp", "BMP")])
def test_save_picks_format_from_extension(ext, fmt, tmp_path):
    a = np.zeros((10, 12, 4), np.float32)
    a[..., 0] = 1.0
    a[..., 3] = 1.0
    out = media.save_image(a, tmp_path / f"x{ext}")
    with Image.open(out) as im:
        assert im.format == fmt and im.size == (12, 10)
        assert np.asarray(im.convert("RGB"))[5, 5, 0] > 240
    assert [f.name for f in tmp_path.iterdir()] == [f"x{ext}"]  # no temp file left


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".avif", ".bmp", ".tif"])
@pytest.mark.parametrize("mode,value", [("L", 100), ("LA", (100, 255)), ("P", 1), ("1", 1),
                                        ("I;16", 25700), ("CMYK", (0, 0, 0, 155)),
                                        ("RGBA", (100, 100, 100, 255)), ("F", 100 / 255)])
def test_save_any_mode_to_any_format(ext, mode, value, tmp_path):
    im = Image.new(mode, (6, 4), value)
    if mode == "P":
        im.putpalette([0, 0, 0, 100, 100, 100] + [0] * 762)
    out = media.save_image(im, tmp_path / f"x{ext}")
    got = np.asarray(media.load_image(out)).astype(int)
    assert got.shape == (4, 6, 3)
    want = 255 if mode == "1" else 100
    assert np.abs(got - want).max() <= 3, (mode, ext, got[0, 0])


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


def test_every_media_key_used_in_code_is_translated():
    import re
    root = Path(media.__file__).parent
    used = set()
    for f in ("media.py", "media_image.py", "media_video.py"):
        used |= set(re.findall(r'"(media\.[a-z_]+)"', (root / f).read_text()))
    assert len(used) >= 12
    for lang in ("en", "fr"):
        import json
        table = json.loads((root.parent / "locales" / lang / "media.json").read_text())
        assert used <= set(table), (lang, used - set(table))
        assert set(table) == set(json.loads(
            (root.parent / "locales" / "en" / "media.json").read_text()))


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


def test_outputs_get_normal_permissions(tmp_path):
    import os
    umask = os.umask(0o022)
    os.umask(umask)
    out = media.save_image(np.zeros((2, 2, 3), np.uint8), tmp_path / "p.png")
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    out.chmod(0o640)
    media.save_image(np.zeros((2, 2, 3), np.uint8), out)
    assert out.stat().st_mode & 0o777 == 0o640  # replacing keeps the file's mode


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


def test_committed_files_get_usual_permissions_not_0600(tmp_path):
    """Issue 18.8: safetensors and mkstemp create 0600 files; a committed output gets the
    replaced file's mode, else 0666 minus the umask."""
    import os
    import stat

    from core.media import _UMASK, atomic_path

    out = tmp_path / "new.bin"
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"x")
        os.chmod(tmp, 0o600)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_UMASK
    os.chmod(out, 0o640)
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"y")
        os.chmod(tmp, 0o600)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640 and out.read_bytes() == b"y"
