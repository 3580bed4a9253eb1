"""Resumable training states: one folder per run, written atomically, keep-last-K per run,
and the settings check that makes a resume refuse a state it cannot continue.

Each run owns `checkpoints/<output name>_<start time>_<job>/` (a resumed run continues in the
folder of the state it resumes), so two runs in one project never prune or overwrite each
other's states. "latest" means the newest state of the same output name; a state whose
shape-defining settings (base, network type, rank, alpha, targets, resolution, ...) differ
from the run's is refused with the list of differences, before any weights are loaded.
States of older versions, directly under `checkpoints/`, are still found.

A state folder `<run>/step_0000120/` holds `adapter.safetensors` (the PEFT LoRA weights
of every trained part, fp32), `state.pt` (optimizer, LR scheduler, GradScaler, every RNG
state - torch CPU/CUDA, numpy, python, the trainer's noise generator -, step, epoch,
position in the epoch's batch order, smoothed loss) and `meta.json`. It is written to a
temp folder then renamed, so a crash or a full disk in the middle leaves the previous good
state untouched; only then are the oldest states beyond `keep_last` deleted.
`state.pt` is read back with `weights_only=True` (core.models.load_state_dict_file).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

from core.errors import StudioError

PREFIX = "step_"


def rng_state(noise_gen: Any) -> dict:
    import numpy as np
    import torch

    np_state = np.random.get_state()
    py = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype("int64")), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": py[0], "state": torch.tensor(py[1], dtype=torch.int64),
                   "gauss": py[2] if py[2] is not None else float("nan")},
        "noise": noise_gen.get_state(),
    }


def set_rng_state(state: dict, noise_gen: Any) -> None:
    import math

    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    gauss = None if isinstance(p["gauss"], float) and math.isnan(p["gauss"]) else p["gauss"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), gauss))
    noise_gen.set_state(state["noise"])


# Settings a state can only be continued with unchanged: they fix the adapters' shapes, the
# optimizer's groups or the meaning of the saved position in the epoch. Compared only when both
# sides have the key, so fields added by later versions do not make old states unusable.
RESUME_KEYS = ("network_type", "rank", "alpha", "conv_rank", "conv_alpha", "lokr_factor", "target",
               "train_text_encoder", "resolution", "optimizer", "batch_size", "grad_accum")


def list_states(root: str | Path) -> list[Path]:
    """The complete states directly inside `root` (one run's folder), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
                  and (p / "meta.json").is_file())


def new_run_dir(root: str | Path, name: str, job_id: str) -> Path:
    """The folder a new run will write its states to (created at its first save)."""
    return Path(root) / f"{name}_{time.strftime('%Y%m%d-%H%M%S')}_{job_id[-6:]}"


def run_dir_of(state: str | Path, root: str | Path) -> Path | None:
    """The run folder holding `state`, or None for a state of the old flat layout."""
    parent = Path(state).parent
    try:
        return parent if parent.resolve() != Path(root).resolve() else None
    except OSError:
        return None


def read_meta(state: str | Path) -> dict:
    try:
        return json.loads((Path(state) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def all_states(root: str | Path) -> list[Path]:
    """Every complete state of a project: each run's, plus old flat ones."""
    root = Path(root)
    found = list_states(root)
    if root.is_dir():
        for run in sorted(root.iterdir()):
            if run.is_dir() and not run.name.startswith((".", PREFIX)):
                found += list_states(run)
    return found


def settings_of(params: dict, base: str) -> dict:
    """What a state is checked against: the run's shape-defining settings and its base."""
    return {"base": base, **{k: params[k] for k in RESUME_KEYS if k in params}}


def settings_diff(meta: dict, wanted: dict) -> list[tuple[str, Any, Any]]:
    """(setting, in the state, in this run) for every setting that differs."""
    saved = settings_of(meta.get("params") or {}, meta.get("base", ""))
    return [(k, saved[k], v) for k, v in wanted.items() if k in saved and saved[k] != v]


def _name_of(meta: dict) -> str:
    p = meta.get("params") or {}
    return p.get("output_name") or p.get("project") or ""


def _mismatch(state: Path, diffs: list[tuple[str, Any, Any]]) -> StudioError:
    lines = "; ".join(f"{k}: {a} → {b}" for k, a, b in diffs)
    return StudioError("lora.state_settings", path=str(state), diffs=lines)


def find_state(resume_from: str, root: str | Path, name: str | None = None, wanted: dict | None = None) -> Path:
    """'latest' -> the newest complete state of output `name` in the project `root` whose
    settings match `wanted` (when given); else the state folder given, checked the same way.
    A state that cannot be continued raises `lora.state_settings` listing the differences."""
    if resume_from.strip().lower() == "latest":
        states = [s for s in all_states(root) if name is None or _name_of(read_meta(s)) in ("", name)]
        if not states:
            raise StudioError("lora.no_state", path=str(root))
        states.sort(key=lambda s: (float(read_meta(s).get("saved_at", 0.0)), s.name))
        if wanted is None:
            return states[-1]
        for s in reversed(states):
            if not settings_diff(read_meta(s), wanted):
                return s
        raise _mismatch(states[-1], settings_diff(read_meta(states[-1]), wanted))
    p = Path(resume_from).expanduser()
    if not (p / "meta.json").is_file() or not (p / "state.pt").is_file():
        raise StudioError("lora.bad_state", path=str(p))
    diffs = settings_diff(read_meta(p), wanted) if wanted is not None else []
    if diffs:
        raise _mismatch(p, diffs)
    return p


def save_state(root: str | Path, step: int, adapters: dict[str, dict], state: dict, meta: dict,
               keep_last: int) -> Path:
    """Write one state atomically and prune the oldest. Returns the final folder."""
    import torch
    from safetensors.torch import save_file

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:07d}"
    tmp = root / f".tmp_{final.name}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        flat = {f"{part}.{k}": v.detach().float().cpu().contiguous() for part, sd in adapters.items()
                for k, v in sd.items()}
        save_file(flat, str(tmp / "adapter.safetensors"))
        torch.save(state, str(tmp / "state.pt"))
        (tmp / "meta.json").write_text(json.dumps({**meta, "step": step, "saved_at": time.time()}, indent=2),
                                       encoding="utf-8")
        if final.exists():  # same step saved twice (stop right after a periodic save)
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_states(root)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(folder: str | Path) -> tuple[dict[str, dict], dict, dict]:
    """(adapters by part, state, meta) of a state folder."""
    from core.models import load_state_dict_file

    folder = Path(folder)
    flat = load_state_dict_file(folder / "adapter.safetensors")
    adapters: dict[str, dict] = {}
    for k, v in flat.items():
        part, _, key = k.partition(".")
        adapters.setdefault(part, {})[key] = v
    state = load_state_dict_file(folder / "state.pt")
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    return adapters, state, meta
