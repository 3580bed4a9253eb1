"""Find and load an SDXL base model (shared by every tab that runs SDXL).

A base reference is, in order: a diffusers folder (has model_index.json), a single
`.safetensors`/`.ckpt` checkpoint (SGM layout as A1111/Forge, kohya and ComfyUI save it,
loaded offline with the shipped configs, see single_file.py), a name found under
CHECKPOINTS_DIR or MODELS_DIR, or a hub id. A single file is inspected from its header
first: a damaged file, or one that is another model family (SD1/SD2/refiner/Flux/SD3, a LoRA,
a VAE), is refused with a message naming what it is. Missing: `lora.base_missing`, naming
what is missing and where to put it. A separate VAE (file or folder) replaces the one inside.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import StudioError

SINGLE_FILE_EXT = (".safetensors", ".ckpt")


@dataclass
class BaseRef:
    kind: str  # "folder" | "file" | "hub"
    ref: str  # resolved path or hub id
    fingerprint: str  # part of every cache key: changes when the weights change
    facts: dict = field(default_factory=dict)  # detect.FileInfo.to_dict() of a file/folder

    @property
    def v_pred(self) -> bool:
        return bool(self.facts.get("v_pred"))

    @property
    def ztsnr(self) -> bool:
        return bool(self.facts.get("ztsnr"))


def _fingerprint(path: Path) -> str:
    files = [path] if path.is_file() else sorted(path.rglob("*.safetensors")) + sorted(path.rglob("*.bin"))
    h = hashlib.sha256(str(path.resolve()).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def refuse_if_not_sdxl(info: Any) -> None:
    """A clear refusal for a damaged file or another model family (nothing is loaded)."""
    name = Path(info.path).name
    if info.kind == "damaged":
        raise StudioError("lora.base_damaged", name=name, error=info.error)
    if info.kind != "sdxl":
        raise StudioError(f"lora.base_not_sdxl.{info.kind}", name=name)


def resolve_base(ref: str, ctx: Any) -> BaseRef:
    """Turn what the user typed (or the config default) into a loadable reference."""
    from core.sdxl.detect import inspect_file, inspect_folder

    ref = (ref or str(ctx.config.get("DEFAULT_SDXL_MODEL_FOR_LORA", ""))).strip()
    if not ref:
        raise StudioError("lora.base_missing", name="(none)", folder=str(ctx.path("CHECKPOINTS_DIR")))
    candidates = [Path(ref).expanduser()]
    for key in ("CHECKPOINTS_DIR", "MODELS_DIR"):
        candidates.append(ctx.path(key) / ref)
    for c in candidates:
        if c.is_dir() and (c / "model_index.json").is_file():
            return BaseRef("folder", str(c.resolve()), _fingerprint(c), inspect_folder(c).to_dict())
        if c.is_file() and c.suffix.lower() in SINGLE_FILE_EXT:
            info = inspect_file(c)
            refuse_if_not_sdxl(info)
            return BaseRef("file", str(c.resolve()), _fingerprint(c), info.to_dict())
    looks_like_hub = ref.count("/") == 1 and not ref.startswith((".", "/", "~")) and "\\" not in ref
    if not looks_like_hub:
        raise StudioError("lora.base_missing", name=ref, folder=str(ctx.path("CHECKPOINTS_DIR")))
    return BaseRef("hub", ref, hashlib.sha256(ref.encode()).hexdigest()[:16])


def resolve_vae(ref: str, ctx: Any) -> Path | None:
    """A separate VAE: a .safetensors file, a diffusers AutoencoderKL folder, or a name under
    VAE_DIR / CHECKPOINTS_DIR / MODELS_DIR. None when `ref` is empty."""
    ref = (ref or "").strip()
    if not ref:
        return None
    candidates = [Path(ref).expanduser()]
    for key in ("VAE_DIR", "CHECKPOINTS_DIR", "MODELS_DIR"):
        if key == "VAE_DIR" and not ctx.config.get(key):
            candidates.append(ctx.path("MODELS_DIR") / "vae" / ref)
            continue
        candidates.append(ctx.path(key) / ref)
    for c in candidates:
        if c.is_file() and c.suffix.lower() in SINGLE_FILE_EXT:
            return c.resolve()
        if c.is_dir() and ((c / "config.json").is_file() or (c / "vae" / "config.json").is_file()):
            return c.resolve()
    raise StudioError("lora.vae_missing", name=ref)


def vae_fingerprint(path: Path | None) -> str:
    return _fingerprint(path) if path is not None else ""


def load_vae(path: Path):
    """An AutoencoderKL from a separate VAE file (LDM or diffusers keys) or folder, in fp32."""
    import torch
    from diffusers import AutoencoderKL

    from core.sdxl import single_file as sf
    from core.sdxl.detect import inspect_file

    try:
        if path.is_dir():
            folder = path / "vae" if (path / "vae" / "config.json").is_file() else path
            return AutoencoderKL.from_pretrained(str(folder), torch_dtype=torch.float32, local_files_only=True)
        info = inspect_file(path)
        if info.kind == "damaged":
            raise StudioError("lora.vae_damaged", name=path.name, error=info.error)
        if info.kind == "vae" and any(k.startswith("encoder.down_blocks.") for k in info.shapes):
            conf = {k: v for k, v in sf.vae_config_diffusers(info.shapes).items() if not k.startswith("_")}
            return sf._build(AutoencoderKL, conf, sf.read_tensors(path, ("",)), "vae")  # diffusers keys already
        if not info.has_vae:
            raise StudioError("lora.vae_not_vae", name=path.name)
        prefix = "first_stage_model." if any(k.startswith("first_stage_model.") for k in info.shapes) else ""
        return sf.load_vae_from(path, info.shapes, prefix)
    except StudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - wrong shapes / keys: say which file
        raise StudioError("lora.vae_damaged", name=path.name, error=f"{type(exc).__name__}: {exc}"[:300]) from exc


def _from_single_file(base: BaseRef, vae_path: Path | None):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    from core.sdxl import single_file as sf
    from core.sdxl.detect import inspect_file
    from core.sdxl.tokenizers import sdxl_tokenizers

    info = inspect_file(base.ref)
    refuse_if_not_sdxl(info)
    if not info.has_vae and vae_path is None:
        raise StudioError("lora.vae_needed", name=Path(base.ref).name)
    unet = sf.load_unet(base.ref, info.shapes)
    te1, te2 = sf.load_text_encoders(base.ref, info.shapes)
    vae = load_vae(vae_path) if vae_path is not None else sf.load_vae_from(base.ref, info.shapes)
    tok1, tok2 = sdxl_tokenizers()
    sched = EulerDiscreteScheduler.from_config(sf.scheduler_config())
    return StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok1,
                                     tokenizer_2=tok2, unet=unet, scheduler=sched)


def load_pipeline(base: BaseRef, ctx: Any, dtype=None, vae: Path | None = None):
    """Load a StableDiffusionXLPipeline on CPU (components are moved by the caller).

    `vae`: a separate VAE (see resolve_vae) used instead of the base's own."""
    import torch
    from diffusers import StableDiffusionXLPipeline

    dtype = dtype or torch.float32
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    try:
        if base.kind == "file":
            pipe = _from_single_file(base, vae)
            return pipe.to(dtype=dtype) if dtype != torch.float32 else pipe
        kw = {"vae": load_vae(vae)} if vae is not None else {}
        if base.kind == "folder":
            return StableDiffusionXLPipeline.from_pretrained(base.ref, dtype=dtype, local_files_only=True, **kw)
        return StableDiffusionXLPipeline.from_pretrained(base.ref, dtype=dtype, local_files_only=offline, **kw)
    except StudioError:
        raise
    except OSError as exc:
        # huggingface_hub raises OSError subclasses for "not cached and offline" / 404
        if base.kind == "file":  # the header read, the tensors did not: a truncated/damaged file
            raise StudioError("lora.base_damaged", name=Path(base.ref).name, error=str(exc)[:300]) from exc
        raise StudioError("lora.base_missing", name=base.ref,
                          folder=str(ctx.path("CHECKPOINTS_DIR"))) from exc
    except Exception as exc:  # noqa: BLE001 - a damaged or non-SDXL checkpoint
        raise StudioError("lora.base_unreadable", name=Path(base.ref).name,
                          error=f"{type(exc).__name__}: {exc}"[:300]) from exc


def read_unet_config(base: BaseRef) -> dict | None:
    """The UNet config of a diffusers folder, or of a single file (from its shapes); None for
    hub ids."""
    import json

    if base.kind == "file":
        from core.sdxl import single_file as sf
        from core.sdxl.detect import inspect_file

        info = inspect_file(base.ref)
        try:
            return sf.unet_config(info.shapes, info.shapes.get(sf.TE2 + "text_projection", [0, 1280])[1])
        except (KeyError, IndexError, TypeError):
            return None
    if base.kind != "folder":
        return None
    f = Path(base.ref) / "unet" / "config.json"
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None
