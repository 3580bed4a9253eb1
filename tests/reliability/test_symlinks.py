"""Symbolic links in scanned folders (issue 12, point 3): one policy, in core.folders.

A source folder holds a link to a system file, a link to an image outside the folder, a
folder link to its own parent (a loop), two file links pointing at each other, a broken
link, and a link to an image inside the folder. Every scanner (core.media.list_images, the
LoRA import, super-resolution, style transfer, the classifier's ImageFolder) keeps the
inside link, skips the others with a reason, and never opens what lies outside.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core.folders import walk_files
from core.media import list_images


def _png(path: Path, seed: int, size=(300, 300)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path, format="PNG")
    return path


@pytest.fixture
def tree(tmp_path):
    src, outside = tmp_path / "src", tmp_path / "outside"
    _png(src / "a.png", 1)
    _png(src / "sub" / "b.png", 2)
    _png(src / "sub" / "c.png", 3)
    outside_img = _png(outside / "stolen.png", 4)
    (src / "secret.png").symlink_to("/etc/passwd")
    (src / "stolen.png").symlink_to(outside_img)
    (src / "sub" / "loop").symlink_to(src)  # a folder link to a parent
    (src / "l1.png").symlink_to(src / "l2.png")
    (src / "l2.png").symlink_to(src / "l1.png")
    (src / "broken.png").symlink_to(src / "gone.png")
    (src / "inner.png").symlink_to(src / "sub" / "c.png")  # stays inside: kept
    (src / "outdir").symlink_to(outside)  # a folder link leaving the folder
    return src, outside_img


EXPECTED_SKIPS = {"secret.png": "link_outside", "stolen.png": "link_outside", "loop": "link_loop",
                  "l1.png": "link_loop", "l2.png": "link_loop", "broken.png": "link_broken", "outdir": "link_outside"}


def test_walk_files_policy(tree):
    src, _ = tree
    skips: list[tuple[Path, str]] = []
    found = walk_files(src, on_skip=lambda p, r: skips.append((p, r)))
    assert [p.relative_to(src).as_posix() for p in found] == ["a.png", "inner.png", "sub/b.png", "sub/c.png"]
    assert {p.name: r for p, r in skips} == EXPECTED_SKIPS
    # not recursive: the top level only, same link policy
    assert [p.name for p in walk_files(src, recursive=False, on_skip=lambda *a: None)] == ["a.png", "inner.png"]
    # list_images is the same scan
    assert list_images(src, on_skip=lambda *a: None) == found


def test_lora_import_skips_links_that_leave_and_reports_them(ctx, tree):
    from modules.lora_training.data.importer import ImportOptions, import_images
    from modules.lora_training.data.project import Project

    src, outside_img = tree
    project = Project.from_ctx(ctx, "links")
    rep = import_images(project, "c", src, options=ImportOptions(resolution=256, min_size=64))
    reasons = {Path(s["source"]).name: s["reason"] for s in rep.skipped}
    for name, reason in EXPECTED_SKIPS.items():
        assert reasons[name] == reason, name
    # the inside link was read: it and sub/c.png are the same image, one is the duplicate
    assert [n for n, r in reasons.items() if r == "duplicate"] in (["inner.png"], ["c.png"])
    stolen = hashlib.sha256(outside_img.read_bytes()).hexdigest()
    records = json.loads(project.manifest_path.read_text(encoding="utf-8"))["concepts"]["c"]["images"]
    assert len(records) == 3 and stolen not in {r["sha256"] for r in records.values()}


def test_rest_prepare_job_with_a_loop_completes_with_warnings(ctx, tree):
    from core.api import create_api

    src, _ = tree
    client = TestClient(create_api(ctx))
    r = client.post("/jobs", json={"kind": "lora.prepare", "start": True,
                                   "params": {"project": "p", "concept": "c", "source_dir": str(src),
                                              "resolution": 256, "min_size": 64}})
    assert r.status_code == 201
    row = ctx.jobs.wait(r.json()["id"], 120)
    assert row["status"] == "completed" and row["result"]["imported"] == 3, row  # not "Unexpected error"
    logs = [m["message"] for m in client.get(f"/jobs/{row['id']}/logs").json()]
    assert sum("link to something outside the folder" in m for m in logs) == 3
    assert sum("link loop" in m for m in logs) == 3


def test_sr_style_and_classifier_scans_follow_the_same_policy(tmp_path, tree):
    from modules.image_classifier.data import scan_image_folder
    from modules.style_transfer.runners import _collect
    from modules.super_resolution.batch import collect
    from modules.super_resolution.params import UpscaleParams

    src, _ = tree
    skips: list[tuple[Path, str]] = []
    items, _skipped = collect(UpscaleParams(model="m", inputs=[str(src)]), tmp_path / "o",
                              on_skip=lambda p, r: skips.append((p, r)))
    assert sorted(it.src.relative_to(src).as_posix() for it in items) == ["a.png", "inner.png", "sub/b.png",
                                                                          "sub/c.png"]
    assert {p.name: r for p, r in skips} == EXPECTED_SKIPS
    skips.clear()
    got = _collect([str(src)], True, on_skip=lambda p, r: skips.append((p, r)))
    assert sorted(f.relative_to(src).as_posix() for f, _, _ in got) == ["a.png", "inner.png", "sub/b.png", "sub/c.png"]
    assert {p.name: r for p, r in skips} == EXPECTED_SKIPS
    # ImageFolder: a class folder that links outside the dataset is no class
    data = tmp_path / "data"
    _png(data / "cats" / "1.png", 5, (32, 32))
    _png(data / "dogs" / "1.png", 6, (32, 32))
    (data / "cats" / "escape.png").symlink_to(tree[1])
    (data / "birds").symlink_to(tree[1].parent)
    skips.clear()
    scan = scan_image_folder(data, on_skip=lambda p, r: skips.append((p, r)))
    assert scan.class_names == ["cats", "dogs"] and len(scan.files) == 2
    assert {p.name: r for p, r in skips} == {"escape.png": "link_outside", "birds": "link_outside"}
