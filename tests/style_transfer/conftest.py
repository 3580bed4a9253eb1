"""Fixtures: one set of random VGG19 weights per session, linked into each test's STYLE_DIR."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.style_transfer.helpers import save_vgg



@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these convs are tiny, and with other jobs on a 2-core CI box a
    second thread mostly spins (measured 8x slower here). Restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def vgg_file(tmp_path_factory) -> Path:
    return save_vgg(tmp_path_factory.mktemp("vgg"))


@pytest.fixture
def style_ctx(ctx, vgg_file: Path):
    """The studio context with the VGG19 weights in STYLE_DIR (as a user would put them)."""
    (ctx.path("STYLE_DIR") / vgg_file.name).symlink_to(vgg_file)
    return ctx
