"""The plugin contract: what a package under `modules/` exposes as `MODULE`.

A module is a tab (built by `build_ui(ctx)` inside the shell's `gr.Tab`) plus the job
kinds it can run. Job kinds are data: a name, a pydantic params model and a run function
`run(job, params, ctx)`. Declaring them here is what lets the same engine run from the UI,
the REST API (`POST /api/jobs` validates params against the model, 422 names the field)
and the CLI.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel

from core.contracts import JobHandle, Services

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import APIRouter


@dataclass(frozen=True)
class JobKind:
    name: str  # globally unique, "<module>.<verb>", e.g. "sr.upscale"
    params: type[BaseModel]
    run: Callable[[JobHandle, Any, Services], Any]
    gpu: bool = True  # GPU-heavy jobs share one device lease and run one at a time
    title_key: str = ""
    # For resumable kinds: (old params, old job id, ctx) -> params of the continuing job.
    resume: Callable[[dict, str, Services], dict] | None = None
    # Checks needing the context before the job is recorded (e.g. "that output file exists"):
    # (validated params, ctx) -> None, raising StudioError; REST answers 422, the CLI says it.
    check: Callable[[Any, Services], None] | None = None
    # Where the comparable settings sit in the params (e.g. "train" for a job that wraps the
    # training params of another kind), so runs of both kinds line up in the Jobs comparison.
    compare_root: str = ""


@dataclass(frozen=True)
class OpenWith:
    """This tab can open jobs of these kind prefixes ("Try it"); see core.ui.open_with."""
    kinds: tuple[str, ...]
    label_key: str


@dataclass(frozen=True)
class Module:
    id: str
    title_key: str
    order: int
    build_ui: Callable[[Services], None] | None = None
    job_kinds: list[JobKind] = field(default_factory=list)
    # Extra REST routes (e.g. classifier predict); mounted under /api by the shell.
    api_router: Callable[[Services], "APIRouter"] | None = None
    open_with: OpenWith | None = None


def lazy(target: str) -> Callable[..., Any]:
    """`lazy("pkg.mod:func")`: a callable importing `func` on first call.

    Lets a module's `__init__` name its engines and UI without importing torch at startup.
    """
    module_name, attr = target.split(":")
    cache: dict[str, Callable[..., Any]] = {}

    def call(*args: Any, **kwargs: Any) -> Any:
        fn = cache.get("fn")
        if fn is None:
            import importlib

            fn = cache["fn"] = getattr(importlib.import_module(module_name), attr)
        return fn(*args, **kwargs)

    call.__name__ = call.__qualname__ = attr
    return call
