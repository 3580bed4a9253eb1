"""Importer: a folder of nasty images -> right buckets and sizes, a skip list with reasons,
warnings, duplicates, copied captions, and a source folder left byte-identical."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import StudioError
from modules.lora_training.data.buckets import bucket_list, plan_bucket
from modules.lora_training.data.importer import ImportOptions, import_images
from modules.lora_training.data.project import Project, safe_name

RES = 512


def _pattern(w: int, h: int, seed: int) -> np.ndarray:
    """A structured RGB picture (distinct dHash per seed, unlike flat colours)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def nasty(tmp_path: Path) -> Path:
    src = tmp_path / "source"
    (src / "sub").mkdir(parents=True)
    # EXIF orientation 6: stored landscape 960x640, shown portrait 640x960
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_pattern(960, 640, 1)).save(src / "photo_exif.jpg", quality=92, exif=exif)
    (src / "photo_exif.txt").write_text("sks person, smiling", encoding="utf-8")
    Image.fromarray(_pattern(700, 700, 2)).convert("CMYK").save(src / "cmyk.jpg", quality=92)
    (src / "cmyk.txt").write_bytes("un caf\xe9 cr\xe8me".encode("cp1252"))  # not UTF-8
    shutil.copyfile(src / "cmyk.jpg", src / "sub" / "cmyk_copy.jpg")  # exact duplicate
    grad = np.tile(np.linspace(0, 65535, 640), (512, 1)).astype(np.uint16)
    Image.fromarray(grad, mode="I;16").save(src / "deep16.png")
    Image.fromarray(_pattern(600, 600, 3)).convert("P", palette=Image.Palette.ADAPTIVE).save(src / "palette.png")
    rgba = np.dstack([_pattern(640, 640, 4), np.full((640, 640), 255, np.uint8)])
    rgba[:, :320, 3] = 0  # left half fully transparent
    Image.fromarray(rgba, "RGBA").save(src / "alpha.png")
    Image.fromarray(_pattern(820, 600, 5)).save(src / "sub" / "wide.png")
    # a re-encoded, resized copy of wide.png: a near duplicate
    Image.fromarray(_pattern(820, 600, 5)).resize((700, 512)).save(src / "sub" / "wide_small.jpg", quality=80)
    full = (src / "cmyk.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (src / "empty.png").write_bytes(b"")
    Image.fromarray(_pattern(100, 100, 6)).save(src / "tiny.png")
    Image.fromarray(_pattern(300, 200, 7)).save(src / "small.png")
    (src / "notes.md").write_text("not an image", encoding="utf-8")
    (src / ".DS_Store").write_bytes(b"\x00\x01")
    return src


def test_import_nasty_folder(tmp_path: Path, nasty: Path) -> None:
    before = _tree_digest(nasty)
    project = Project(tmp_path / "projects", "My LoRA!")
    rep = import_images(project, "person", nasty, options=ImportOptions(resolution=RES, min_size=128))
    assert _tree_digest(nasty) == before, "source folder changed"

    assert project.name == "My LoRA!"  # kept as typed (core.paths refuses, never rewrites)
    reasons = {Path(s["source"]).name: s["reason"] for s in rep.skipped}
    assert reasons == {"notes.md": "not_image", "truncated.jpg": "unreadable", "empty.png": "empty",
                       "tiny.png": "too_small", "cmyk_copy.jpg": "duplicate", "wide_small.jpg": "near_duplicate"}
    dup = next(s for s in rep.skipped if s["reason"] == "duplicate")
    assert dup["detail"] == "cmyk.png"
    assert sorted(rep.imported) == ["alpha.png", "cmyk.png", "deep16.png", "palette.png", "photo_exif.png",
                                    "small.png", "wide.png"]

    recs = {r.file: r for r in project.records("person")}
    cdir = project.data_dir / "person"
    for name, r in recs.items():
        with Image.open(cdir / name) as im:
            assert im.mode == "RGB"
            assert [im.height, im.width] == r.target_size_hw
        plan = plan_bucket(r.original_size_hw[1], r.original_size_hw[0], RES)
        assert r.crop_top_left_yx == plan.crop_top_left_yx
    # EXIF applied: shown portrait, so a portrait bucket; original size is the shown one
    assert recs["photo_exif.png"].original_size_hw == [960, 640]
    assert recs["photo_exif.png"].target_size_hw == [640, 448]
    assert recs["photo_exif.png"].resized_size_hw == [672, 448]
    assert recs["photo_exif.png"].crop_top_left_yx == [16, 0]
    assert recs["cmyk.png"].target_size_hw == [512, 512]
    assert recs["wide.png"].target_size_hw == [448, 640]  # 820:600 is nearest 640:448
    for r in recs.values():
        h, w = r.target_size_hw
        assert h % 64 == 0 and w % 64 == 0
        assert (w, h) in bucket_list(RES) or "small_for_bucket" in r.warnings
    # 16-bit gradient scaled, not clipped to white
    arr16 = np.asarray(Image.open(cdir / "deep16.png"), dtype=np.float32)
    assert 100 < arr16.mean() < 155 and arr16[:, 0].mean() < 30 and arr16[:, -1].mean() > 225
    # alpha composited on white
    arr_a = np.asarray(Image.open(cdir / "alpha.png"))
    assert arr_a[:, :150].min() == 255 and arr_a[:, 300:].mean() < 250
    # small image: no upscale, own bucket floored to 64, with a warning
    assert recs["small.png"].target_size_hw == [192, 256] and not recs["small.png"].upscaled
    warn = {(Path(w["source"]).name, w["reason"]) for w in rep.warnings}
    assert ("small.png", "small_for_bucket") in warn and ("cmyk.txt", "caption_encoding") in warn
    # captions copied, legacy encoding decoded
    assert (cdir / "photo_exif.txt").read_text(encoding="utf-8") == "sks person, smiling"
    assert (cdir / "cmyk.txt").read_text(encoding="utf-8") == "un café crème"
    assert rep.captions_copied == 2 and recs["cmyk.png"].caption_source == "copied"
    assert not [p for p in cdir.iterdir() if p.name.startswith(".")], "temp files left behind"
    manifest = json.loads(project.manifest_path.read_text(encoding="utf-8"))
    assert manifest["concepts"]["person"]["import"]["imported"] == 7
    flat = json.loads((project.data_dir / "manifest.json").read_text(encoding="utf-8"))["images"]
    row = next(r for r in flat if r["file"] == "person/photo_exif.png")
    assert row["original_hw"] == [960, 640] and row["crop_yx"] == [16, 0] and row["target_size"] == [640, 448]
    assert len(flat) == 7 and all((project.data_dir / r["file"]).is_file() for r in flat)
    for d in (project.cache_dir, project.checkpoints_dir, project.samples_dir):
        assert d.is_dir()

    # a second import of the same folder adds nothing and overwrites nothing
    mtimes = {p.name: p.stat().st_mtime_ns for p in cdir.iterdir()}
    rep2 = import_images(project, "person", nasty, options=ImportOptions(resolution=RES, min_size=128))
    assert rep2.imported == []
    assert sum(s["reason"] == "already_imported" for s in rep2.skipped) == 8  # 7 + the exact copy
    assert {p.name: p.stat().st_mtime_ns for p in cdir.iterdir()} == mtimes


def test_crop_mode_uploads_and_stop(tmp_path: Path, nasty: Path) -> None:
    from core.jobs import ConsoleJob

    # uploads arrive one per temp folder (as Gradio stores them): captions matched by stem
    files = []
    for i, f in enumerate([nasty / "cmyk.jpg", nasty / "sub" / "wide.png", nasty / "alpha.png",
                           nasty / "photo_exif.jpg", nasty / "photo_exif.txt"]):
        (tmp_path / "up" / str(i)).mkdir(parents=True)
        files.append(shutil.copy(f, tmp_path / "up" / str(i) / f.name))
    project = Project(tmp_path / "projects", "crop")
    rep = import_images(project, "c", files=files, options=ImportOptions(resolution=RES, mode="crop", min_size=128))
    assert len(rep.imported) == 4 and rep.captions_copied == 1
    for r in project.records():
        assert r.target_size_hw == [512, 512]
    assert project.records()[0].concept == "c"
    assert (project.data_dir / "c" / "photo_exif.txt").read_text(encoding="utf-8") == "sks person, smiling"

    class StopAfterFirst(ConsoleJob):
        def progress(self, done, total, desc=""):
            super().progress(done, total, desc)
            if done >= 1:
                self.request_stop()

    job = StopAfterFirst("lora.prepare", verbose=False, workdir=tmp_path / "job")
    project2 = Project(tmp_path / "projects", "stopped")
    rep = import_images(project2, "c", nasty, options=ImportOptions(resolution=RES, min_size=128), job=job)
    assert rep.stopped and len(rep.imported) == 1
    assert len(project2.records()) == 1  # manifest written on stop


def test_empty_and_missing_sources(tmp_path: Path) -> None:
    project = Project(tmp_path / "projects", "p")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(StudioError) as e:
        import_images(project, "c", tmp_path / "empty")
    assert e.value.key == "lora_data.no_images"
    with pytest.raises(StudioError) as e:
        import_images(project, "c", tmp_path / "nope")
    assert e.value.key == "lora_data.source_missing"
    project.create()
    with pytest.raises(StudioError) as e:
        import_images(project, "c", project.dir)
    assert e.value.key == "lora_data.source_is_project"


@pytest.mark.parametrize("bad", ["../evil", "a/../../b", "/etc", "C:\\x", "\\\\server\\share", "x\x00y", "", "  ", "...",
                                 "~/home", "a/b", "con", "My LoRA: v2?"])
def test_bad_names_rejected(bad: str) -> None:
    with pytest.raises(StudioError) as e:
        safe_name(bad)
    assert e.value.key.startswith("paths.")  # core.paths: refused with the reason, never rewritten


def test_names_kept_as_typed(tmp_path: Path) -> None:
    assert safe_name("My LoRA v2") == "My LoRA v2"
    assert safe_name("café-portrait") == "café-portrait"
    assert safe_name("cafe\u0301-portrait") == "café-portrait"  # NFC
    p = Project(tmp_path, "ok")
    with pytest.raises(StudioError):
        p.concept_dir("../x")
    assert p.concept_dir("dogs & cats").name == "dogs & cats"


def test_params_validation_names_the_field() -> None:
    from pydantic import ValidationError

    from modules.lora_training.data.jobs import CaptionParams, PrepareParams

    with pytest.raises(ValidationError) as e:
        PrepareParams(project="p", source_dir="/x", resolution=1000)
    assert e.value.errors()[0]["loc"] == ("resolution",)
    with pytest.raises(ValidationError) as e:
        CaptionParams(project="p", task="<OD>")
    assert e.value.errors()[0]["loc"] == ("task",)
    assert PrepareParams(project="p").mode == "buckets"


def test_disk_full_is_clear_and_keeps_done(tmp_path: Path, nasty: Path, monkeypatch) -> None:
    from modules.lora_training.data import importer

    real, calls = importer.save_png_atomic, []

    def failing(img, path):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        real(img, path)

    monkeypatch.setattr(importer, "save_png_atomic", failing)
    project = Project(tmp_path / "projects", "full")
    with pytest.raises(StudioError) as e:
        import_images(project, "c", nasty, options=ImportOptions(resolution=RES, min_size=128))
    assert e.value.key == "lora_data.write_failed" and "No space" in e.value.params["error"]
    assert [r.file for r in project.records()] == [calls[0].name]  # the finished image is recorded
