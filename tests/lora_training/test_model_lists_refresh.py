"""Model lists follow their folders (issue 18.4): a file copied into models/... after start-up
appears in every list of every tab that shows that folder, on the tab's Refresh and on a page
load, without a restart; the user's pick is kept."""
from __future__ import annotations

import shutil

import torch


def _rescans(demo, event: str):
    """(fn, inputs, outputs) of every model-list rescan wired on `event` ('load' or 'click')."""
    out = []
    for bf in demo.fns.values():
        fn = bf.fn
        if getattr(fn, "__module__", "") == "core.ui.model_lists" and any(ev == event for _, ev in bf.targets):
            out.append(bf)
    return out


def _choices(update) -> list:
    return [c[1] if isinstance(c, (tuple, list)) else c for c in (update.get("choices") or [])]


def _run(bf) -> list:
    res = bf.fn(*[c.value for c in bf.inputs])
    return list(res) if isinstance(res, tuple) else [res]


def _lists_with(demo, event: str, name: str) -> int:
    n = 0
    for bf in _rescans(demo, event):
        for comp, update in zip(bf.outputs, _run(bf)):
            if isinstance(update, dict) and name in _choices(update):
                n += 1
    return n


def test_files_copied_after_start_appear_on_refresh_and_reload(ctx, tiny_sdxl):
    from core.shell import build_app
    from safetensors.torch import save_file

    demo = build_app(ctx)
    assert not any(getattr(b, "value", None) and "tab_failed" in str(b.value) for b in demo.blocks.values())
    assert _rescans(demo, "load") and len(_rescans(demo, "click")) >= 5  # SR, RIFE, style, classifier, LoRA

    # copied in while the studio runs
    save_file({"w": torch.zeros(1)}, str(ctx.path("UPSCALERS_DIR") / "new_x4.safetensors"))
    save_file({"w": torch.zeros(1)}, str(ctx.path("RIFE_DIR") / "new_rife.safetensors"))
    ctx.path("STYLE_DIR").mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.zeros(1)}, str(ctx.path("STYLE_DIR") / "new_style.safetensors"))
    base = ctx.path("CHECKPOINTS_DIR") / "new_base"
    shutil.copytree(tiny_sdxl, base)
    cap = ctx.path("CAPTIONERS_DIR") / "new_captioner"
    cap.mkdir(parents=True)
    (cap / "config.json").write_text('{"model_type": "florence2"}', encoding="utf-8")  # what detect_kind reads
    tagger = ctx.path("CAPTIONERS_DIR") / "new_tagger"
    tagger.mkdir()
    (tagger / "model.onnx").write_bytes(b"0")
    (tagger / "selected_tags.csv").write_text("tag_id,name,category,count\n", encoding="utf-8")

    for event in ("click", "load"):  # the tab's Refresh, and a page reload
        assert _lists_with(demo, event, "new_x4.safetensors") >= 1, event
        assert _lists_with(demo, event, "new_rife.safetensors") >= 1, event
        assert _lists_with(demo, event, "new_style.safetensors") >= 3, event  # apply, train-from, export
        assert _lists_with(demo, event, str(base)) >= 1, event
        assert _lists_with(demo, event, "new_captioner") >= 1, event
        assert _lists_with(demo, event, "new_tagger") >= 1, event  # the WD14 list too


def test_rescan_keeps_the_pick():
    from core.ui.model_lists import rescan

    assert rescan(lambda: ["a", "b"], "b")["value"] == "b"
    assert rescan(lambda: ["a", "b"], "gone")["value"] == "a"  # the picked file was removed
    assert rescan(lambda: ["a"], "typed/path", custom=True)["value"] == "typed/path"
    assert rescan(lambda: ["a"], None, optional=True)["value"] is None  # "no init" stays no init
    assert rescan(lambda: [("A", "a")], None)["value"] == "a"
