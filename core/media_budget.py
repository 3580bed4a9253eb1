"""Memory budget of whole-image work: refuse one file clearly instead of dying mid-job.

A valid 12000x12000 PNG upscaled 4x needs ~26 GB of arrays; a fast style network on it
~160 GB of activations. Allocating that either kills the process (the OS OOM killer takes
the whole folder job with it) or raises deep inside NumPy/torch. Modules estimate what one
file needs (their own bytes-per-pixel figures, measured, see docs/RELIABILITY.md) and call
`require_fits` before decoding or allocating: over the budget, a `StudioError` naming the
file, its size, the need and the limit is raised, and the folder job goes on with the
next file.

The budget is a fraction of the memory available now (RAM, or free memory of a CUDA
device), or a fixed number of bytes from `CYBERBILL_MAX_WORK_BYTES` / `set_work_budget()`
(tests, shared machines).
"""
from __future__ import annotations

import os

from core.errors import StudioError

# the share of the available memory one file's work may take (the rest: the app, the model,
# other jobs' data, the allocator's slack)
BUDGET_FRACTION = 0.7
_FIXED: int | None = int(os.environ["CYBERBILL_MAX_WORK_BYTES"]) if os.environ.get("CYBERBILL_MAX_WORK_BYTES") \
    else None


def set_work_budget(nbytes: int | None) -> None:
    """Fix the budget to `nbytes` for every later check (None: automatic again)."""
    global _FIXED
    _FIXED = None if nbytes is None else int(nbytes)


def available_bytes(device: str = "cpu") -> float:
    """Free memory now: CUDA's free bytes for a cuda device, else the RAM the OS can give."""
    if str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            free, _total = torch.cuda.mem_get_info(torch.device(device))
            return float(free)
    try:
        import psutil

        return float(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - no psutil: assume a modest machine
        return 2.0 * 2**30


def work_budget(device: str = "cpu") -> int:
    """Bytes one file's work may use on `device` (fixed budget, else a share of what is free)."""
    if _FIXED is not None:
        return _FIXED
    return int(available_bytes(device) * BUDGET_FRACTION)


def fmt_bytes(n: float) -> str:
    """1536 -> '1.5 KB', 28e9 -> '28.0 GB' (decimal units, as file managers show)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"  # pragma: no cover - loop always returns


def require_fits(name: str, size_wh: tuple[int, int], need_bytes: float, device: str = "cpu",
                 key: str = "media.over_budget", **extra: object) -> None:
    """Raise `StudioError(key, path, size, need, limit, **extra)` when `need_bytes` is over the
    budget of `device`; `key` lets a module add its own hint (e.g. a smaller max side)."""
    limit = work_budget(device)
    if need_bytes > limit:
        raise StudioError(key, path=name, size=f"{size_wh[0]}x{size_wh[1]}", need=fmt_bytes(need_bytes),
                          limit=fmt_bytes(limit), **extra)
