"""core.media_budget: the shared memory-budget check (SR and style use it)."""
from __future__ import annotations

import pytest

from core import media_budget as mb
from core.errors import StudioError
from core.i18n import Translator


@pytest.fixture
def budget():
    yield mb.set_work_budget
    mb.set_work_budget(None)


def test_fixed_budget_refuses_with_size_need_and_limit(budget):
    budget(2 * 10**9)
    mb.require_fits("ok.png", (100, 100), 1.9e9)  # under: nothing happens
    with pytest.raises(StudioError) as ei:
        mb.require_fits("huge.png", (12000, 12000), 28e9)
    e = ei.value
    assert e.key == "media.over_budget"
    assert e.params == {"path": "huge.png", "size": "12000x12000", "need": "28.0 GB", "limit": "2.0 GB"}
    for lang in ("en", "fr"):
        text = e.render(Translator(lang))
        assert "huge.png" in text and "12000x12000" in text and "28.0 GB" in text and "2.0 GB" in text


def test_automatic_budget_is_a_share_of_free_memory(monkeypatch, budget):
    budget(None)
    monkeypatch.setattr(mb, "available_bytes", lambda device="cpu": 10e9)
    assert mb.work_budget() == int(10e9 * mb.BUDGET_FRACTION)
    with pytest.raises(StudioError):
        mb.require_fits("x.png", (1, 1), 7.5e9)


def test_fmt_bytes():
    assert [mb.fmt_bytes(n) for n in (12, 1500, 2.5e6, 28.04e9, 3e12)] == ["12 B", "1.5 KB", "2.5 MB", "28.0 GB",
                                                                            "3.0 TB"]
