"""Resumable training state, written atomically, with keep-last-K.

A state folder `checkpoints/step_0000120/` holds `adapter.safetensors` (the PEFT LoRA weights
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


def list_states(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
                  and (p / "meta.json").is_file())


def find_state(resume_from: str, root: str | Path) -> Path:
    """'latest' -> the newest complete state in `root`; else the folder given."""
    if resume_from.strip().lower() == "latest":
        states = list_states(root)
        if not states:
            raise StudioError("lora.no_state", path=str(root))
        return states[-1]
    p = Path(resume_from).expanduser()
    if not (p / "meta.json").is_file() or not (p / "state.pt").is_file():
        raise StudioError("lora.bad_state", path=str(p))
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
