"""Duplicate detection: exact (SHA-256 of the file bytes) and perceptual (64-bit dHash).

dHash compares each pixel of a 9x8 grayscale thumbnail with its right neighbour; a
re-encoded, resized or lightly recompressed copy of a picture lands within a few bits
of the original, where two different photos differ in ~32. The importer keeps the first
copy it meets and reports the second with the file it duplicates.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def dhash(image: Image.Image, size: int = 8) -> int:
    """Difference hash of an image (any mode) as a `size*size`-bit integer."""
    gray = image.convert("L").resize((size + 1, size), Image.Resampling.LANCZOS)
    px = np.asarray(gray, dtype=np.int16)
    bits = (px[:, 1:] > px[:, :-1]).flatten()
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return value


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


@dataclass
class DuplicateIndex:
    """What has been kept so far; `check` says whether a new image duplicates one of them."""

    threshold: int = 4  # max differing dHash bits for a near-duplicate (0 = identical hash)
    by_sha: dict[str, str] = field(default_factory=dict)
    by_hash: list[tuple[int, str]] = field(default_factory=list)

    def check_exact(self, sha: str) -> str | None:
        return self.by_sha.get(sha)

    def check_similar(self, hash_value: int) -> str | None:
        if self.threshold < 0:
            return None
        for known, name in self.by_hash:
            if hamming(known, hash_value) <= self.threshold:
                return name
        return None

    def add(self, sha: str, hash_value: int, name: str) -> None:
        self.by_sha.setdefault(sha, name)
        self.by_hash.append((hash_value, name))
