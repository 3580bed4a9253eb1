"""Recognise an upscaler weights file and build the network for it.

Everything is read from the state dict itself (no file-name guessing):
- wrappers: Real-ESRGAN's `params_ema` (preferred, like its own script) / `params`,
  plus `state_dict` / `model` dicts and DataParallel's `module.` prefix;
- ESRGAN RRDBNet in three key dialects, all renamed to BasicSR's names:
  new (Real-ESRGAN/BasicSR: `conv_first`, `body.N.rdbK`), BSRGAN/RealSR
  (`RRDB_trunk`, `trunk_conv`, `upconvN`, `HRconv`) and old ESRGAN (`model.0`,
  `model.1.sub.N.RDBK.convJ.0`, upconvs at `model.3,6,9`, then HR convs);
  scale = 2**(upsample stages) / pixel-unshuffle fold, fold read from conv_first's input
  channels (12 = x2, 48 = x1 for RGB);
- Real-ESRGAN SRVGGNetCompact (`body.0.weight` conv + `body.1.weight` PReLU), scale from
  the last conv's channels (out_ch * scale**2).
Anything else goes to spandrel when it is installed, else a clear StudioError.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from core.errors import StudioError

_WRAPPERS = ("params_ema", "params", "state_dict", "model", "net_g", "generator")


@dataclass
class ModelSpec:
    arch: str            # "rrdb" | "compact" | "spandrel:<id>"
    scale: int           # image scale (output / input)
    in_ch: int
    out_ch: int
    num_feat: int = 0
    depth: int = 0       # RRDB blocks or compact convs
    unshuffle: int = 1
    dialect: str = ""    # "new" | "old" | "bsrgan" for RRDB
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        name = {"rrdb": "ESRGAN RRDBNet", "compact": "SRVGGNetCompact"}.get(self.arch, self.arch)
        bits = [f"x{self.scale}", name]
        if self.num_feat:
            bits.append(f"nf={self.num_feat}")
        if self.depth:
            bits.append(("nb=" if self.arch == "rrdb" else "nc=") + str(self.depth))
        if self.unshuffle > 1:
            bits.append("pixel-unshuffle")
        if self.dialect:
            bits.append(f"{self.dialect} keys")
        return " ".join(bits)


def unwrap(obj: Any) -> dict:
    """The tensor dict inside a checkpoint (Real-ESRGAN prefers params_ema over params)."""
    import torch

    for _ in range(3):  # wrappers can nest once or twice (e.g. {"model": {"params": ...}})
        if not isinstance(obj, dict):
            break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict):
        return {}
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


# -- RRDB key dialects ------------------------------------------------------------------

_BSRGAN = [
    (r"^RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.(weight|bias)$", r"body.\1.rdb\2.conv\3.\4"),
    (r"^trunk_conv\.(weight|bias)$", r"conv_body.\1"),
    (r"^upconv(\d)\.(weight|bias)$", r"conv_up\1.\2"),
    (r"^HRconv\.(weight|bias)$", r"conv_hr.\1"),
]


def _old_to_new(sd: dict) -> dict:
    """Old ESRGAN sequential keys -> BasicSR names (the mapping spandrel documents)."""
    top = sorted({int(k.split(".")[1]) for k in sd if re.match(r"^model\.\d+\.", k)})
    nb = 1 + max((int(m.group(1)) for k in sd if (m := re.match(r"^model\.1\.sub\.(\d+)\.RDB", k))), default=-1)
    out: dict = {}
    last = top[-1]
    # model.0 conv_first; model.1 trunk; 3,6,9.. upconvs; last-2 HR conv; last conv_last
    ups = [i for i in top if i not in (0, 1, last, last - 2)]
    for k, v in sd.items():
        m = re.match(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$", k)
        if m:
            out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = v
            continue
        m = re.match(r"^model\.1\.sub\.(\d+)\.(weight|bias)$", k)
        if m and int(m[1]) == nb:
            out[f"conv_body.{m[2]}"] = v
            continue
        m = re.match(r"^model\.(\d+)\.(weight|bias)$", k)
        if not m:
            out[k] = v  # unknown key: kept so strict loading names it
            continue
        i = int(m[1])
        if i == 0:
            out[f"conv_first.{m[2]}"] = v
        elif i == last:
            out[f"conv_last.{m[2]}"] = v
        elif i == last - 2:
            out[f"conv_hr.{m[2]}"] = v
        elif i in ups:
            out[f"conv_up{ups.index(i) + 1}.{m[2]}"] = v
        else:
            out[k] = v
    return out


def _to_new_rrdb(sd: dict) -> tuple[dict, str] | None:
    if "conv_first.weight" in sd and "body.0.rdb1.conv1.weight" in sd:
        return sd, "new"
    if "conv_first.weight" in sd and "RRDB_trunk.0.RDB1.conv1.weight" in sd:
        out = {}
        for k, v in sd.items():
            for pat, rep in _BSRGAN:
                if re.match(pat, k):
                    k = re.sub(pat, rep, k)
                    break
            out[k] = v
        return out, "bsrgan"
    if "model.0.weight" in sd and "model.1.sub.0.RDB1.conv1.0.weight" in sd:
        if any(".conv1x1." in k for k in sd):
            return None  # ESRGAN+ (extra 1x1 paths): not ours, spandrel may know it
        return _old_to_new(sd), "old"
    return None


def _rrdb_spec(sd: dict, dialect: str) -> ModelSpec:
    w = sd["conv_first.weight"]
    num_feat, first_in = int(w.shape[0]), int(w.shape[1])
    out_ch = int(sd["conv_last.weight"].shape[0])
    nb = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
    n_up = sum(1 for k in sd if re.match(r"^conv_up\d+\.weight$", k))
    unshuffle = 1
    for f in (2, 4):  # Real-ESRGAN x2/x1: the input is folded, conv_first sees c*f*f channels
        if first_in == out_ch * f * f:
            unshuffle = f
    in_ch = first_in // (unshuffle * unshuffle)
    grow = int(sd["body.0.rdb1.conv1.weight"].shape[0])
    if 2 ** n_up % unshuffle:
        raise ValueError("unshuffle fold larger than the network scale")
    return ModelSpec("rrdb", 2 ** n_up // unshuffle, in_ch, out_ch, num_feat, nb, unshuffle, dialect,
                     {"num_grow_ch": grow, "num_upsample": n_up})


def _compact_spec(sd: dict) -> ModelSpec | None:
    if "body.0.weight" not in sd or "body.1.weight" not in sd or sd["body.0.weight"].ndim != 4:
        return None
    if sd["body.1.weight"].ndim != 1:  # body.1 is a PReLU in the compact net
        return None
    last = max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
    in_ch, num_feat = int(sd["body.0.weight"].shape[1]), int(sd["body.0.weight"].shape[0])
    shuffle_ch = int(sd[f"body.{last}.weight"].shape[0])
    for c in (in_ch, 3, 4, 1):  # out_ch * scale**2 = shuffle_ch, out_ch most likely = in_ch
        if shuffle_ch % c == 0 and math.isqrt(shuffle_ch // c) ** 2 == shuffle_ch // c:
            return ModelSpec("compact", math.isqrt(shuffle_ch // c), in_ch, c, num_feat, (last - 2) // 2)
    return None


def identify(sd: dict) -> tuple[ModelSpec, dict] | None:
    """(spec, state dict in our key names) for the architectures we implement, else None."""
    try:
        conv = _to_new_rrdb(sd)
        if conv is not None:
            new_sd, dialect = conv
            return _rrdb_spec(new_sd, dialect), new_sd
        spec = _compact_spec(sd)
        if spec is not None:
            return spec, sd
    except (KeyError, ValueError, IndexError):
        return None
    return None


def build(spec: ModelSpec):
    from modules.super_resolution.archs import RRDBNet, SRVGGNetCompact

    if spec.arch == "rrdb":
        return RRDBNet(spec.in_ch, spec.out_ch, spec.num_feat, spec.depth, spec.extra["num_grow_ch"],
                       spec.extra["num_upsample"], spec.unshuffle)
    return SRVGGNetCompact(spec.in_ch, spec.out_ch, spec.num_feat, spec.depth, spec.scale)


def _try_spandrel(sd: dict):
    """Any image-to-image architecture spandrel knows, when it is installed (optional)."""
    try:
        import spandrel  # optional extra
    except Exception:  # noqa: BLE001 - absent or broken: we simply do not offer it
        return None
    try:
        desc = spandrel.ModelLoader().load_from_state_dict(sd)
    except Exception:  # noqa: BLE001 - spandrel does not know it either
        return None
    if not isinstance(desc, spandrel.ImageModelDescriptor):  # e.g. inpainting models need a mask
        return None
    spec = ModelSpec(f"spandrel:{desc.architecture.id}", int(desc.scale), int(desc.input_channels),
                     int(desc.output_channels), extra={"supports_half": bool(desc.supports_half),
                                                       "supports_bf16": bool(desc.supports_bfloat16)})
    return spec, _SpandrelAdapter(desc)


class _SpandrelAdapter(nn.Module):
    """Runs through the descriptor, which pads each tile to the sizes the architecture needs
    (e.g. SwinIR's window multiple) and crops back; `net` makes `.to()` move the weights."""

    def __init__(self, desc) -> None:
        super().__init__()
        self.net = desc.model
        self._desc = desc

    def forward(self, x):
        return self._desc(x)


def load_model(path: str | Path):
    """Load a weights file safely and return (eval-mode nn.Module in fp32 on CPU, ModelSpec)."""
    from core.models import load_state_dict_file

    path = Path(path)
    raw = load_state_dict_file(path)  # safetensors or weights_only pickle: no code can run
    sd = unwrap(raw)
    if not sd:
        raise StudioError("sr.not_a_model", path=path.name)
    found = identify(sd)
    if found is not None:
        spec, new_sd = found
        model = build(spec)
        try:
            model.load_state_dict(new_sd, strict=True)
        except RuntimeError as exc:  # shapes/keys that look like ours but are not
            raise StudioError("sr.unknown_arch", path=path.name,
                              detail=str(exc).splitlines()[0][:200]) from exc
        return model.eval(), spec
    alt = _try_spandrel(sd)
    if alt is not None:
        spec, model = alt
        return model.eval(), spec
    sample = ", ".join(sorted(sd)[:4])
    raise StudioError("sr.unknown_arch", path=path.name, detail=sample)
