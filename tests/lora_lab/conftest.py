"""Fixtures of the LoRA Lab tests: one tiny SDXL folder per session, one torch thread."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory) -> Path:
    from tests.lora_training.tiny_sdxl import make_tiny_sdxl

    return make_tiny_sdxl(tmp_path_factory.mktemp("tiny_sdxl_lab") / "sdxl")


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the CI box has 2 shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
