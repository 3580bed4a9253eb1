"""Where a model reference lives: a local folder, the hub cache, or (online only) the hub.

Why this exists: handing a hub id to `from_pretrained` on a machine without network (and
without `HF_HUB_OFFLINE=1`) makes huggingface_hub retry each file for minutes before it
fails. So the decision is made here, up front, from the disk alone:

1. a folder that holds the files the model needs -> that folder;
2. a hub id whose files are all in the local hub cache -> that cached snapshot (read from
   disk, `try_to_load_from_cache` does no network call);
3. offline (`HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE`, or huggingface.co not reachable in
   one short connect) -> `None` at once: the caller raises its one "not on disk" message;
4. else one logged download (`snapshot_download`, the files needed only), no silent retry.

Loaders then always call `from_pretrained(<local folder>, local_files_only=True)`.
"""
from __future__ import annotations

import fnmatch
import os
import socket
from pathlib import Path
from typing import Callable, Iterable

HUB_HOST = "huggingface.co"


def offline() -> bool:
    """True when the user (or the tests) declared the machine offline."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def looks_like_repo_id(ref: str) -> bool:
    """`owner/name`, nothing that reads as a file path."""
    ref = ref.strip()
    return (ref.count("/") == 1 and not ref.startswith((".", "/", "~")) and "\\" not in ref
            and ":" not in ref and all(part.strip() for part in ref.split("/")))


def missing_files(folder: Path, required: Iterable[str]) -> list[str]:
    """The patterns of `required` (exact names or globs like `*.safetensors`) with no match."""
    folder = Path(folder)
    if not folder.is_dir():
        return list(required)
    names = [p.name for p in folder.iterdir() if p.is_file()]
    return [pat for pat in required if not fnmatch.filter(names, pat)]


def cached_snapshot(repo_id: str, required: Iterable[str]) -> Path | None:
    """The hub-cache snapshot folder of `repo_id` when it holds every required file."""
    from huggingface_hub import try_to_load_from_cache

    required = list(required)
    exact = [r for r in required if not any(c in r for c in "*?[")]
    anchor = exact[0] if exact else "config.json"
    try:
        hit = try_to_load_from_cache(repo_id, anchor)  # a file path, a "known missing" marker or None
    except Exception:  # noqa: BLE001 - a malformed id is simply "not cached"
        return None
    if not isinstance(hit, str):
        return None
    folder = Path(hit).parent
    return folder if not missing_files(folder, required) else None


def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the hub, no retry: answers "is this machine online?" quickly."""
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def find_or_fetch(repo_id: str, required: Iterable[str], patterns: Iterable[str],
                  log: Callable[[str], None] | None = None) -> Path | None:
    """Local snapshot of `repo_id`, downloading `patterns` once if online; None if impossible."""
    required = list(required)
    local = cached_snapshot(repo_id, required)
    if local is not None:
        return local
    if offline() or not hub_reachable():
        return None
    from huggingface_hub import snapshot_download

    if log is not None:
        log(repo_id)
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=list(patterns)))
    except Exception:  # noqa: BLE001 - 404, gated repo, connection lost: "cannot be downloaded now"
        return None
    return folder if not missing_files(folder, required) else None
