"""The one services object every module and job receives (InvokeAI style).

`StudioContext` bundles config, translation, the store, the job runner and the model
manager. `build_context()` makes one for the app, the CLI or a test (pass `home` to put
every folder under a temp dir).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import Settings
from core.i18n import Translator, resolve_language
from core.instance import InstanceLock
from core.jobs import JobRunner
from core.models import ModelManager
from core.store import Store


@dataclass
class StudioContext:
    config: Settings
    t: Translator
    store: Store
    jobs: JobRunner
    models: ModelManager
    modules: list = field(default_factory=list)
    i18n: Any = None  # gr.I18n, set by the shell when a UI is built
    panels: list = field(default_factory=list)  # JobPanels built, re-attached on page load
    lock: InstanceLock | None = None  # held while this context owns DATA_DIR

    def path(self, key: str) -> Path:
        return self.config.path(key)

    def close(self) -> None:
        self.jobs.shutdown()
        self.store.close()
        if self.lock is not None:
            self.lock.release()


def build_context(home: str | Path | None = None, overrides: dict | None = None,
                  load_modules: bool = True) -> StudioContext:
    config = Settings(Path(home) if home else None, overrides)
    t = Translator(resolve_language(config.get("LANGUAGE")))
    data = config.path("DATA_DIR")
    # Before the store is opened: a second instance must not mark our running jobs interrupted.
    lock = InstanceLock(data).acquire()
    try:
        store = Store(data / "studio.sqlite3")
    except BaseException:
        lock.release()
        raise
    models = ModelManager(precision=config.get("PRECISION", "auto"))
    ctx = StudioContext(config=config, t=t, store=store, jobs=None, models=models, lock=lock)  # type: ignore[arg-type]
    ctx.jobs = JobRunner(store, ctx, jobs_dir=data / "jobs", cpu_workers=int(config.get("CPU_WORKERS", 2)), t=t)
    if load_modules:
        from core.registry import discover_modules

        ctx.modules = discover_modules()
        for module in ctx.modules:
            for kind in module.job_kinds:
                ctx.jobs.register(kind)
    return ctx
