"""Typed settings: `config/settings.json` defaults, then the user's overrides, then env vars.

Layers, last wins:
1. `config/settings.json` in the install (the defaults, seed 001's key names);
2. `<home>/config/settings.user.json` (written by the Settings view);
3. environment variables `CYBERBILL_<KEY>` (what tests and CI use).

`home` is `CYBERBILL_HOME` or the install folder; every relative path key resolves
against it, so a test points the whole studio at a temp dir with one variable.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

INSTALL_DIR = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = INSTALL_DIR / "config" / "settings.json"
ENV_PREFIX = "CYBERBILL_"


def _coerce(raw: str, like: Any) -> Any:
    if isinstance(like, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(like, int):
        return int(raw)
    if isinstance(like, float):
        return float(raw)
    return raw


class Settings:
    """Read-mostly settings with path resolution. Thread-safe for reads."""

    def __init__(self, home: Path | None = None, overrides: dict[str, Any] | None = None) -> None:
        self.home = Path(home or os.environ.get(ENV_PREFIX + "HOME") or INSTALL_DIR).resolve()
        self.defaults: dict[str, Any] = json.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))
        self.values: dict[str, Any] = dict(self.defaults)
        self.user_file = self.home / "config" / "settings.user.json"
        if self.user_file.is_file():
            try:
                self.values.update(json.loads(self.user_file.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                pass  # a broken user file must not stop the app; defaults apply
        for key, like in self.defaults.items():
            env = os.environ.get(ENV_PREFIX + key)
            if env is not None:
                self.values[key] = _coerce(env, like)
        if overrides:
            self.values.update(overrides)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def path(self, key: str, create: bool = True) -> Path:
        """A path setting resolved against home (absolute values kept)."""
        p = Path(str(self.values[key])).expanduser()
        if not p.is_absolute():
            p = self.home / p
        if create:
            p.mkdir(parents=True, exist_ok=True)
        return p

    def save_user(self, changes: dict[str, Any]) -> None:
        """Persist changes of known keys to the user file (atomically)."""
        unknown = set(changes) - set(self.defaults)
        if unknown:
            raise KeyError(", ".join(sorted(unknown)))
        current: dict[str, Any] = {}
        if self.user_file.is_file():
            current = json.loads(self.user_file.read_text(encoding="utf-8"))
        current.update(changes)
        self.user_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.user_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(current, indent=2), encoding="utf-8")
        tmp.replace(self.user_file)
        self.values.update(changes)

    def allowed_roots(self) -> list[Path]:
        """The folders the studio may read/write for the user (Gradio allowed_paths)."""
        keys = [k for k, v in self.defaults.items() if k.endswith("_DIR") and isinstance(v, str)]
        return sorted({self.path(k) for k in keys})
