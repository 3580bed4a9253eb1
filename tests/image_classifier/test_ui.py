"""The tab builds inside the real shell, and its helpers answer with the right shapes."""
from __future__ import annotations

import pytest

from core.i18n import missing_keys


def test_locales_complete():
    assert not missing_keys()


def test_tab_builds_in_shell(ctx):
    gr = pytest.importorskip("gradio")
    from core.shell import build_app

    demo = build_app(ctx)
    assert isinstance(demo, gr.Blocks)
    tab_failed = [b for b in demo.blocks.values() if getattr(b, "value", None) and "tab_failed" in str(b.value)]
    assert tab_failed == []
    assert any(p.kind_prefix == "clf." for p in ctx.panels)


def test_ui_helpers(trained, tmp_path, color_data):
    from modules.image_classifier.ui import add_uploads, model_report, predict_files, scan_table

    ctx, _, _ = trained
    rows, text = scan_table(ctx, str(color_data))
    assert rows == [["blue", 21], ["red", 21]] and "42" in text
    summary, per_class, png = model_report(ctx, "colors")
    assert [r[0] for r in per_class] == ["blue", "red"] and png.endswith("confusion_matrix.png")
    files = [str(color_data / "red" / "red_001.png"), str(color_data / "red" / "broken.png")]
    first, table = predict_files(ctx, "colors", files, 2, "torch")
    assert set(first) == {"blue", "red"} and len(table) == 2
    assert table[0][0] == "red_001.png" and table[1][1] == "-"  # the broken file is reported, not fatal
    folder = add_uploads(ctx, files + [str(tmp_path)], "my red", "up")
    from pathlib import Path

    assert sorted(p.name for p in (Path(folder) / "my red").iterdir()) == ["broken.png", "red_001.png"]
