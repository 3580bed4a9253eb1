"""Fixtures of the LoRA training tests: one tiny SDXL folder per test session."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory) -> Path:
    from tests.lora_training.tiny_sdxl import make_tiny_sdxl

    return make_tiny_sdxl(tmp_path_factory.mktemp("tiny_sdxl") / "sdxl")
