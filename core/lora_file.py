"""Read a LoRA-family file (kohya / LyCORIS key format) and compute each module's weight delta.

One reader for every network type the studio's trainer writes, and the files other tools
share (A1111, ComfyUI, Civitai):

| type | keys per module (after `<module>.`) | delta (before `strength`) |
|---|---|---|
| LoRA / LoCon | `lora_down.weight` (r, in[, k, k]), `lora_up.weight` (out, r[, 1, 1]), `alpha`, optional `lora_mid.weight` (Tucker) | `up @ down * alpha / r` |
| LoHa | `hada_w1_a`, `hada_w1_b`, `hada_w2_a`, `hada_w2_b`, `alpha`, optional `hada_t1`/`hada_t2` | `(w1a @ w1b) * (w2a @ w2b) * alpha / r` |
| LoKr | `lokr_w1` or `lokr_w1_a`+`lokr_w1_b`, `lokr_w2` or `lokr_w2_a`+`lokr_w2_b` (+ `lokr_t2`), `alpha` | `kron(w1, w2) * alpha / r` (r of the factored side; 1 when both are full) |
| full | `diff` | `diff` |
| DoRA | any of the above + `dora_scale` | `m * (W + d) / ‖W + d‖ - W` (norm per output row, or per input column when `dora_scale` is (1, in)) |

`alpha` missing means `alpha = r` (scale 1), as in kohya's sd-scripts. The conventions are
the ones of LyCORIS and ComfyUI's loader; DoRA follows PEFT (the norm is taken of the
updated weight). Module names are resolved to a pipeline by `core.lora_apply`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import StudioError

WEIGHT_FIELDS = ("lora_down.weight", "lora_up.weight", "lora_mid.weight", "hada_w1_a", "hada_w1_b", "hada_w2_a",
                 "hada_w2_b", "hada_t1", "hada_t2", "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a",
                 "lokr_w2_b", "lokr_t2", "diff", "alpha", "dora_scale")
LORA_EXTS = (".safetensors",)


@dataclass
class ModuleDelta:
    """The tensors of one module of a LoRA file; `delta(weight)` is the change it makes."""

    name: str  # kohya name, e.g. lora_unet_down_blocks_1_attentions_0_proj_in
    tensors: dict[str, Any]

    @property
    def network(self) -> str:
        t = self.tensors
        if "lora_down.weight" in t:
            kind = "lora"
        elif "hada_w1_a" in t:
            kind = "loha"
        elif "lokr_w1" in t or "lokr_w1_a" in t:
            kind = "lokr"
        else:
            kind = "full"
        return kind + ("+dora" if "dora_scale" in t else "")

    def _alpha(self) -> float | None:
        a = self.tensors.get("alpha")
        return None if a is None else float(a.float().reshape(-1)[0])

    def _scaled(self, rank: int | None) -> float:
        alpha = self._alpha()
        return 1.0 if alpha is None or not rank else alpha / rank

    def raw_delta(self, shape) -> Any:
        """The network's weight change at strength 1, float32, reshaped to `shape` (no DoRA)."""
        import torch

        t = {k: v.float() for k, v in self.tensors.items() if k not in ("alpha", "dora_scale")}
        kind = self.network.split("+")[0]
        if kind == "lora":
            down, up = t["lora_down.weight"], t["lora_up.weight"]
            rank = down.shape[0]
            if "lora_mid.weight" in t:  # Tucker: down (r, in, 1, 1), mid (r, r, k, k), up (out, r, 1, 1)
                mid = t["lora_mid.weight"]
                down = torch.einsum("ijkl,jr->irkl", mid, down.flatten(1))  # (r, in, k, k)
            d = up.flatten(1) @ down.flatten(1)
            return (d * self._scaled(rank)).reshape(shape)
        if kind == "loha":
            rank = t["hada_w1_b"].shape[0]
            w1 = _factor(t["hada_w1_a"], t["hada_w1_b"], t.get("hada_t1"))
            w2 = _factor(t["hada_w2_a"], t["hada_w2_b"], t.get("hada_t2"))
            return (w1 * w2 * self._scaled(rank)).reshape(shape)
        if kind == "lokr":
            rank = None
            if "lokr_w1" in t:
                w1 = t["lokr_w1"]
            else:
                w1, rank = t["lokr_w1_a"] @ t["lokr_w1_b"], t["lokr_w1_b"].shape[0]
            if "lokr_w2" in t:
                w2 = t["lokr_w2"]
            else:
                w2, rank = _factor(t["lokr_w2_a"], t["lokr_w2_b"], t.get("lokr_t2")), t["lokr_w2_b"].shape[0]
            if w2.dim() == 4 and w1.dim() == 2:  # conv: the kernel lives in w2
                w1 = w1[:, :, None, None]
            return (torch.kron(w1, w2) * self._scaled(rank)).reshape(shape)
        return t["diff"].reshape(shape)

    def delta(self, weight) -> Any:
        """Change to add to `weight` (float32, weight's shape) at strength 1, DoRA included."""
        w = weight.detach().float()
        d = self.raw_delta(w.shape).to(w.device)
        scale = self.tensors.get("dora_scale")
        if scale is None:
            return d
        m = scale.float().to(w.device)
        updated = w + d
        if m.shape[0] == w.shape[0] and m.numel() == w.shape[0]:  # one magnitude per output row (PEFT)
            norm = updated.reshape(w.shape[0], -1).norm(dim=1).reshape(-1, *[1] * (w.dim() - 1))
        else:  # LyCORIS default: one magnitude per input column, dora_scale is (1, in[, 1, 1])
            norm = updated.transpose(0, 1).reshape(w.shape[1], -1).norm(dim=1)
            norm = norm.reshape(1, -1, *[1] * (w.dim() - 2))
        m = m.reshape(norm.shape)
        return updated * (m / (norm + torch_eps())) - w


def _factor(a, b, tucker=None):
    """a @ b, or the Tucker form a x t x b for conv layers (LoHa `hada_t*`, LoKr `lokr_t2`)."""
    import torch

    if tucker is None:
        return a @ b
    return torch.einsum("ijkl,jr,ip->prkl", tucker, b, a)


def torch_eps() -> float:
    import torch

    return float(torch.finfo(torch.float32).eps)


@dataclass
class LoraFile:
    path: Path
    modules: dict[str, ModuleDelta]
    metadata: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)  # keys of no module (e.g. bias diffs), reported

    @property
    def networks(self) -> list[str]:
        return sorted({m.network for m in self.modules.values()})

    @property
    def trigger(self) -> str:
        return self.metadata.get("modelspec.trigger_phrase") or self.metadata.get("ss_training_comment", "")


def read_lora(path: str | Path) -> LoraFile:
    """Read a `.safetensors` LoRA file. StudioError('lab.lora_missing' / 'lab.lora_unreadable' /
    'lab.lora_empty') names the file when it is absent, damaged, or holds no LoRA module."""
    path = Path(path)
    if not path.is_file():
        raise StudioError("lab.lora_missing", path=str(path))
    if path.suffix.lower() not in LORA_EXTS:
        raise StudioError("lab.lora_unreadable", name=path.name, error="not a .safetensors file")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - truncated / not safetensors at all
        raise StudioError("lab.lora_unreadable", name=path.name, error=f"{type(exc).__name__}: {exc}"[:300]) from exc
    groups: dict[str, dict[str, Any]] = {}
    ignored = []
    for key, value in tensors.items():
        module, _, rest = key.partition(".")
        if rest in WEIGHT_FIELDS:
            groups.setdefault(module, {})[rest] = value
        else:
            ignored.append(key)
    modules = {}
    for name, t in groups.items():
        md = ModuleDelta(name, t)
        complete = {"lora": ("lora_down.weight", "lora_up.weight"),
                    "loha": ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"), "lokr": (), "full": ("diff",)}
        if all(k in t for k in complete[md.network.split("+")[0]]) and (
                md.network != "lokr" or (("lokr_w2" in t) or ("lokr_w2_a" in t and "lokr_w2_b" in t))):
            modules[name] = md
        else:
            ignored.extend(f"{name}.{k}" for k in t)
    if not modules:
        raise StudioError("lab.lora_empty", name=path.name)
    return LoraFile(path, modules, meta, sorted(ignored))


def file_hash(path: str | Path) -> str:
    """The short hash A1111 and Civitai print for a LoRA ("Lora hashes"): the first 12 hex
    digits of the SHA-256 of the tensor data after the safetensors header (A1111's
    `addnet_hash_safetensors`), so metadata edits do not change it."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        f.seek(8 + n)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]
