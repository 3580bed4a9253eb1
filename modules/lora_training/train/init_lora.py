"""Continue from an existing kohya LoRA file: its weights become the starting adapters.

The file must adapt the same modules with the same rank as this run (`target`,
`train_text_encoder`, `rank`); otherwise the run stops before training with one message
listing what differs (rank, modules only in the file, modules only in this run), so nothing
is silently dropped or left at zero. The file's per-module `alpha` is folded into the up
weights (up * alpha_file / alpha_run), so the LoRA's effect at the first step equals the file's
exactly whatever alpha this run uses. The file is only read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import StudioError
from modules.lora_training.train import export_kohya as ex


def resolve(ref: str, ctx: Any) -> Path:
    for c in (Path(ref).expanduser(), ctx.path("LORAS_DIR") / ref):
        if c.is_file():
            return c.resolve()
    raise StudioError("lora.init_missing", name=ref, folder=str(ctx.path("LORAS_DIR")))


def _kohya_name(peft_key: str, part: str) -> tuple[str, str]:
    mod, kind = ex._module_path(peft_key, part)  # kind: the kohya suffix, "lora_down.weight" ...
    return ex.PART_PREFIX[part] + mod.replace(".", "_"), kind.removesuffix(".weight")


def apply(parts_models: dict[str, Any], path: Path, rank: int, alpha: float) -> int:
    """Load `path` into the PEFT adapters of {"unet": unet, "te1": ..., "te2": ...}; returns
    the number of modules loaded."""
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        sd = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise StudioError("lora.init_damaged", name=path.name, error=str(exc)[:200]) from exc
    in_file = {k.rsplit(".lora_down.weight", 1)[0] for k in sd if k.endswith(".lora_down.weight")}
    if not in_file:
        raise StudioError("lora.init_not_lora", name=path.name)
    ours: dict[str, dict[str, tuple[str, str]]] = {}
    for part, model in parts_models.items():
        ours[part] = {k: _kohya_name(k, part) for k in get_peft_model_state_dict(model)}
    expected = {name for m in ours.values() for name, _ in m.values()}
    diffs = []
    ranks = sorted({int(sd[f"{b}.lora_down.weight"].shape[0]) for b in in_file})
    if ranks != [rank]:
        diffs.append(f"rank {'/'.join(map(str, ranks))} in the file, {rank} here")
    only_file, only_run = sorted(in_file - expected), sorted(expected - in_file)
    if only_file:
        diffs.append(f"{len(only_file)} modules only in the file (e.g. {', '.join(only_file[:3])})")
    if only_run:
        diffs.append(f"{len(only_run)} modules only in this run (e.g. {', '.join(only_run[:3])})")
    if diffs:
        raise StudioError("lora.init_mismatch", name=path.name, detail="; ".join(diffs))
    for part, model in parts_models.items():
        new = {}
        for peft_key, (base, kind) in ours[part].items():
            w = sd[f"{base}.{kind}.weight"].float()
            if kind == "lora_up":
                a_file = float(sd[f"{base}.alpha"]) if f"{base}.alpha" in sd else float(rank)
                w = w * (a_file / alpha)
            new[peft_key] = w
        ref = get_peft_model_state_dict(model)
        bad = [k for k, v in new.items() if tuple(v.shape) != tuple(ref[k].shape)]
        if bad:
            raise StudioError("lora.init_mismatch", name=path.name, detail=f"shapes differ at {bad[0]}")
        device = next(iter(ref.values())).device
        set_peft_model_state_dict(model, {k: v.to(device) for k, v in new.items()})
    return len(in_file)


def apply_to_session(s: Any) -> int:
    """`apply` on a session's adapted models (text encoders only when they are trained)."""
    models = {"unet": s.unet}
    if s.te_trained:
        models.update(te1=s.te1, te2=s.te2)
    return apply(models, s.init_lora_path, s.params.rank, s.params.alpha)
