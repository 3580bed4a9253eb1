"""Finding and loading what the style jobs need: user paths, VGG19, fast networks.

Every user mistake becomes a `StudioError("style.*")` naming the file or folder, so the
job fails with one clear sentence. Weights load only through
`core.models.load_state_dict_file` (safetensors, or torch.load with weights_only=True).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import StudioError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from core.context import StudioContext
    from modules.style_transfer.transformer_net import TransformerNet
    from modules.style_transfer.vgg import VGG19Features

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
NETWORK_EXTS = (".pth", ".pt", ".safetensors", ".model")
OWNER = "style_transfer"  # cache owner of the VGG19 weights (kept between jobs)


def existing_file(text: str) -> Path:
    p = Path(text).expanduser()
    if not p.is_file():
        raise StudioError("style.file_missing", path=str(p))
    return p.resolve()


def existing_path(text: str) -> Path:
    p = Path(text).expanduser()
    if not p.exists():
        raise StudioError("style.file_missing", path=str(p))
    return p.resolve()


def network_path(ctx: "StudioContext", text: str) -> Path:
    """A network given by name (in STYLE_DIR, extension optional) or by path."""
    folder = ctx.path("STYLE_DIR")
    p = Path(text).expanduser()
    candidates = [p] if p.is_absolute() else [folder / p, p]
    candidates += [c.with_name(c.name + ext) for c in list(candidates) for ext in NETWORK_EXTS]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise StudioError("style.network_missing", name=text, folder=str(folder))


def list_networks(ctx: "StudioContext") -> list[str]:
    """Fast style networks in STYLE_DIR (VGG19 weights excluded)."""
    folder = ctx.path("STYLE_DIR")
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in NETWORK_EXTS and not p.name.lower().startswith("vgg"))


def output_path(ctx: "StudioContext", text: str | None, default: Path, what: str = "output") -> Path:
    """A user output path, always under OUTPUTS_DIR (core.paths refuses what would leave it)."""
    from core.paths import inside

    return inside(ctx.path("OUTPUTS_DIR"), text, what) if text else default


def load_vgg(ctx: "StudioContext", weights: str | None, pool: str = "max") -> "VGG19Features":
    """The full VGG19 features (cached across jobs: it is the same ~80 MB every time)."""
    from core.models import load_state_dict_file
    from modules.style_transfer.vgg import VGG19Features, find_vgg_weights

    folder = ctx.path("STYLE_DIR")
    path = find_vgg_weights(folder, weights)
    if path is None:
        raise StudioError("style.vgg_missing", folder=str(folder), name=weights or "vgg19-dcbb9e9d.pth")

    def loader() -> VGG19Features:
        vgg = VGG19Features(("relu5_4",), pool=pool)
        try:
            vgg.load_features(load_state_dict_file(path))
        except (KeyError, ValueError) as exc:
            raise StudioError("style.vgg_bad", path=path.name, error=str(exc)[:200]) from exc
        return vgg.to(ctx.models.device)

    return ctx.models.load(OWNER, f"vgg19:{path}:{path.stat().st_mtime_ns}:{pool}", loader, keep=True)


def load_network(path: Path) -> "TransformerNet":
    from core.models import load_state_dict_file
    from modules.style_transfer.transformer_net import load_transformer_net

    state = load_state_dict_file(path)
    if not isinstance(state, dict):
        raise StudioError("style.bad_network", path=path.name, error=type(state).__name__)
    try:
        return load_transformer_net(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise StudioError("style.bad_network", path=path.name, error=str(exc)[:300]) from exc


def save_network(net: "torch.nn.Module", path: Path) -> Path:
    """Write the state dict (pytorch/examples layout) atomically; .safetensors by extension."""
    import torch

    from core.media import atomic_path

    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp))
        else:
            torch.save(state, str(tmp))
    return path


def free_name(path: Path) -> Path:
    """`path`, or `name_2.ext`, `name_3.ext`... when it exists (we never overwrite a network)."""
    n, out = 1, path
    while out.exists():
        n += 1
        out = path.with_name(f"{path.stem}_{n}{path.suffix}")
    return out
