"""Classifier data: ImageFolder scan, stratified split, decoded-image cache, uploads.

Layout: `data_dir/<class name>/*.jpg|png|...` (nested folders inside a class are
included). Every image is decoded once through `core.media.load_image` (EXIF rotation,
odd modes, corrupt-file errors); unreadable ones are listed and skipped. Decoded images
are resized (shorter side to `base`) and centre-cropped to `base x base` uint8 and kept in
a memory-mapped array in the job's folder, so an epoch is a slice of that array: no
decoding per epoch, and big datasets page from disk instead of filling RAM.

The same `prepare_image` is used for training, evaluation and prediction, so a model sees
exactly the preprocessing it was trained with.
"""
from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from core.errors import StudioError
from core.media import is_image_file, list_images, load_image

SPLITS = ("train", "val", "test")


@dataclass
class Scan:
    root: Path
    class_names: list[str]
    files: list[Path]
    labels: list[int]
    counts: dict[str, int] = field(default_factory=dict)


def scan_image_folder(root: str | Path, on_skip=None) -> Scan:
    """Classes are the sub-folders of `root` (sorted, like torchvision's ImageFolder).

    Images are found by `core.folders.walk_files` with links kept inside `root`: a class
    folder or an image that links outside the dataset is skipped (reported to `on_skip`; a
    class left with no image is no class)."""

    root = Path(root).expanduser()
    if not root.is_dir():
        raise StudioError("clf.data_missing", path=str(root))
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: list[Path] = []
    labels: list[int] = []
    counts: dict[str, int] = {}
    for idx, name in enumerate(classes):
        found = sorted(list_images(root / name, recursive=True, on_skip=on_skip, within=root))
        counts[name] = len(found)
        files += found
        labels += [idx] * len(found)
    usable = [c for c in classes if counts[c] > 0]
    if len(usable) < 2:
        raise StudioError("clf.need_two_classes", path=str(root), found=len(usable))
    if len(usable) != len(classes):  # empty class folders are not classes
        keep = {classes.index(c): i for i, c in enumerate(usable)}
        labels = [keep[l] for l in labels]
        classes, counts = usable, {c: counts[c] for c in usable}
    return Scan(root, classes, files, labels, counts)


def stratified_split(labels: list[int], val_ratio: float, test_ratio: float = 0.0,
                     seed: int = 42) -> dict[str, list[int]]:
    """Indices per split, class by class, reproducible for a seed.

    Each class with n >= 2 images gives round(n * ratio) images (at least 1) to val, and
    likewise to test when asked, keeping at least one for training.
    """
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for cls in sorted(set(labels)):
        idx = np.flatnonzero(labels_arr == cls)
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        n_val = max(1, round(n * val_ratio)) if n >= 2 else 0
        n_test = max(1, round(n * test_ratio)) if (test_ratio > 0 and n - n_val >= 2) else 0
        n_val = min(n_val, n - 1 - n_test) if n >= 2 else 0
        out["val"] += idx[:n_val].tolist()
        out["test"] += idx[n_val:n_val + n_test].tolist()
        out["train"] += idx[n_val + n_test:].tolist()
    return {s: sorted(v) for s, v in out.items()}


def save_split(path: Path, scan: Scan, split: dict[str, list[int]], seed: int) -> None:
    data = {"seed": seed, "root": str(scan.root), "class_names": scan.class_names,
            "splits": {s: [[scan.files[i].relative_to(scan.root).as_posix(), scan.labels[i]] for i in idx]
                       for s, idx in split.items()}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(path)


def load_split(path: Path, scan: Scan) -> tuple[dict[str, list[int]], list[str]]:
    """Map a saved split onto a fresh scan. Returns (split, files that disappeared)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if data["class_names"] != scan.class_names:
        raise StudioError("clf.classes_changed", before=", ".join(data["class_names"]),
                          now=", ".join(scan.class_names))
    where = {f.relative_to(scan.root).as_posix(): i for i, f in enumerate(scan.files)}
    split: dict[str, list[int]] = {s: [] for s in SPLITS}
    missing: list[str] = []
    for s, rows in data["splits"].items():
        for rel, _label in rows:
            (split[s].append(where[rel]) if rel in where else missing.append(rel))
    return split, missing


def prepare_image(img: Image.Image, base: int) -> np.ndarray:
    """RGB image -> uint8 HxWx3 of base x base: shorter side resized to `base`, centre crop."""
    img = img.convert("RGB")
    w, h = img.size
    scale = base / min(w, h)
    nw, nh = max(base, round(w * scale)), max(base, round(h * scale))
    img = img.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0 if scale < 0.5 else None)
    left, top = (nw - base) // 2, (nh - base) // 2
    return np.asarray(img.crop((left, top, left + base, top + base)), dtype=np.uint8)


class ImageCache:
    """uint8 [N, base, base, 3] array (memory-mapped file) plus which entries decoded."""

    def __init__(self, path: Path, count: int, base: int) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.array = np.lib.format.open_memmap(str(self.path), mode="w+", dtype=np.uint8,
                                               shape=(max(count, 1), base, base, 3))
        self.ok = np.zeros(count, dtype=bool)

    def fill(self, files: list[Path], should_stop: Callable[[], bool],
             progress: Callable[[int, int], None], workers: int = 4,
             t: Callable[..., str] | None = None) -> list[tuple[Path, str]]:
        """Decode every file; returns [(path, reason)] of unreadable ones (skipped).
        `t` renders the media error messages (core.i18n.Translator)."""
        bad: list[tuple[Path, str]] = []

        def work(i: int) -> tuple[int, str | None]:
            try:
                self.array[i] = prepare_image(load_image(files[i], mode="RGB"), self.base)
                return i, None
            except StudioError as exc:
                return i, exc.render(t) if t is not None else exc.key
            except Exception as exc:  # noqa: BLE001 - any decode failure = skip this file
                return i, f"{type(exc).__name__}: {exc}"[:200]

        with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL decodes without the GIL
            chunk = max(workers * 8, 32)
            for start in range(0, len(files), chunk):
                if should_stop():
                    break
                for i, reason in pool.map(work, range(start, min(start + chunk, len(files)))):
                    if reason is None:
                        self.ok[i] = True
                    else:
                        bad.append((files[i], reason))
                progress(min(start + chunk, len(files)), len(files))
        self.array.flush()
        return bad


def import_uploads(paths: list[str | Path], class_name: str, dataset_dir: Path) -> list[Path]:
    """Copy uploaded images into `dataset_dir/<class_name>/` (originals untouched).

    Non-image files are skipped; a name clash gets a numeric suffix.
    """
    safe = "".join(c for c in class_name.strip() if c.isalnum() or c in " _-.").strip(" .")
    if not safe:
        raise StudioError("clf.bad_class_name", name=class_name)
    target = Path(dataset_dir) / safe
    target.mkdir(parents=True, exist_ok=True)
    copied: list[Path] = []
    for src in map(Path, paths):
        if not is_image_file(src):
            continue
        dest, n = target / src.name, 1
        while dest.exists():
            dest, n = target / f"{src.stem}_{n}{src.suffix}", n + 1
        tmp = dest.with_name("." + dest.name + ".part")
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
        copied.append(dest)
    return copied
