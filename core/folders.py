"""The one folder scanner for user data (images to import, upscale, stylise, classify).

`walk_files(folder)` lists the visible files under a folder, in natural order, with one
policy for symbolic links, whoever scans:

- a link whose target stays inside the folder is kept (a file link is listed, a folder
  link is walked once);
- a link that leaves the folder (to `/etc/passwd`, to an image elsewhere) is skipped: a
  scan never opens, hashes or imports what the user did not put in that folder;
- a link loop (`a -> b -> a`, or a folder link to one of its parents) and a broken link
  are skipped;
- an unreadable sub-folder is skipped, the rest of the scan goes on.

Each skip is reported to `on_skip(path, reason)` (reason: `link_outside`, `link_loop`,
`link_broken`, `unreadable`), by default a warning in the Python log; `job_reporter(job)`
turns them into translated warnings in a job's log (`media.skip.*`). Hidden names
(leading dot) are never listed. Model folders (weights) are not scanned through here:
sharing them by links across tools is common and they are only read.
"""
from __future__ import annotations

import errno
import logging
import os
import re
from pathlib import Path
from typing import Callable, Iterable

SkipFn = Callable[[Path, str], None]
REASONS = ("link_outside", "link_loop", "link_broken", "unreadable")
_log = logging.getLogger("studio.folders")


def _log_skip(path: Path, reason: str) -> None:
    _log.warning("skipped %s (%s)", path, reason)


def natural_key(rel: Path) -> list:
    # frame_2 before frame_10: image sequences come out in the order they were made
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", rel.as_posix())]


def _inside(real: Path, base: Path) -> bool:
    return real == base or base in real.parents


def walk_files(folder: str | os.PathLike, recursive: bool = True, on_skip: SkipFn | None = None,
               within: str | os.PathLike | None = None, suffixes: Iterable[str] | None = None) -> list[Path]:
    """Visible files under `folder` (see the module docstring), sorted naturally.

    `within`: the folder links must stay in (default `folder` itself; e.g. a classifier's
    dataset root when scanning one class folder). `suffixes`: keep only these extensions
    (lower case, with the dot)."""
    root = Path(folder)
    skip = on_skip or _log_skip
    exts = {s.lower() for s in suffixes} if suffixes is not None else None
    try:
        base = Path(os.path.realpath(within if within is not None else root, strict=True))
        real_root = Path(os.path.realpath(root, strict=True))
        root_stat = os.stat(real_root)
    except OSError as exc:
        skip(root, "link_loop" if exc.errno == errno.ELOOP else "unreadable")
        return []
    if not _inside(real_root, base):
        skip(root, "link_outside")
        return []
    seen = {(root_stat.st_dev, root_stat.st_ino)}
    found: list[Path] = []
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            skip(current, "unreadable")
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                if entry.is_symlink():
                    try:
                        real = Path(os.path.realpath(path, strict=True))
                    except OSError as exc:
                        skip(path, "link_loop" if exc.errno == errno.ELOOP else "link_broken")
                        continue
                    if not _inside(real, base):
                        skip(path, "link_outside")
                        continue
                if entry.is_dir():  # follows an (inside) link
                    if not recursive:
                        continue
                    st = entry.stat()
                    key = (st.st_dev, st.st_ino)
                    if key in seen:  # a link back to a folder already walked (or one of its parents)
                        if entry.is_symlink() and _inside(path.parent.resolve(), Path(os.path.realpath(path))):
                            skip(path, "link_loop")
                        continue
                    seen.add(key)
                    stack.append(path)
                elif entry.is_file() and (exts is None or path.suffix.lower() in exts):
                    found.append(path)
            except OSError:
                skip(path, "unreadable")
    return sorted(found, key=lambda p: natural_key(p.relative_to(root)))


def job_reporter(job, extra: SkipFn | None = None) -> SkipFn:
    """An `on_skip` that writes a translated warning in the job's log (and calls `extra`)."""
    def report(path: Path, reason: str) -> None:
        from core.safetext import safe_text

        job.warning(job.t(f"media.skip.{reason}", path=safe_text(path)))
        if extra is not None:
            extra(path, reason)
    return report
