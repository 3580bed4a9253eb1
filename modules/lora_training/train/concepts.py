"""Concepts, repeats, regularisation images and loss masks: the file conventions.

- kohya folder convention: a sub-folder `10_mychar/` is the concept `mychar` repeated 10
  times per epoch; its images without a caption are captioned with the folder's text
  (`mychar`), as kohya does. A folder without the `N_` prefix repeats once.
- Repeats: the item list of the training set holds each image `repeats` times, next to
  itself, so N repeats is exactly the folder duplicated N times in the batch order.
- Mask beside an image: `name.mask.png` in the same folder, or `masks/name.png` (any image
  extension) in a `masks/` sub-folder of the image's folder. Masks are never training images.
- Regularisation (class) images are a second item list drawn in a stateless, seeded order:
  micro-batch c of the run gets the reg items of positions c*B..c*B+B-1 of a sequence of
  seeded permutations, so a resumed run draws exactly the same ones.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

KOHYA_DIR = re.compile(r"^(\d+)_(.+)$")
MASK_SUFFIX = ".mask"
MASK_DIR = "masks"
_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def parse_concept_dir(name: str) -> tuple[int, str]:
    """('10_mychar') -> (10, 'mychar'); ('mychar') -> (1, 'mychar')."""
    m = KOHYA_DIR.match(name)
    if m and int(m.group(1)) > 0:
        return min(int(m.group(1)), 10_000), m.group(2).strip()
    return 1, name


def is_mask_path(path: str | Path) -> bool:
    p = Path(path)
    return p.stem.lower().endswith(MASK_SUFFIX) or p.parent.name.lower() == MASK_DIR


def find_mask(image: str | Path) -> Path | None:
    img = Path(image)
    beside = img.with_name(f"{img.stem}{MASK_SUFFIX}.png")
    if beside.is_file():
        return beside
    for ext in _IMAGE_EXTS:
        cand = img.parent / MASK_DIR / f"{img.stem}{ext}"
        if cand.is_file():
            return cand
    return None


def expand_repeats(items: list) -> list:
    """Each item `repeats` times in a row (see the module docstring)."""
    return [it for it in items for _ in range(max(1, int(getattr(it, "repeats", 1))))]


def with_masks(items: list) -> list:
    """Items with the path of their mask (when one exists beside them)."""
    out = []
    for it in items:
        m = find_mask(it.path)
        out.append(replace(it, mask=str(m)) if m is not None else it)
    return out


def reg_indices(n_reg: int, micro: int, batch: int, seed: int) -> list[int]:
    """Reg item indices for global micro-batch `micro` (stateless: resume draws the same)."""
    import torch

    out = []
    for k in range(micro * batch, micro * batch + batch):
        cycle, pos = divmod(k, n_reg)
        perm = torch.randperm(n_reg, generator=torch.Generator().manual_seed(seed * 31 + 977 * cycle + 5))
        out.append(int(perm[pos]))
    return out


def describe_concepts(items: list) -> dict[str, Any]:
    """{concept: {"images": n distinct, "repeats": r}} (log and metadata)."""
    out: dict[str, Any] = {}
    for it in items:
        c = out.setdefault(it.concept or "", {"images": set(), "repeats": int(it.repeats)})
        c["images"].add(it.path)
    return {k: {"images": len(v["images"]), "repeats": v["repeats"]} for k, v in out.items()}
