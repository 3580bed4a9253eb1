"""Fixtures of the LoRA training tests: one tiny SDXL folder per test session."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory) -> Path:
    from tests.lora_training.tiny_sdxl import make_tiny_sdxl

    return make_tiny_sdxl(tmp_path_factory.mktemp("tiny_sdxl") / "sdxl")


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a shared 2-core CI box, 2 threads spin against other jobs and
    cost 10x the CPU time of the same work on one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
