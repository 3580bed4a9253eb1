"""File-system primitives every writer shares: atomic commits with the usual permissions,
hidden temp siblings, "is this a real, non-empty file", "never write over a source".

A leaf module (it imports only core.errors), so core.media, core.media_image and
core.media_video all build on it without importing each other in a circle; `core.media`
re-exports these names, the import point modules use.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union

from core.errors import StudioError

PathLike = Union[str, os.PathLike]
_UMASK = os.umask(0o022)  # read once at import (os.umask can only be read by setting it)
os.umask(_UMASK)


def require_file(path: PathLike) -> Path:
    """The path of an existing, non-empty file, else StudioError media.not_found / media.empty."""
    p = Path(path)
    if not p.is_file():
        raise StudioError("media.not_found", path=p.name)
    if p.stat().st_size == 0:
        raise StudioError("media.empty", path=p.name)
    return p


def refuse_overwrite(out: PathLike, *protect) -> None:
    """StudioError media.overwrite_source if `out` is (or links to) a protected path.

    Each argument may be None, a path, or an iterable of paths.
    """
    items: list = []
    for p in protect:
        items.extend([p] if isinstance(p, (str, os.PathLike)) else (p or []))
    o = Path(out)
    for src in (Path(p) for p in items if p):
        with contextlib.suppress(OSError):
            if o.resolve() == src.resolve() or (o.exists() and os.path.samefile(o, src)):
                raise StudioError("media.overwrite_source", path=o.name)


def commit_file(tmp: PathLike, final: PathLike) -> None:
    """fsync `tmp`, rename it onto `final` (atomic on one file system), fsync the folder.

    The file gets the usual permissions (the replaced file's, else 0666 minus the umask)
    whatever the writer left: mkstemp and safetensors both create 0600 files, which other
    tools of the same user (or a shared ComfyUI) then cannot read."""
    with contextlib.suppress(OSError):
        os.chmod(tmp, Path(final).stat().st_mode & 0o777 if Path(final).exists() else 0o666 & ~_UMASK)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX only)
        dfd = os.open(Path(final).parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temp path next to `path`; on success fsync it and rename it onto `path`.

    On an exception the temp file is removed and `path` is left untouched.
    """
    tmp = temp_sibling(path)
    try:
        yield tmp
        commit_file(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def temp_sibling(path: PathLike, tag: str = "part") -> Path:
    """Reserve a hidden temp file next to `path`, keeping its extension (muxers read it)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.stem[:60]}.", suffix=f".{tag}{final.suffix}",
                                dir=final.parent)
    os.close(fd)  # mkstemp's 0600 is fixed by commit_file
    return Path(name)
