"""Model management: one place that picks the device and dtype, knows what is loaded by
whom, unloads it, frees VRAM, and recognises out-of-memory errors.

Engines ask `ctx.models.load(owner, key, loader)`; the runner calls `release(job_id)`
after every job, so a job never leaks weights. `unload_others(owner)` is what the LoRA
trainer calls before it loads SDXL: whatever other modules keep cached goes first.
Also: safe weight loading (`load_state_dict_file`): safetensors, else
`torch.load(weights_only=True)`; never a pickle that can run code.
"""
from __future__ import annotations

import gc
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from core.errors import StudioError


def pick_device(preferred: str = "auto") -> str:
    import torch

    if preferred not in ("", "auto"):
        return preferred
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, precision: str = "auto"):
    """bf16 where the device supports it, else fp16 on GPU, fp32 on CPU."""
    import torch

    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision in table:
        if precision == "bf16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
            return torch.float16
        return table[precision]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


@dataclass
class _Loaded:
    owner: str
    key: str
    obj: Any
    keep: bool  # kept across jobs (a cache) until someone needs the memory


class ModelManager:
    def __init__(self, device: str = "auto", precision: str = "auto") -> None:
        self.device = pick_device(device)
        self.precision = precision
        self._lock = threading.RLock()
        self._loaded: dict[tuple[str, str], _Loaded] = {}

    def device_name(self) -> str:
        if self.device.startswith("cuda"):
            import torch

            return f"cuda:{torch.cuda.get_device_name(0)}"
        return self.device

    def dtype(self, precision: str | None = None):
        return pick_dtype(self.device, precision or self.precision)

    # -- what is loaded ------------------------------------------------------
    def load(self, owner: str, key: str, loader: Callable[[], Any], keep: bool = False) -> Any:
        """Return the object for (owner, key), loading it once. `keep` survives job release."""
        with self._lock:
            hit = self._loaded.get((owner, key))
            if hit is not None:
                return hit.obj
        obj = loader()
        with self._lock:
            self._loaded[(owner, key)] = _Loaded(owner, key, obj, keep)
        return obj

    def loaded(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._loaded)

    def release(self, owner: str, include_kept: bool = False) -> int:
        with self._lock:
            keys = [k for k, v in self._loaded.items() if v.owner == owner and (include_kept or not v.keep)]
            for k in keys:
                del self._loaded[k]
        self.free_memory()
        return len(keys)

    def unload_others(self, owner: str) -> int:
        """Unload everything not owned by `owner` (kept caches included) and free VRAM."""
        with self._lock:
            keys = [k for k, v in self._loaded.items() if v.owner != owner]
            for k in keys:
                del self._loaded[k]
        self.free_memory()
        return len(keys)

    def free_memory(self) -> None:
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
                torch.cuda.ipc_collect()
        except Exception:  # noqa: BLE001
            pass

    # -- memory facts --------------------------------------------------------------
    def memory(self) -> dict[str, float]:
        """Device memory in MiB (free/total/allocated/peak); RAM on CPU."""
        try:
            import torch

            if self.device.startswith("cuda") and torch.cuda.is_available():
                free, total = torch.cuda.mem_get_info()
                return {"free_mb": free / 2**20, "total_mb": total / 2**20,
                        "allocated_mb": torch.cuda.memory_allocated() / 2**20,
                        "peak_mb": torch.cuda.max_memory_allocated() / 2**20}
        except Exception:  # noqa: BLE001
            pass
        import psutil

        vm = psutil.virtual_memory()
        return {"free_mb": vm.available / 2**20, "total_mb": vm.total / 2**20,
                "allocated_mb": (vm.total - vm.available) / 2**20, "peak_mb": 0.0}

    @staticmethod
    def is_oom(exc: BaseException) -> bool:
        try:
            import torch

            if isinstance(exc, torch.cuda.OutOfMemoryError):
                return True
        except Exception:  # noqa: BLE001
            pass
        if isinstance(exc, MemoryError):
            return True
        text = str(exc).lower()
        return "out of memory" in text or "cuda error: out of memory" in text


def load_state_dict_file(path: str | Path) -> dict:
    """Load weights safely: safetensors, or a pickle read with weights_only=True.

    Raises StudioError('models.bad_weights') with the file named when the file is not a
    weights file, is truncated, or holds code (weights_only refuses it).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise StudioError("models.missing_file", path=str(path))
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except StudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything here means "not a usable weights file"
        raise StudioError("models.bad_weights", path=path.name, error=f"{type(exc).__name__}: {exc}"[:300]) from exc
