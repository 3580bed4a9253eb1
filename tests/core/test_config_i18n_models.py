"""Settings layering, locales completeness, safe weight loading, device choice."""
from __future__ import annotations

import json
import pickle

import pytest
import torch

from core.config import Settings
from core.errors import StudioError
from core.i18n import Translator, load_locale, missing_keys
from core.models import ModelManager, load_state_dict_file, pick_dtype


def test_settings_layers(tmp_path, monkeypatch):
    s = Settings(tmp_path)
    assert s["HOST"] == "127.0.0.1"
    assert s.path("LORAS_DIR") == tmp_path / "models" / "loras" and s.path("LORAS_DIR").is_dir()
    s.save_user({"PORT": 9999})
    assert json.loads(s.user_file.read_text())["PORT"] == 9999
    monkeypatch.setenv("CYBERBILL_PORT", "7000")
    monkeypatch.setenv("CYBERBILL_TRUST_REMOTE_CODE", "false")
    s2 = Settings(tmp_path)
    assert s2["PORT"] == 7000 and s2["TRUST_REMOTE_CODE"] is False
    with pytest.raises(KeyError):
        s.save_user({"NOT_A_KEY": 1})


def test_every_key_in_both_languages():
    assert missing_keys() == {}
    assert load_locale("fr")["jobs.title"] != load_locale("en")["jobs.title"]


def test_translator_params_and_fallback():
    assert Translator("fr")("jobs.unknown", id="a") == "Aucune tâche avec l'identifiant a."
    assert Translator("de")("jobs.title") == "Jobs"  # unknown language -> English
    assert Translator("en")("no.such.key") == "no.such.key"


def test_safe_weight_loading(tmp_path):
    from safetensors.torch import save_file

    sd = {"w": torch.randn(3, 3)}
    save_file(sd, str(tmp_path / "a.safetensors"))
    torch.save(sd, tmp_path / "a.pth")
    assert torch.equal(load_state_dict_file(tmp_path / "a.safetensors")["w"], sd["w"])
    assert torch.equal(load_state_dict_file(tmp_path / "a.pth")["w"], sd["w"])

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(StudioError) as e:
        load_state_dict_file(tmp_path / "evil.pth")
    assert e.value.key == "models.bad_weights" and not marker.exists()

    (tmp_path / "trunc.safetensors").write_bytes((tmp_path / "a.safetensors").read_bytes()[:20])
    with pytest.raises(StudioError):
        load_state_dict_file(tmp_path / "trunc.safetensors")
    with pytest.raises(StudioError) as e:
        load_state_dict_file(tmp_path / "missing.pth")
    assert e.value.key == "models.missing_file"


def test_model_manager_release_and_unload():
    mm = ModelManager()
    mm.load("job1", "a", lambda: object())
    mm.load("job1", "cache", lambda: object(), keep=True)
    mm.load("other", "b", lambda: object(), keep=True)
    assert mm.release("job1") == 1
    assert set(mm.loaded()) == {("job1", "cache"), ("other", "b")}
    assert mm.unload_others("job1") == 1
    assert mm.loaded() == [("job1", "cache")]
    assert mm.is_oom(RuntimeError("CUDA out of memory. Tried to allocate")) and not mm.is_oom(ValueError("x"))
    assert pick_dtype("cpu") == torch.float32 and pick_dtype("cpu", "bf16") == torch.bfloat16


def test_server_text_follows_the_browser_language(bare_ctx):
    """Issue 18.8: 'No job yet.', the Jobs table headers and statuses follow the browser, as
    labels do (Accept-Language), unless LANGUAGE forces a language."""
    from types import SimpleNamespace

    from core.i18n import browser_language, request_translator
    from core.ui.jobs_tab import jobs_table

    assert browser_language("fr-FR,fr;q=0.9,en;q=0.8") == "fr"
    assert browser_language("de-DE,en-US;q=0.7") == "en"
    assert browser_language("fr-FR", setting="en") == "en"
    req = SimpleNamespace(headers={"accept-language": "fr-CA,fr;q=0.9"})
    t = request_translator(bare_ctx, req)
    assert t("panel.no_job") == "Aucune tâche pour l'instant."
    assert request_translator(bare_ctx, None) is bare_ctx.t
    bare_ctx.store.create_job("j1", "x.y", {})
    df = jobs_table(bare_ctx.store, None, None, t)
    assert list(df.columns)[:3] == ["Tâche", "Type", "Statut"] and df.iloc[0, 2] == "En attente"
    assert df.iloc[0, 0] == "j1"
