"""Issue 18.3: a captioner that is not on disk is refused at once, with one message naming its
files and folder, without any network call (no hub function, no socket, no HTTP request).

The guard replaces every way out of the process (socket connect, httpx requests, the
huggingface_hub download functions) with a recorder that raises, so a single retry or a
silent download attempt would show up as a recorded call."""
from __future__ import annotations

import socket

import httpx
import huggingface_hub
import pytest

from core import hub
from core.errors import StudioError
from modules.lora_training.data.captioners import load_one

from tests.lora_training.tiny_wd14 import make_tiny_wd14


@pytest.fixture
def no_network(monkeypatch):
    calls: list[str] = []

    def refuse(name):
        def fake(*args, **kwargs):
            calls.append(name)
            raise OSError(f"network call attempted: {name}")
        return fake

    for name in ("snapshot_download", "hf_hub_download", "model_info"):
        monkeypatch.setattr(huggingface_hub, name, refuse(name))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(httpx.Client, "send", refuse("httpx.send"))
    return calls


@pytest.mark.parametrize("kind", ["florence", "wd14", "vlm"])
def test_offline_refusal_makes_no_network_call(kind, bare_ctx, no_network, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StudioError) as e:
        load_one(kind, "someone/not-downloaded-model", bare_ctx.path("CAPTIONERS_DIR"), "", "cpu", None)
    assert e.value.key == "lora_data.captioner_missing"
    assert e.value.params["name"] == "someone/not-downloaded-model"
    assert e.value.params["folder"] == str(bare_ctx.path("CAPTIONERS_DIR"))
    assert e.value.params["where"].endswith("not-downloaded-model")
    expected = {"wd14": "model.onnx, selected_tags.csv", "florence": "config.json", "vlm": "preprocessor_config.json"}
    assert expected[kind] in e.value.params["files"]
    assert no_network == []


def test_unreachable_hub_is_one_connect_no_retry(bare_ctx, no_network, monkeypatch) -> None:
    """Offline not declared: one short TCP connect decides; no hub function is called."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with pytest.raises(StudioError) as e:
        load_one("wd14", "SmilingWolf/not-here", bare_ctx.path("CAPTIONERS_DIR"), "", "cpu", None)
    assert e.value.key == "lora_data.captioner_missing"
    assert no_network == ["socket.create_connection"]


def test_incomplete_folder_names_missing_files(bare_ctx, tmp_path, no_network) -> None:
    folder, _, _ = make_tiny_wd14(bare_ctx.path("CAPTIONERS_DIR") / "half-tagger")
    (folder / "selected_tags.csv").unlink()
    with pytest.raises(StudioError) as e:
        load_one("wd14", "half-tagger", bare_ctx.path("CAPTIONERS_DIR"), "", "cpu", None)
    assert e.value.params["files"] == "selected_tags.csv" and e.value.params["folder"] == str(folder)
    assert no_network == []
    msg = e.value.render(bare_ctx.t)
    assert "selected_tags.csv" in msg and str(folder) in msg


def test_local_and_cached_models_load_without_network(bare_ctx, tmp_path, no_network, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # even "online", a local model never asks the hub
    make_tiny_wd14(bare_ctx.path("CAPTIONERS_DIR") / "SmilingWolf--wd-tiny")
    tagger = load_one("wd14", "SmilingWolf/wd-tiny", bare_ctx.path("CAPTIONERS_DIR"), "", "cpu", None)
    assert len(tagger.tags) > 0
    # a hub-cache snapshot (the layout huggingface_hub writes) is found from the disk alone
    cache = tmp_path / "hf-cache"
    snap = cache / "models--someone--cached-tagger" / "snapshots" / "abc123"
    make_tiny_wd14(snap)
    (cache / "models--someone--cached-tagger" / "refs").mkdir()
    (cache / "models--someone--cached-tagger" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert hub.cached_snapshot("someone/cached-tagger", ("model.onnx", "selected_tags.csv")) == snap
    tagger = load_one("wd14", "someone/cached-tagger", bare_ctx.path("CAPTIONERS_DIR"), "", "cpu", None)
    assert len(tagger.tags) > 0
    assert no_network == []


def test_repo_id_shape() -> None:
    assert hub.looks_like_repo_id("Qwen/Qwen2.5-VL-3B-Instruct")
    for ref in ("./a/b", "/abs/x", "a/b/c", "C:\\x\\y", "name", "a/"):
        assert not hub.looks_like_repo_id(ref), ref
