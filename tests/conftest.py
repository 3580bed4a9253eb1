"""Shared fixtures: a studio context whose every folder lives under a temp dir."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def studio_home(tmp_path: Path) -> Path:
    home = tmp_path / "studio"
    home.mkdir()
    return home


@pytest.fixture
def ctx(studio_home: Path):
    """A full context (modules registered) under a temp home; closed after the test."""
    from core.context import build_context

    c = build_context(studio_home)
    yield c
    c.close()


@pytest.fixture
def bare_ctx(studio_home: Path):
    """A context with no modules registered (core tests)."""
    from core.context import build_context

    c = build_context(studio_home, load_modules=False)
    yield c
    c.close()
