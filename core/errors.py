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


def error_text(error: dict, t=None) -> str:
    """The message of one pydantic error; translated when a validator raised a StudioError
    (e.g. core.paths.PathRefused), pydantic's own English text otherwise."""
    cause = (error.get("ctx") or {}).get("error")
    if t is not None and isinstance(cause, StudioError):
        return cause.render(t)
    return error.get("msg", "")


def field_errors(exc, t=None) -> list[str]:
    """A pydantic ValidationError as "field: message" lines (CLI output)."""
    return [f"{'.'.join(map(str, e['loc'])) or '?'}: {error_text(e, t)}" for e in exc.errors()]


def user_message(exc: BaseException, t) -> str:
    """One translated sentence for any error a form or a command can meet."""
    from pydantic import ValidationError

    if isinstance(exc, StudioError):
        return exc.render(t)
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return t("panel.bad_field", field=".".join(map(str, first.get("loc", ()))) or "?", error=error_text(first, t))
    return t("errors.unexpected", error=f"{type(exc).__name__}: {exc}")
