"""Hostile names and paths on every entry point that takes one (issue 12, point 1).

Each of the HOSTILE names (traversal, absolute, `~`, NUL, control and bidi characters,
over-long, `.`/`..`, reserved, Windows characters, non-UTF-8, Unicode twins, ...) is given
to every params field that names where something is written, then to the core function
the engines call, then (for the names a field accepts) to real engine code that writes.
A REST and a CLI path are checked too. Whatever happens, nothing may appear outside the
studio's roots: the whole temp tree is scanned before and after.
"""
from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from core.errors import StudioError
from core.i18n import Translator
from core.paths import PathRefused, check_name, check_relative, inside, name_inside

HOSTILE = [
    "../escape", "..", ".", "../../../../../../../../tmp/hp_escape", "a/../../b", "a/../b", "a/./b",
    "/etc/passwd", "/tmp/hp_escape", "~", "~/x", "~root/x", "x\x00y", "\x00", "a\nb", "a\rb", "a\tb",
    "\x1b[31mred", "a\x7fb", "a\x85b", "evil\u202egnp.exe", "a\u2066b\u2069", "a\u200eb", "a\u200bb", "\ufeffbom",
    "a\u2028b", "x" * 256, "é" * 128, "ok/" + "b" * 300, "a/" * 2100, "CON", "nul.txt", "com1", "LPT9.png",
    "aux", "Con.tar.gz", "a:b", 'a"b', "a|b", "a?b", "a*b", "a<b>", "..\\..\\x", "C:\\Windows", "C:x",
    "\\\\server\\share", "trailing.", "x./y", "mid /x", ".hidden", "ok/.git", "", "   ",
    "caf\udce9", os.fsdecode(b"\xff\xfe"),
    # accepted (harmless) but must stay inside: literal percent-encoding, full-width look-alikes, NFD, subfolders
    "%2e%2e%2f%2e%2e", "\uff0e\uff0e\uff0fx", "cafe\u0301", "dossier été", "日本語", "sub/dir", " padded ",
]
ACCEPTED_AS_PATH = {"%2e%2e%2f%2e%2e", "\uff0e\uff0e\uff0fx", "cafe\u0301", "dossier été", "日本語", "sub/dir",
                    " padded "}


def test_the_list_is_long_enough():
    assert len(HOSTILE) >= 40 and len(set(HOSTILE)) == len(HOSTILE)


def _snapshot(top: Path, allowed: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(top):
        d = Path(dirpath)
        if d == allowed or allowed in d.parents:
            continue
        out |= {str(d / n) for n in dirnames + filenames}
    return out


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_core_function_refuses_or_contains(tmp_path, name):
    root = tmp_path / "root"
    root.mkdir()
    t_en, t_fr = Translator("en"), Translator("fr")
    for fn in (inside, name_inside):
        try:
            p = fn(root, name, "output_dir")
        except PathRefused as exc:
            assert exc.key.startswith("paths.")
            for t in (t_en, t_fr):  # translated, and the message itself is printable
                msg = exc.render(t)
                assert "output_dir" in msg and "paths." not in msg and "\x00" not in msg and "\u202e" not in msg
            continue
        assert name in ACCEPTED_AS_PATH and (fn is inside or "/" not in name)
        assert root.resolve() in p.resolve().parents
        assert unicodedata.is_normalized("NFC", str(p.relative_to(root)))
    if name not in ACCEPTED_AS_PATH:
        with pytest.raises(PathRefused):
            check_relative(name)
    with pytest.raises(PathRefused) if (name not in ACCEPTED_AS_PATH or "/" in name) else _nothing():
        check_name(name)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_absolute_inside_the_root_symlink_escape_and_unicode_twins(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    assert inside(root, str(root / "a" / "b")) == root / "a" / "b"
    assert inside(root, str(root)) == root
    with pytest.raises(PathRefused, match="absolute"):
        inside(root, str(root / "a"), allow_absolute=False)
    with pytest.raises(PathRefused) as ei:
        inside(root, str(root / ".." / "outside"))
    assert ei.value.key == "paths.traversal"
    (root / "link").symlink_to(outside)
    with pytest.raises(PathRefused) as ei:
        inside(root, "link/x")
    assert ei.value.key == "paths.outside"
    (root / "inner").mkdir()
    (root / "in_link").symlink_to(root / "inner")
    assert inside(root, "in_link/x") == root / "in_link" / "x"  # a link that stays inside is fine
    # the same name in NFD already on disk: the NFC one is refused, not created beside it
    (root / unicodedata.normalize("NFD", "café")).mkdir()
    for typed in ("café", unicodedata.normalize("NFD", "café"), "café/sub"):
        with pytest.raises(PathRefused) as ei:
            inside(root, typed)
        assert ei.value.key == "paths.unicode_twin"
        assert "existing" in ei.value.params
    assert sorted(os.listdir(root)) == sorted(["link", "inner", "in_link", unicodedata.normalize("NFD", "café")])


# (kind, field, other params needed, the config key of the root, a single name (True) or a path)
ENTRY_POINTS = [
    ("sr.upscale", "output_dir", {"model": "m.pth", "inputs": ["a.png"]}, "OUTPUTS_DIR", False),
    ("rife.interpolate_video", "output", {"input": "v.mp4"}, "OUTPUTS_DIR", False),
    ("rife.interpolate_pair", "output_dir", {"image_a": "a.png", "image_b": "b.png"}, "OUTPUTS_DIR", False),
    ("style.gatys", "output", {"content": "c.png", "styles": ["s.png"]}, "OUTPUTS_DIR", False),
    ("style.fast_apply", "output_dir", {"model": "n.pth", "inputs": ["i.png"]}, "OUTPUTS_DIR", False),
    ("style.export_onnx", "output", {"model": "n.pth"}, "OUTPUTS_DIR", False),
    ("style.fast_train", "name", {"style": "s.png", "content_dir": "d"}, "STYLE_DIR", True),
    ("lora.train", "project", {}, "LORA_PROJECTS_DIR", True),
    ("lora.train", "output_name", {}, "LORAS_DIR", True),
    ("lora.prepare", "project", {}, "LORA_PROJECTS_DIR", True),
    ("lora.prepare", "concept", {"project": "p"}, "LORA_PROJECTS_DIR", True),
    ("lora.caption", "project", {}, "LORA_PROJECTS_DIR", True),
    ("lora.caption", "concept", {"project": "p"}, "LORA_PROJECTS_DIR", True),
    ("lora.prepare_and_train", "concept", {}, "LORA_PROJECTS_DIR", True),
    ("clf.train", "name", {"data_dir": "d"}, "CLASSIFIERS_DIR", True),
    ("clf.export_onnx", "model", {}, "CLASSIFIERS_DIR", True),
]


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from core.api import create_api
    from core.context import build_context

    top = tmp_path_factory.mktemp("hostile")
    ctx = build_context(top / "home")
    before = _snapshot(top, top / "home")
    yield top, ctx, TestClient(create_api(ctx))
    ctx.close()
    assert _snapshot(top, top / "home") == before, "something was written outside the studio's home"


def test_every_entry_point_refuses_or_contains_every_hostile_name(studio):
    top, ctx, _ = studio
    assert {k for k, *_ in ENTRY_POINTS} >= {"sr.upscale", "rife.interpolate_video", "rife.interpolate_pair",
                                             "style.gatys", "style.fast_apply", "style.export_onnx",
                                             "style.fast_train", "lora.train", "lora.prepare", "lora.caption",
                                             "lora.prepare_and_train", "clf.train", "clf.export_onnx"}
    refused = accepted = 0
    for kind, field, base, root_key, single in ENTRY_POINTS:
        model = ctx.jobs.kinds[kind].params
        root = ctx.path(root_key)
        for name in HOSTILE:
            try:
                params = model.model_validate({**base, field: name})
            except ValidationError as exc:
                assert any(e["loc"][:1] == (field,) for e in exc.errors()), (kind, field, repr(name))
                refused += 1
                continue
            value = getattr(params, field)
            if value in ("", None):  # empty means "the default place": fine
                continue
            assert name in ACCEPTED_AS_PATH and not (single and "/" in name), (kind, field, repr(name))
            # what the engine then calls (core.paths), with the real root
            target = name_inside(root, value, field) if single else inside(root, value, field)
            assert root.resolve() in target.resolve().parents, (kind, field, repr(name))
            accepted += 1
    assert refused >= 40 * len(ENTRY_POINTS) and accepted > 0


def test_real_engines_write_accepted_names_only_inside(studio):
    """The engine code that creates folders, fed every name its field accepts."""
    from modules.lora_training.data.project import Project

    top, ctx, _ = studio
    made = []
    for name in HOSTILE:
        try:
            check_name(name)
        except StudioError:
            with pytest.raises(StudioError):
                Project.from_ctx(ctx, name).create()
            continue
        project = Project.from_ctx(ctx, name).create()
        project.concept_dir(name).mkdir(parents=True, exist_ok=True)
        made.append(project.dir)
    root = ctx.path("LORA_PROJECTS_DIR").resolve()
    assert made and all(d.resolve().parent == root and (d / "project.json").is_file() for d in made)


def test_rest_refuses_with_the_field_and_a_translated_reason(studio):
    top, ctx, client = studio
    for kind, field, base, _, _ in ENTRY_POINTS:
        r = client.post("/jobs", json={"kind": kind, "params": {**base, field: "../../escape"}})
        assert r.status_code == 422, (kind, r.text)
        errs = [e for e in r.json()["detail"] if e["loc"] == ["body", "params", field]]
        assert errs, (kind, r.text)
        if errs[0]["type"] == "value_error":  # core.paths' reason, translated (clf names hit their pattern first)
            assert "“../../escape”" in errs[0]["msg"] and "paths." not in errs[0]["msg"], (kind, errs)
    r = client.post("/jobs", json={"kind": "lora.prepare_and_train", "params": {"train": {"project": "/etc"}}})
    assert ["body", "params", "train", "project"] in [e["loc"] for e in r.json()["detail"]]
    assert ctx.store.list_jobs(None, None, 100, 0) == []


def test_sr_job_through_the_runner_stops_at_a_link_leaving_outputs(studio, tmp_path):
    """Lexically fine, but OUTPUTS_DIR/link points elsewhere: the job fails, nothing is written there."""
    import numpy as np
    import torch
    from PIL import Image

    from tests.super_resolution.conftest import compact_sd

    top, ctx, _ = studio
    torch.save({"params": compact_sd(zero_last=True)}, ctx.path("UPSCALERS_DIR") / "n4.pth")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(ctx.path("DATA_DIR") / "src.png")
    elsewhere = top / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    (ctx.path("OUTPUTS_DIR") / "link").symlink_to(elsewhere)
    try:
        jid = ctx.jobs.submit("sr.upscale", {"model": "n4.pth", "inputs": [str(ctx.path("DATA_DIR") / "src.png")],
                                             "output_dir": "link/out"})
        row = ctx.jobs.wait(jid, timeout=60)
        assert row["status"] == "failed" and "link/out" in row["error"] and "link" in row["error"]
        assert list(elsewhere.iterdir()) == []
        ok = ctx.jobs.submit("sr.upscale", {"model": "n4.pth", "inputs": [str(ctx.path("DATA_DIR") / "src.png")],
                                            "output_dir": "dossier été/x"})
        row = ctx.jobs.wait(ok, timeout=60)
        assert row["status"] == "completed", row
        assert (ctx.path("OUTPUTS_DIR") / "dossier été" / "x" / "src.png").is_file()
    finally:
        (ctx.path("OUTPUTS_DIR") / "link").unlink()
        elsewhere.rmdir()


def test_lora_and_style_clis_refuse_with_the_translated_reason(tmp_path, capsys):
    import json

    from modules.lora_training.__main__ import main as lora_main
    from modules.style_transfer.__main__ import main as style_main

    home = tmp_path / "home"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"project": "../../escape"}), encoding="utf-8")
    assert lora_main(["estimate", "--config", str(cfg), "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert "project" in err and "“../../escape”" in err and "paths." not in err
    (tmp_path / "c.png").write_bytes(b"")
    rc = style_main(["--home", str(home), "gatys", "--content", str(tmp_path / "c.png"), "--styles",
                     str(tmp_path / "c.png"), "--output", "../../escape.png"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "output" in err and "“../../escape.png”" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "cfg.json", "home"]
