"""Security defaults: loopback by default, a warning when listening openly without auth,
credentials on both the Gradio app and /api, file access limited to the studio's folders,
uploads capped; and source-level guards (no trust_remote_code=True, no shell built from
strings, no pickle that can run code)."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import httpx
import psutil
import pytest

from core.i18n import Translator
from tests.reliability.helpers import live_studio

ROOT = Path(__file__).resolve().parents[2]


def listening_ip(port: int) -> str:
    for conn in psutil.Process().net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
            return conn.laddr.ip
    raise AssertionError(f"nothing listens on {port}")


def test_default_server_is_loopback_with_auth_files_and_upload_limits(tmp_path, capsys):
    import main

    args = main.parse_args([])
    home = tmp_path / "home"
    with live_studio(home, overrides={"MAX_UPLOAD_MB": 1}, auth=("user", "s3cret")) as (base, ctx, demo):
        host, port, auth = main.server_options(args, ctx.config)
        assert host == "127.0.0.1" and auth is None
        assert listening_ip(demo.server_port) == "127.0.0.1"
        assert "--auth" not in capsys.readouterr().out  # no warning on loopback
        # credentials: the REST API (HTTP Basic) ...
        assert httpx.get(base + "/api/jobs").status_code == 401
        assert httpx.get(base + "/api/jobs", auth=("user", "wrong")).status_code == 401
        assert httpx.get(base + "/api/jobs", auth=("user", "s3cret")).status_code == 200
        # ... and the Gradio app (its config, API info and files need the login)
        anon = httpx.Client(base_url=base)
        for path in ("/config", "/gradio_api/info"):
            assert anon.get(path).status_code == 401
        assert anon.post("/login", data={"username": "user", "password": "nope"}).status_code in (400, 401)
        c = httpx.Client(base_url=base)
        assert c.post("/login", data={"username": "user", "password": "s3cret"}).status_code == 200
        assert c.get("/config").status_code == 200
        # files: inside a studio folder yes; elsewhere, the database and settings no
        inside = ctx.path("OUTPUTS_DIR") / "ok.txt"
        inside.write_text("hello")
        assert c.get(f"/gradio_api/file={inside}").text == "hello"
        assert anon.get(f"/gradio_api/file={inside}").status_code == 401
        ctx.config.save_user({"LANGUAGE": "en"})
        refused = ["/etc/passwd", str(ROOT / "main.py"), f"{ctx.path('OUTPUTS_DIR')}/../../../../etc/passwd",
                   str(ctx.store.path), str(ctx.config.user_file)]
        for path in refused:
            r = c.get(f"/gradio_api/file={path}")
            assert r.status_code in (403, 404), (path, r.status_code)
            assert "root:" not in r.text and "SQLite" not in r.text
        # uploads: capped by MAX_UPLOAD_MB
        ok = c.post("/gradio_api/upload", files={"files": ("a.bin", b"x" * 500_000)})
        assert ok.status_code == 200
        big = c.post("/gradio_api/upload", files={"files": ("b.bin", b"x" * 1_500_000)})
        assert big.status_code == 413


def test_listen_without_auth_prints_the_translated_warning(tmp_path, capsys):
    import main

    args = main.parse_args(["--listen", "--port", "7861"])
    with live_studio(tmp_path / "home", overrides={"LANGUAGE": "fr"}, host="0.0.0.0") as (base, ctx, demo):
        host, port, auth = main.server_options(args, ctx.config)
        assert (host, port, auth) == ("0.0.0.0", 7861, None)
        assert listening_ip(demo.server_port) == "0.0.0.0"
        out = capsys.readouterr().out
        assert Translator("fr")("shell.listen_warning", host="0.0.0.0") in out
        assert "ATTENTION" in out and httpx.get(base + "/api/jobs").status_code == 200
    opts = main.server_options(main.parse_args(["--listen", "--auth", "me:pw:with:colons"]), ctx.config)
    assert opts[2] == ("me", "pw:with:colons")
    with pytest.raises(SystemExit):
        main.server_options(main.parse_args(["--auth", "nopassword"]), ctx.config)


def python_files() -> list[Path]:
    skip = {".venv", "venv", "node_modules", ".git", "build", "dist", "__pycache__"}
    return [p for p in ROOT.rglob("*.py") if not (set(p.relative_to(ROOT).parts) & skip)]


def call_name(node: ast.Call) -> str:
    f = node.func
    parts = []
    while isinstance(f, ast.Attribute):
        parts.append(f.attr)
        f = f.value
    if isinstance(f, ast.Name):
        parts.append(f.id)
    return ".".join(reversed(parts))


def test_source_guards_remote_code_shell_and_pickle():
    assert json.loads((ROOT / "config" / "settings.json").read_text())["TRUST_REMOTE_CODE"] is False
    problems, files = [], python_files()
    assert len(files) > 20
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for node in ast.walk(ast.parse(text, str(path))):
            if not isinstance(node, ast.Call):
                continue
            where, name = f"{path.relative_to(ROOT)}:{node.lineno}", call_name(node)
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            trc = kw.get("trust_remote_code")
            if trc is not None and not (isinstance(trc, ast.Constant) and trc.value is False):
                if isinstance(trc, ast.Constant) or "TRUST_REMOTE_CODE" not in text:
                    problems.append(f"{where}: trust_remote_code not from the TRUST_REMOTE_CODE setting")
            shell = kw.get("shell")
            if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
                problems.append(f"{where}: shell={ast.unparse(shell)}")
            if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
                        "commands.getoutput"):
                problems.append(f"{where}: {name}() runs a shell")
            if name in ("pickle.load", "pickle.loads", "cPickle.load", "dill.load", "joblib.load"):
                problems.append(f"{where}: {name}() can run code from a file")
            if name == "torch.load":
                wo = kw.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    problems.append(f"{where}: torch.load without weights_only=True")
    assert not problems, "\n".join(problems)
