"""User-typed names and relative paths turned into paths inside a root, or refused.

Every place where a user types where something is written (an output folder or file, a
project, concept, LoRA, classifier or network name) goes through here, from the UI, the
CLI and the REST API alike:

- `check_name(text)` / `check_relative(text)`: lexical checks, no file system. Used as
  pydantic validators (`SafeName`, `RelPath`) so a bad value is a 422 naming the field,
  with the reason translated (`paths.*` in locales/<lang>/paths.json).
- `inside(root, text)` / `name_inside(root, text)`: the same checks, then the path under
  `root`, refused when a symlink already on disk would lead it out of `root`, or when a
  name that differs only by Unicode normalisation already exists there.

Refused: empty names, absolute paths (unless they already lie inside the root), `~`, `.`,
`..` and hidden (leading-dot) components, NUL, control characters, bidi overrides and
zero-width characters, lone surrogates (not valid UTF-8), backslashes and the characters
Windows forbids (`<>:"|?*`), trailing dots or spaces, Windows reserved names (CON, NUL,
COM1, ... with any extension), components over 255 bytes in UTF-8 and paths over 4096 bytes.
Names are normalised to NFC; an existing entry whose NFC form is the same but whose bytes
differ is refused rather than silently sharing (or shadowing) that entry.
"""
from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from core.errors import StudioError

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
_RESERVED = re.compile(r"^(con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.IGNORECASE)
_WINDOWS_CHARS = frozenset('<>:"|?*\\')
_BIDI = frozenset({0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)})
_INVISIBLE = frozenset({0x00AD, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x2028, 0x2029})


class PathRefused(StudioError, ValueError):
    """A user-typed name or path that cannot be used. A ValueError too, so that pydantic
    reports it on the field (the API then shows the translated reason, see core.api)."""


def shown(text: str, limit: int = 80) -> str:
    """The text as it can be printed in a message: invisible characters escaped, cut."""
    out = []
    for ch in str(text)[:limit]:
        cat = unicodedata.category(ch)
        if cat[0] in "CZ" and ch != " " or ord(ch) in _BIDI:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out) + ("…" if len(str(text)) > limit else "")


def _refuse(reason: str, text: str, what: str) -> PathRefused:
    return PathRefused(f"paths.{reason}", what=what, name=shown(text))


def _check_component(part: str, text: str, what: str) -> None:
    if part in (".", ".."):
        raise _refuse("traversal" if part == ".." else "dot", text, what)
    if part.startswith("."):
        raise _refuse("dot", text, what)
    for ch in part:
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            raise _refuse("encoding", text, what)
        if code in _BIDI:
            raise _refuse("bidi", text, what)
        if code in _INVISIBLE or unicodedata.category(ch) == "Cc":
            raise _refuse("control", text, what)
        if ch in _WINDOWS_CHARS:
            raise _refuse("bad_char", text, what)
    if part != part.strip() or part.endswith("."):
        raise _refuse("trailing", text, what)
    if _RESERVED.match(part):
        raise _refuse("reserved", text, what)
    if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
        raise _refuse("too_long", text, what)


def _first_checks(text: object, what: str) -> str:
    raw = "" if text is None else str(text)
    if "\x00" in raw:
        raise _refuse("nul", raw, what)
    stripped = raw.strip()
    if not stripped:
        raise _refuse("empty", raw, what)
    if stripped.startswith("~"):
        raise _refuse("home", raw, what)
    if stripped.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", stripped):
        raise _refuse("absolute", raw, what)
    return unicodedata.normalize("NFC", stripped)


def check_name(text: object, what: str = "name") -> str:
    """One file or folder name (no separator), NFC-normalised; PathRefused otherwise."""
    name = _first_checks(text, what)
    if "/" in name:
        raise _refuse("separator", str(text), what)
    _check_component(name, str(text), what)
    return name


def check_relative(text: object, what: str = "path") -> str:
    """A relative path ('a/b/c.png', '/' as separator), NFC-normalised; PathRefused otherwise."""
    rel = _first_checks(text, what)
    parts = [p for p in rel.split("/") if p != ""]
    for part in parts:
        _check_component(part, str(text), what)
    rel = "/".join(parts)
    if len(rel.encode("utf-8")) > MAX_PATH_BYTES:
        raise _refuse("too_long", str(text), what)
    return rel


def _optional(check):
    def validate(value, info):
        return value if value is None or value == "" else check(value, info.field_name or "name")
    return validate


# Pydantic field types: empty (or None) means "the default place" and passes through.
SafeName = Annotated[str, AfterValidator(_optional(check_name))]
RelPath = Annotated[str, AfterValidator(_optional(check_relative))]


def _contained(base: Path, target: Path) -> bool:
    return target == base or base in target.parents


def _relative_to_root(root: Path, text: str, what: str) -> str:
    """An absolute path typed by a user is accepted only when it already lies in `root`."""
    raw = str(text).strip()
    if "\x00" in raw:
        raise _refuse("nul", raw, what)
    p = Path(raw)
    if not p.is_absolute():
        return raw
    for base in (root, root.resolve()):
        try:
            rel = p.relative_to(base).as_posix()
            return "" if rel == "." else rel
        except ValueError:
            continue
    raise _refuse("absolute", raw, what)


def _check_on_disk(root: Path, rel: str, text: str, what: str) -> Path:
    """`root/rel`, refused if a symlink leads out of root or a Unicode twin exists on the way."""
    base = root.resolve()
    current = root
    for part in rel.split("/"):
        if current.is_dir():
            try:
                twins = [e for e in os.listdir(current)
                         if e != part and unicodedata.normalize("NFC", e) == part]
            except OSError:
                twins = []
            if twins:
                raise PathRefused("paths.unicode_twin", what=what, name=shown(text), existing=shown(twins[0]))
        current = current / part
    if not _contained(base, current.resolve()):
        raise _refuse("outside", text, what)
    return current


def inside(root: str | os.PathLike, text: object, what: str = "path", allow_absolute: bool = True) -> Path:
    """The user's relative path (or an absolute one already inside `root`) under `root`."""
    root = Path(root)
    raw = "" if text is None else str(text)
    if allow_absolute:
        raw_rel = _relative_to_root(root, raw, what)
        if raw_rel == "" and raw.strip():  # the root itself, typed as an absolute path
            return root
    else:
        raw_rel = raw
    return _check_on_disk(root, check_relative(raw_rel, what), raw, what)


def name_inside(root: str | os.PathLike, text: object, what: str = "name") -> Path:
    """`root/<name>` for a single user-typed name (no separator), checked on disk too."""
    name = check_name(text, what)
    return _check_on_disk(Path(root), name, str(text), what)
