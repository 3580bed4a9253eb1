"""Finding, recognising and loading RIFE weights (Practical-RIFE ``flownet.pkl`` files).

* `list_models(folder)` - what a user can pick: weight files in ``RIFE_DIR`` and
  Practical-RIFE ``train_log``-style folders holding a ``flownet.pkl``.
* `detect_config(state)` - which layout a state dict has (4.6 or 4.25 family) and its
  channel widths, read from the keys and shapes; anything else raises
  ``StudioError("rife.unknown_weights")`` naming what did not fit.
* `load_ifnet(path)` - safe load (``core.models.load_state_dict_file``: safetensors, or
  ``torch.load(weights_only=True)``), ``module.`` prefix stripped as Practical-RIFE's
  ``load_model`` does, training-only keys dropped, then ``load_state_dict(strict=True)``.
"""
from __future__ import annotations

import re
from pathlib import Path

from core.errors import StudioError

WEIGHT_SUFFIXES = (".pkl", ".pth", ".pt", ".safetensors")
# Keys present in some training checkpoints, never used for inference.
_TRAINING_ONLY = ("teacher.", "caltime.", "contextnet.", "unet.")
_BLOCK_KEY = re.compile(r"^block(\d+)\.")


def list_models(folder: Path) -> list[str]:
    """Model names relative to `folder`, sorted (files, and folders holding flownet.pkl)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names: list[str] = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES:
            names.append(p.relative_to(folder).as_posix())
    return names


def resolve_model(name: str | None, folder: Path) -> Path:
    """A model name (relative to RIFE_DIR, a folder with flownet.pkl, or an absolute path)."""
    folder = Path(folder)
    if not name:
        found = list_models(folder)
        if not found:
            raise StudioError("rife.no_models", folder=str(folder))
        # Prefer the newest 4.x file by name (e.g. "4.26/flownet.pkl" over "4.6/flownet.pkl")
        return folder / sorted(found, key=_version_key)[-1]
    p = Path(name).expanduser()
    if not p.is_absolute():
        p = folder / p
    if p.is_dir():
        p = p / "flownet.pkl"
    if not p.is_file():
        raise StudioError("rife.model_missing", path=str(p), folder=str(folder))
    return p


def _version_key(name: str) -> tuple:
    nums = re.findall(r"\d+", name)
    return tuple(int(n) for n in nums[:3]) or (0,)


def clean_state_dict(state: dict) -> dict:
    """Strip DataParallel's ``module.`` prefix and drop training-only keys."""
    if not isinstance(state, dict):
        raise StudioError("rife.unknown_weights", path="", detail=f"not a state dict ({type(state).__name__})")
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    out = {}
    for k, v in state.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if not k.startswith(_TRAINING_ONLY):
            out[k] = v
    return out


def detect_config(state: dict, path: str = ""):
    """Return the IFNetConfig matching a (cleaned) state dict, or raise rife.unknown_weights."""
    from modules.frame_interpolation.ifnet import IFNetConfig

    def fail(detail: str):
        return StudioError("rife.unknown_weights", path=path, detail=detail)

    blocks = sorted({int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k))})
    if not blocks:
        raise fail("no IFNet blocks (block0.*) found")
    if blocks != list(range(len(blocks))):
        raise fail(f"blocks {blocks} are not consecutive")
    has_head = any(k.startswith("encode.") for k in state)
    n = len(blocks)
    if has_head and n == 5:
        variant = "4.25"
    elif not has_head and n == 4:
        variant = "4.6"
    else:
        raise fail(f"{n} blocks {'with' if has_head else 'without'} an encoder: not a 4.6 or 4.25-family layout")
    try:
        widths = tuple(int(state[f"block{i}.convblock.0.conv.weight"].shape[0]) for i in blocks)
        hidden = out = 0
        if has_head:
            hidden = int(state["encode.cnn0.weight"].shape[0])
            out = int(state["encode.cnn3.weight"].shape[1])  # ConvTranspose2d: (in, out, k, k)
    except KeyError as exc:
        raise fail(f"missing key {exc.args[0]}") from None
    cfg = IFNetConfig(variant, widths, hidden or 16, out or 4)
    lastconv = state.get("block0.lastconv.0.weight")
    if lastconv is None or int(lastconv.shape[1]) != 4 * cfg.block_out:
        got = None if lastconv is None else tuple(lastconv.shape)
        raise fail(f"block0.lastconv.0.weight has shape {got}; expected {4 * cfg.block_out} output channels")
    return cfg


def build_and_load(state: dict, path: str = ""):
    """IFNet built from the detected config with `state` loaded strictly."""
    from modules.frame_interpolation.ifnet import IFNet

    state = clean_state_dict(state)
    cfg = detect_config(state, path)
    net = IFNet(cfg)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unknown keys (e.g. {unexpected[0]})")
        if bad:
            k = bad[0]
            parts.append(f"shape of {k} is {tuple(state[k].shape)}, expected {tuple(expected[k].shape)}")
        raise StudioError("rife.unknown_weights", path=path, detail="; ".join(parts))
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return net.eval()


def load_ifnet(path: str | Path):
    """Load a RIFE flownet file safely; returns an IFNet in eval mode (fp32, CPU)."""
    from core.models import load_state_dict_file

    path = Path(path)
    state = load_state_dict_file(path)
    return build_and_load(state, path.name)
