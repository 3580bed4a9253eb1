"""Where a run writes its LoRA files, and the rule that a new run never replaces one silently.

`<name>.safetensors` is the final (or stopped) file; save-every-N steps/epochs also writes
`<name>-000500.safetensors` (kohya's naming, the optimizer step padded to 6 digits) next to
it. A new run whose name already has files there refuses unless `overwrite` is set; a
resumed run (`resume_from`) continues the same files without asking.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.errors import StudioError


def final_path(loras_dir: Path, name: str) -> Path:
    return Path(loras_dir) / f"{name}.safetensors"


def step_path(loras_dir: Path, name: str, step: int) -> Path:
    return Path(loras_dir) / f"{name}-{step:06d}.safetensors"


def existing(loras_dir: Path, name: str) -> list[Path]:
    """The files of a run called `name` already in `loras_dir` (final first)."""
    loras_dir = Path(loras_dir)
    if not loras_dir.is_dir():
        return []
    step_re = re.compile(re.escape(name) + r"-\d{6,}\.safetensors")
    found = [final_path(loras_dir, name)] if final_path(loras_dir, name).is_file() else []
    return found + sorted(p for p in loras_dir.iterdir() if step_re.fullmatch(p.name) and p.is_file())


def check_free(params: Any, loras_dir: Path) -> None:
    """Refuse a new run that would replace files of an earlier one (unless asked to)."""
    if params.overwrite or params.resume_from:
        return
    files = existing(loras_dir, params.name)
    if files:
        raise StudioError("lora.output_exists", path=str(files[0]), name=params.name)
