"""What "Try it" needs from a LoRA training run, read from the job store (never from the
training module: modules do not import each other; the stored params and artifacts are the
contract).

A run is a `lora.*` job whose params hold the training fields (`lora.prepare_and_train`
nests them under "train"). Its LoRA is the last `lora` artifact (else LORAS_DIR/<name>.safetensors);
its checkpoints are the kohya step files next to it, `<name>-000500.safetensors`, in step order.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import StudioError


@dataclass
class RunInfo:
    job_id: str
    name: str
    base_model: str
    trigger: str
    prompts: list[str] = field(default_factory=list)
    lora: str = ""  # the final (or last saved) file
    checkpoints: list[str] = field(default_factory=list)  # step files, then the final file

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def step_files(folder: Path, name: str) -> list[Path]:
    """`<name>-<digits>.safetensors` in `folder`, sorted by step number."""
    pat = re.compile(rf"^{re.escape(name)}-(\d+)\.safetensors$")
    found = [(int(m.group(1)), p) for p in folder.glob(f"{glob_escape(name)}-*.safetensors")
             if (m := pat.match(p.name))]
    return [p for _, p in sorted(found)]


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", text)


def run_info(ctx: Any, job_id: str) -> RunInfo:
    row = ctx.store.get_job(job_id.strip()) if job_id and job_id.strip() else None
    if row is None:
        raise StudioError("lab.run_unknown", id=job_id)
    params = row["params"] or {}
    train = params.get("train") if isinstance(params.get("train"), dict) else params
    if not row["kind"].startswith("lora.") or "base_model" not in train:
        raise StudioError("lab.not_a_lora_run", id=row["id"], kind=row["kind"])
    name = (train.get("output_name") or train.get("project") or "").strip()
    arts = [Path(a["path"]) for a in ctx.store.artifacts(row["id"], "lora")]
    final = next((p for p in reversed(arts) if p.is_file()), None)
    folder = final.parent if final else ctx.path("LORAS_DIR")
    final = final or folder / f"{name}.safetensors"
    steps = step_files(folder, name)
    ckpts = [str(p) for p in steps] + ([str(final)] if final.is_file() else [])
    if not ckpts:
        raise StudioError("lab.run_no_lora", id=row["id"], path=str(final))
    return RunInfo(job_id=row["id"], name=name, base_model=train.get("base_model") or "",
                   trigger=train.get("trigger_word") or "", prompts=list(train.get("sample_prompts") or []),
                   lora=str(final) if final.is_file() else ckpts[-1], checkpoints=ckpts)
