"""The one base class of every job's params model: strict, bounded input.

Every params model a module registers (`JobKind.params`) inherits `StrictParams`, so the
UI, the CLI and `POST /api/jobs` all refuse the same things, with a 422 naming the field:

- an unknown field (a typo such as `learning_rate` for `lr_unet` used to be dropped silently);
- a string longer than its field allows (`MAX_STR` characters unless the field says less:
  a 5 MiB trigger word used to be accepted, stored and echoed back in every status);
- `nan`, `inf` and, as a safety net for a field that forgot its own bounds, any number beyond
  `MAX_NUMBER` (`style_weight=1e308` used to reach the optimiser);
- a list longer than `MAX_ITEMS` unless the field says less.

Each field still declares its own limits (`Field(ge=..., le=..., max_length=...)`); the
limits here only catch what a field left open. `tests/core/test_params.py` checks that every
number and list of every registered model declares its own bounds.
"""
from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_STR = 4096  # longer than any path or name a file system takes (PATH_MAX is 4096 on Linux)
MAX_PROMPT = 2000  # prompts and captions: far above what a CLIP tokenizer keeps (77 tokens)
MAX_NAME = 200  # trigger words, concepts, project and output names
MAX_ITEMS = 10_000
MAX_NUMBER = 1e15
MAX_SEED = 2**31 - 1

# Item types for lists, whose items a `Field(max_length=...)` on the list does not reach.
Prompt = Annotated[str, Field(max_length=MAX_PROMPT)]
Name = Annotated[str, Field(max_length=MAX_NAME)]


def _check_bounded(value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        if abs(value) > MAX_NUMBER:
            raise ValueError(f"must be between -{MAX_NUMBER:g} and {MAX_NUMBER:g}")
    elif isinstance(value, (list, tuple, set, frozenset)):
        if len(value) > MAX_ITEMS:
            raise ValueError(f"at most {MAX_ITEMS} items")
        for item in value:
            _check_bounded(item)
    elif isinstance(value, dict):
        if len(value) > MAX_ITEMS:
            raise ValueError(f"at most {MAX_ITEMS} items")
        for item in value.values():
            _check_bounded(item)


class StrictParams(BaseModel):
    """Base of every job params model (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", str_max_length=MAX_STR, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        # Nested params models validate themselves; plain values are checked here.
        if not isinstance(value, BaseModel):
            _check_bounded(value)
        return value
