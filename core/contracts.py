"""What a run function can rely on, as structural types: the job handle it reports through
and the services it receives.

A leaf module (it imports nothing of the studio): `core.module` (the plugin contract) and
`core.jobs` (the engine) both name these types, so neither has to import the other's home or
`core.context` to annotate a signature, and core stays free of import circles
(tests/core/test_import_graph.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol


class JobHandle(Protocol):
    """The `job` a run function gets: it reports through it and polls it for Stop."""

    id: str
    workdir: Path
    t: Callable[..., str]  # the studio's translator

    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...
    def progress(self, done: float, total: float, desc: str = "") -> None: ...
    def metric(self, step: int, **values: float) -> None: ...
    def artifact(self, path: str | Path, kind: str) -> None: ...
    def should_stop(self) -> bool: ...
    def raise_if_stopped(self) -> None: ...


class Services(Protocol):
    """The `ctx` a run function gets (core.context.StudioContext is the one implementation)."""

    config: Any
    t: Any
    store: Any
    jobs: Any
    models: Any

    def path(self, key: str) -> Path: ...
