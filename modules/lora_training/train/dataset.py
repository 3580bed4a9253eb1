"""The training set: which images, with which caption, original size, crop and target size.

Source of truth, in order: the data side's manifest (modules.lora_training.data, written by
the Prepare step: per image its file, caption, original size, crop coordinates and bucket)
when present; otherwise the images and their `.txt` captions in the data folder, resized
(shorter side to the resolution) and centre-cropped, with the original size and crop
recorded exactly as SDXL's micro-conditioning expects.

Batches never mix target sizes (aspect buckets): the order of an epoch is a seeded
permutation within each bucket, then the batches of all buckets shuffled together.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import StudioError
from modules.lora_training.train.concepts import is_mask_path, parse_concept_dir

MANIFEST_NAMES = ("manifest.json", "manifest.jsonl")


@dataclass(frozen=True)
class Item:
    path: str
    caption: str
    original_hw: tuple[int, int]
    crop_yx: tuple[int, int]
    target_hw: tuple[int, int]
    # where in the file the crop lies when the file is not already the target size
    needs_resize: bool = True
    concept: str = ""
    repeats: int = 1
    mask: str = ""  # loss mask image (train/concepts.py conventions), "" = none


def _read_caption(img: Path, fallback: str) -> str:
    txt = img.with_suffix(".txt")
    if not txt.is_file():
        return fallback
    raw = txt.read_bytes()
    enc = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"  # UTF-16 only with its BOM
    try:
        return raw.decode(enc).strip() or fallback
    except UnicodeDecodeError:
        raise StudioError("lora.bad_caption", path=str(txt)) from None


def _center_crop_geometry(w: int, h: int, tw: int, th: int) -> tuple[float, int, int]:
    """Scale to cover (tw, th), then centre crop: (scale, crop_top, crop_left)."""
    scale = max(tw / w, th / h)
    rw, rh = round(w * scale), round(h * scale)
    return scale, max(0, (rh - th) // 2), max(0, (rw - tw) // 2)


def _from_manifest(folder: Path, trigger: str) -> list[Item] | None:
    for name in MANIFEST_NAMES:
        f = folder / name
        if not f.is_file():
            continue
        text = f.read_text(encoding="utf-8")
        rows = ([json.loads(line) for line in text.splitlines() if line.strip()] if name.endswith("l")
                else json.loads(text))
        if isinstance(rows, dict):
            rows = rows.get("images") or rows.get("items") or []
        items = []
        for r in rows:
            p = folder / (r.get("file") or r.get("path") or r.get("image"))
            if not p.is_file():
                continue
            cap = r.get("caption") or _read_caption(p, trigger)
            orig = r.get("original_size") or r.get("original_hw")
            crop = r.get("crop_top_left") or r.get("crop_coords") or r.get("crop_yx") or [0, 0]
            size = r.get("target_size") or r.get("bucket") or r.get("size")
            from core.media import image_size

            w, h = image_size(p)
            th, tw = (size[0], size[1]) if size else (h, w)
            items.append(Item(str(p), cap, tuple(orig or (h, w)), tuple(crop), (th, tw), (w, h) != (tw, th),
                              str(r.get("concept") or ""), max(1, int(r.get("repeats") or 1))))
        return items
    return None


def scan(folder: str | Path, resolution: int, trigger: str = "", skipped: list | None = None) -> list[Item]:
    """All usable training items of a data folder (recursive: one sub-folder per concept).

    Unreadable images are left out and appended to `skipped` as (path, StudioError)."""
    from core.errors import StudioError as _SE
    from core.media import image_size, list_images

    folder = Path(folder)
    if not folder.is_dir():
        raise StudioError("lora.data_missing", path=str(folder))
    items = _from_manifest(folder, trigger)
    if items is None:
        items = []
        for p in list_images(folder):
            if is_mask_path(p):
                continue
            rel = p.relative_to(folder).parts
            repeats, concept = parse_concept_dir(rel[0]) if len(rel) > 1 else (1, "")
            try:
                if p.stat().st_size == 0:
                    raise _SE("media.empty", path=p.name)
                w, h = image_size(p)  # EXIF orientation counted
            except _SE as exc:  # zero-byte, corrupt, not an image: skipped and reported
                if skipped is not None:
                    skipped.append((str(p), exc))
                continue
            scale, top, left = _center_crop_geometry(w, h, resolution, resolution)
            # kohya: an uncaptioned image of `10_name/` is captioned with the folder's text
            kohya = len(rel) > 1 and rel[0] != concept
            cap = _read_caption(p, trigger or (concept if kohya else ""))
            items.append(Item(str(p), cap, (h, w), (top, left), (resolution, resolution), True, concept, repeats))
    if not items:
        raise StudioError("lora.no_images", path=str(folder))
    return items


def load_pixels(item: Item):
    """The item's image as a (3, H, W) float tensor in [-1, 1] at its target size."""
    import numpy as np
    import torch
    from PIL import Image

    from core.media import load_image

    im = load_image(item.path, "RGB")  # upright (EXIF), CMYK/16-bit/palette handled, alpha on white
    th, tw = item.target_hw
    if im.size != (tw, th):
        scale, top, left = _center_crop_geometry(im.width, im.height, tw, th)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        im = im.crop((left, top, left + tw, top + th))
    arr = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def image_digest(item: Item) -> str:
    h = hashlib.sha256(Path(item.path).read_bytes())
    h.update(json.dumps([item.original_hw, item.crop_yx, item.target_hw]).encode())
    if item.mask:  # the cache entry carries the mask: a new mask is a new entry
        h.update(b"mask" + Path(item.mask).read_bytes())
    return h.hexdigest()


def dataset_hash(items: list[Item]) -> str:
    """One hash of every image's bytes and caption (stored in the LoRA's metadata)."""
    h = hashlib.sha256()
    for it in sorted(items, key=lambda i: i.path):
        h.update(hashlib.sha256(Path(it.path).read_bytes()).digest())
        h.update(it.caption.encode())
    return h.hexdigest()[:16]


def split_validation(items: list[Item], n_val: int, seed: int) -> tuple[list[Item], list[Item]]:
    """Hold out `n_val` images chosen by a seeded draw (same split on every run)."""
    import random

    if n_val <= 0:
        return items, []
    if n_val >= len(items):
        raise StudioError("lora.too_few_for_validation", n=len(items), val=n_val)
    idx = list(range(len(items)))
    random.Random(seed).shuffle(idx)
    val = set(idx[:n_val])
    return [it for i, it in enumerate(items) if i not in val], [items[i] for i in sorted(val)]


def epoch_batches(items: list[Item], batch_size: int, seed: int, epoch: int,
                  rank: int = 0, world: int = 1) -> list[list[int]]:
    """Seeded batch order of one epoch: same seed + epoch -> same batches (resume relies on it)."""
    import torch

    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, it in enumerate(items):
        buckets.setdefault(tuple(it.target_hw), []).append(i)
    batches: list[list[int]] = []
    for key in sorted(buckets):
        idx = buckets[key]
        perm = torch.randperm(len(idx), generator=g).tolist()
        ordered = [idx[p] for p in perm]
        batches += [ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]
    order = torch.randperm(len(batches), generator=g).tolist()
    batches = [batches[o] for o in order]
    return batches[rank::world] if world > 1 else batches


def describe(item: Item) -> dict:
    return asdict(item)
