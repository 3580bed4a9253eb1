"""System facts for the monitoring panel and `GET /api/system`: device, memory, queue,
jobs by status, disk used by the studio's output folders."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def folder_size_mb(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return round(total / 2**20, 2)


def system_info(ctx) -> dict:
    import torch

    disk = {key: folder_size_mb(ctx.path(key)) for key in ("OUTPUTS_DIR", "LORAS_DIR", "LORA_PROJECTS_DIR")}
    disk["jobs"] = folder_size_mb(ctx.jobs.jobs_dir) if ctx.jobs.jobs_dir.exists() else 0.0
    return {
        "device": ctx.models.device_name(),
        "dtype": str(ctx.models.dtype()).replace("torch.", ""),
        "memory": {k: round(v, 1) for k, v in ctx.models.memory().items()},
        "loaded_models": [f"{o}:{k}" for o, k in ctx.models.loaded()],
        "jobs_by_status": ctx.store.count_by_status(),
        "mean_duration_s": ctx.store.durations(),
        "queued": ctx.jobs.queued(),
        "running": ctx.jobs.running(),
        "disk_mb": disk,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "modules": [m.id for m in ctx.modules],
    }
