"""Find and load an SDXL base model (shared by every tab that runs SDXL).

A base reference is, in order: a diffusers folder (has model_index.json), a single
`.safetensors`/`.ckpt` checkpoint (`StableDiffusionXLPipeline.from_single_file`), a name
found under CHECKPOINTS_DIR or MODELS_DIR, or a hub id. Offline or missing, the user gets
`StudioError("lora.base_missing")` naming what is missing and where to put it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import StudioError

SINGLE_FILE_EXT = (".safetensors", ".ckpt")


@dataclass
class BaseRef:
    kind: str  # "folder" | "file" | "hub"
    ref: str  # resolved path or hub id
    fingerprint: str  # part of every cache key: changes when the weights change


def _fingerprint(path: Path) -> str:
    files = [path] if path.is_file() else sorted(path.rglob("*.safetensors")) + sorted(path.rglob("*.bin"))
    h = hashlib.sha256(str(path.resolve()).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def resolve_base(ref: str, ctx: Any) -> BaseRef:
    """Turn what the user typed (or the config default) into a loadable reference."""
    ref = (ref or str(ctx.config.get("DEFAULT_SDXL_MODEL_FOR_LORA", ""))).strip()
    if not ref:
        raise StudioError("lora.base_missing", name="(none)", folder=str(ctx.path("CHECKPOINTS_DIR")))
    candidates = [Path(ref).expanduser()]
    for key in ("CHECKPOINTS_DIR", "MODELS_DIR"):
        candidates.append(ctx.path(key) / ref)
    for c in candidates:
        if c.is_dir() and (c / "model_index.json").is_file():
            return BaseRef("folder", str(c.resolve()), _fingerprint(c))
        if c.is_file() and c.suffix.lower() in SINGLE_FILE_EXT:
            return BaseRef("file", str(c.resolve()), _fingerprint(c))
    looks_like_hub = ref.count("/") == 1 and not ref.startswith((".", "/", "~")) and "\\" not in ref
    if not looks_like_hub:
        raise StudioError("lora.base_missing", name=ref, folder=str(ctx.path("CHECKPOINTS_DIR")))
    return BaseRef("hub", ref, hashlib.sha256(ref.encode()).hexdigest()[:16])


def load_pipeline(base: BaseRef, ctx: Any, dtype=None):
    """Load a StableDiffusionXLPipeline on CPU (components are moved by the trainer)."""
    import torch
    from diffusers import StableDiffusionXLPipeline

    dtype = dtype or torch.float32
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    try:
        if base.kind == "folder":
            return StableDiffusionXLPipeline.from_pretrained(base.ref, dtype=dtype, local_files_only=True)
        if base.kind == "file":
            return StableDiffusionXLPipeline.from_single_file(base.ref, dtype=dtype)
        return StableDiffusionXLPipeline.from_pretrained(base.ref, dtype=dtype, local_files_only=offline)
    except StudioError:
        raise
    except OSError as exc:
        # huggingface_hub raises OSError subclasses for "not cached and offline" / 404
        if base.kind == "file":  # the file is there; its component configs are not
            raise StudioError("lora.single_file_config", name=Path(base.ref).name) from exc
        raise StudioError("lora.base_missing", name=base.ref,
                          folder=str(ctx.path("CHECKPOINTS_DIR"))) from exc
    except Exception as exc:  # noqa: BLE001 - a damaged or non-SDXL checkpoint
        raise StudioError("lora.base_unreadable", name=Path(base.ref).name,
                          error=f"{type(exc).__name__}: {exc}"[:300]) from exc


def read_unet_config(base: BaseRef) -> dict | None:
    """The UNet config of a diffusers folder (None for single files / hub ids)."""
    import json

    if base.kind != "folder":
        return None
    f = Path(base.ref) / "unet" / "config.json"
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None
