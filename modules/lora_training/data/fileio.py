"""Small file helpers for the data pipeline: atomic writes and tolerant caption reading.

Every output (prepared image, caption, manifest) is written to a temporary name in the
same folder and renamed, so a crash or a full disk never leaves a half-written file that
the trainer would later choke on. Caption files come from users and other tools in any
encoding: `read_caption` tries UTF-8 first and falls back, telling the caller which
encoding it used so the importer can report it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core.safetext import dumps

# Tried in order; latin-1 maps every byte, so the last step never fails.
_FALLBACK_ENCODINGS = ("cp1252", "latin-1")


def atomic_target(path: Path):
    """Context manager: a temp path next to `path`, renamed onto it on success."""
    from core.media import atomic_path

    return atomic_path(path)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def write_json_atomic(path: Path, data: Any) -> None:
    # core.safetext: a source file name that is not UTF-8 must not abort the import half way
    write_text_atomic(path, dumps(data, indent=2, ensure_ascii=False, sort_keys=False))


def decode_text(raw: bytes) -> tuple[str, str]:
    """Decode caption bytes: UTF-8 (BOM or not), UTF-16 with BOM, then legacy fallbacks.

    Returns (text, encoding). An encoding other than utf-8/utf-16 means a fallback was
    needed and the caller should warn: accents may be wrong.
    """
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    for enc in _FALLBACK_ENCODINGS:
        try:
            return raw.decode(enc), enc
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1", errors="replace"), "latin-1"  # pragma: no cover - latin-1 cannot fail


def clean_caption(text: str) -> str:
    """One line, single spaces, no NUL: what the SDXL tokenizers and the editor expect."""
    text = text.replace("\x00", " ")
    return " ".join(text.split())


def read_caption(path: Path) -> tuple[str, str]:
    """(cleaned caption, encoding used) of a .txt caption file."""
    text, enc = decode_text(Path(path).read_bytes())
    return clean_caption(text), enc
