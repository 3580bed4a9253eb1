"""User-facing errors: a locale key plus parameters, translated where they are shown.

Engines raise `StudioError("media.corrupt", path=...)`; the job runner stores the
translated message as the job's error and the traceback in its log, so the user reads
one clear sentence and a developer still has the full trace.
"""
from __future__ import annotations


class StudioError(Exception):
    """An error whose message is a locale key with named parameters."""

    def __init__(self, key: str, **params: object) -> None:
        self.key = key
        self.params = params
        super().__init__(f"{key} {params}" if params else key)

    def render(self, t) -> str:
        """Translate with `t(key, **params)` (see core.i18n.Translator)."""
        return t(self.key, **self.params)


class JobStopped(Exception):
    """Raised by `job.raise_if_stopped()`; the runner records the job as stopped."""
