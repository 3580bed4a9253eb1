"""Finds the modules: every package under `modules/` exposing `MODULE`, sorted by order.

A module that fails to import is skipped with its error kept in `broken`, so one bad
plugin never takes the studio down (the Settings view lists it).
"""
from __future__ import annotations

import importlib
import pkgutil
import traceback

from core.config import INSTALL_DIR
from core.module import Module

broken: dict[str, str] = {}


def discover_modules(package: str = "modules") -> list[Module]:
    found: list[Module] = []
    folder = INSTALL_DIR / package
    for info in sorted(pkgutil.iter_modules([str(folder)]), key=lambda i: i.name):
        if not info.ispkg or info.name.startswith("_"):
            continue
        try:
            mod = importlib.import_module(f"{package}.{info.name}")
        except Exception:  # noqa: BLE001
            broken[info.name] = traceback.format_exc()
            continue
        module = getattr(mod, "MODULE", None)
        if isinstance(module, Module):
            found.append(module)
    return sorted(found, key=lambda m: (m.order, m.id))
