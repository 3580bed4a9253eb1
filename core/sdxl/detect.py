"""What a weights file is, from its keys and shapes only (no tensor is read).

A `.safetensors` header is 8 bytes of little-endian length then a JSON table of every
tensor's dtype/shape: reading it costs milliseconds even for a 7 GB checkpoint, so the
checkpoints folder can be listed with facts (SDXL base / refiner / SD1 / SD2 / Flux / SD3,
v-prediction, VAE inside, EMA, dtype) and a foreign or damaged file is refused with a
message naming what it is before anything is loaded. `.ckpt` files are opened with
`torch.load(weights_only=True, mmap=True)` (nothing executes, nothing is copied to RAM).
"""
from __future__ import annotations

import json
import struct
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

UNET = "model.diffusion_model."
VAE = "first_stage_model."
TE1 = "conditioner.embedders.0.transformer."
TE2 = "conditioner.embedders.1.model."
MAX_HEADER = 100 * 1024 * 1024  # the header of a real checkpoint is < 1 MB; more means damage

# kind -> trainable here; every other kind is refused with its own message
KINDS = ("sdxl", "sdxl_refiner", "sd1", "sd2", "flux", "sd3", "sdxl_unet", "lora", "vae", "unknown", "damaged")


@dataclass
class FileInfo:
    path: str
    kind: str  # one of KINDS
    trainable: bool = False
    v_pred: bool = False
    ztsnr: bool = False
    has_vae: bool = False
    has_ema: bool = False
    dtype: str = ""
    size_gb: float = 0.0
    tensors: int = 0
    error: str = ""  # why a damaged file could not be read
    shapes: dict = field(default_factory=dict, repr=False)  # key -> shape (not in to_dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("shapes")
        return d


class HeaderError(ValueError):
    """The file is not a readable safetensors / checkpoint file."""


def read_header(path: str | Path) -> tuple[dict[str, tuple[list[int], str]], dict]:
    """({key: (shape, dtype)}, metadata) of a safetensors file, from its header only."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise HeaderError("file shorter than a safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if n <= 1 or n > min(MAX_HEADER, size - 8):
            raise HeaderError(f"header length {n} does not fit a {size}-byte file")
        blob = f.read(n)
    try:
        table = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HeaderError(f"header is not valid JSON ({exc.__class__.__name__})") from exc
    if not isinstance(table, dict):
        raise HeaderError("header is not a table")
    meta = table.pop("__metadata__", None) or {}
    out, end = {}, 0
    for k, v in table.items():
        try:
            shape, dtype, (a, b) = list(v["shape"]), str(v["dtype"]), v["data_offsets"]
        except (KeyError, TypeError, ValueError) as exc:
            raise HeaderError(f"bad entry for {k!r}") from exc
        end = max(end, int(b))
        out[k] = (shape, dtype)
    if 8 + n + end > size:
        raise HeaderError(f"truncated: tensors need {8 + n + end} bytes, the file has {size}")
    return out, meta if isinstance(meta, dict) else {}


def torch_state_dict(path: str | Path) -> dict:
    """A `.ckpt`'s state dict, weights only (nothing executes); memory-mapped when the file is
    in the zip format, read normally for the legacy one."""
    import torch

    try:
        try:
            sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) serialization cannot be memory-mapped
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable pickle is "damaged" to the user
        raise HeaderError(f"{type(exc).__name__}: {exc}"[:200]) from exc
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise HeaderError("not a state dict")
    return sd


def _read_ckpt_shapes(path: Path) -> dict[str, tuple[list[int], str]]:
    sd = torch_state_dict(path)
    return {k: (list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in sd.items() if hasattr(v, "shape")}


def classify(shapes: dict[str, tuple[list[int], str]], meta: dict | None = None) -> dict:
    """kind and flags from keys/shapes (the rules are the published layouts' signatures)."""
    meta = meta or {}
    keys = shapes.keys()
    has = lambda p: any(k.startswith(p) for k in keys)  # noqa: E731
    pred = str(meta.get("modelspec.prediction_type", "")).lower()
    flags = dict(v_pred="v_pred" in keys or pred.startswith("v"), ztsnr="ztsnr" in keys,
                 has_vae=has(VAE) or (has("encoder.down.") and has("decoder.up.")),
                 has_ema=sum(k.startswith("model_ema.") for k in keys) > 100)
    if has("double_blocks.") or has(UNET + "double_blocks.") or has("single_transformer_blocks."):
        return dict(flags, kind="flux")
    if has("joint_blocks.") or has(UNET + "joint_blocks."):
        return dict(flags, kind="sd3")
    if any(".lora_down." in k or ".lora_A." in k or k.startswith(("lora_unet_", "lora_te")) for k in keys):
        return dict(flags, kind="lora")
    if has(UNET):
        ctx = shapes.get(UNET + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight",
                         shapes.get(UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"))
        if has(TE1) and has(TE2):
            return dict(flags, kind="sdxl")
        if has("conditioner.embedders.0.model."):
            return dict(flags, kind="sdxl_refiner")
        if has("cond_stage_model.transformer."):
            return dict(flags, kind="sd1")
        if has("cond_stage_model.model."):
            return dict(flags, kind="sd2")
        if has(UNET + "label_emb."):  # SDXL UNet without its text encoders
            return dict(flags, kind="sdxl_unet")
        width = ctx[0][1] if ctx else 0
        return dict(flags, kind={768: "sd1", 1024: "sd2", 2048: "sdxl_unet", 1280: "sdxl_refiner"}.get(width, "unknown"))
    if flags["has_vae"] and not has("down_blocks.") and not has("model."):
        return dict(flags, kind="vae")
    if has("encoder.down_blocks.") and has("decoder.up_blocks.") and has("quant_conv."):
        return dict(flags, kind="vae", has_vae=True)
    return dict(flags, kind="unknown")


def inspect_file(path: str | Path) -> FileInfo:
    """Facts about one weights file; `kind == "damaged"` (with `error`) when unreadable."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return FileInfo(str(path), "damaged", error=str(exc)[:200])
    info = FileInfo(str(path), "unknown", size_gb=round(size / 2**30, 2))
    try:
        if path.suffix.lower() == ".safetensors":
            shapes, meta = read_header(path)
        else:
            shapes, meta = _read_ckpt_shapes(path), {}
    except (HeaderError, OSError) as exc:
        info.kind, info.error = "damaged", str(exc)[:200]
        return info
    if not shapes:
        info.kind, info.error = "damaged", "no tensors"
        return info
    facts = classify(shapes, meta)
    info.kind = facts.pop("kind")
    for k, v in facts.items():
        setattr(info, k, v)
    info.trainable = info.kind == "sdxl"
    dtypes = Counter(dt for _, dt in shapes.values())
    info.dtype = {"F16": "fp16", "BF16": "bf16", "F32": "fp32", "float16": "fp16", "bfloat16": "bf16",
                  "float32": "fp32"}.get(dtypes.most_common(1)[0][0], dtypes.most_common(1)[0][0].lower())
    info.tensors = len(shapes)
    info.shapes = {k: s for k, (s, _) in shapes.items()}
    return info


def scan_folder(folder: str | Path, exts: tuple[str, ...] = (".safetensors", ".ckpt")) -> list[FileInfo]:
    """Every weights file directly in `folder` (and diffusers folders, as kind "sdxl" when they
    have a text_time UNet), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.iterdir(), key=lambda q: q.name.lower()):
        if p.is_file() and p.suffix.lower() in exts:
            out.append(inspect_file(p))
        elif p.is_dir() and (p / "model_index.json").is_file():
            out.append(inspect_folder(p))
    return out


def inspect_folder(path: str | Path) -> FileInfo:
    """Facts about a diffusers folder from its configs (SDXL when the pipeline class says so)."""
    path = Path(path)
    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
        sched = json.loads((path / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8")) \
            if (path / "scheduler" / "scheduler_config.json").is_file() else {}
    except (OSError, ValueError) as exc:
        return FileInfo(str(path), "damaged", error=str(exc)[:200])
    cls = str(index.get("_class_name", ""))
    kind = "sdxl" if cls == "StableDiffusionXLPipeline" and "text_encoder" in index else \
        "sdxl_refiner" if "XLImg2Img" in cls else "flux" if "Flux" in cls else "sd3" if "StableDiffusion3" in cls \
        else "sd1" if cls == "StableDiffusionPipeline" else "unknown"
    return FileInfo(str(path), kind, trainable=kind == "sdxl", v_pred=sched.get("prediction_type") == "v_prediction",
                    ztsnr=bool(sched.get("rescale_betas_zero_snr")), has_vae=(path / "vae").is_dir(), dtype="")
