"""One instance per data folder, and a busy port refused in one line (issue 18.5)."""
from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.errors import StudioError

ROOT = Path(__file__).resolve().parents[2]


def test_second_context_on_same_home_is_refused_until_the_first_closes(tmp_path):
    from core.context import build_context

    first = build_context(tmp_path / "home", load_modules=False)
    try:
        with pytest.raises(StudioError) as err:
            build_context(tmp_path / "home", load_modules=False)
        assert err.value.key == "core.instance_locked"
        assert str(__import__("os").getpid()) == str(err.value.params["pid"])
        other = build_context(tmp_path / "other", load_modules=False)  # another folder is fine
        other.close()
    finally:
        first.close()
    again = build_context(tmp_path / "home", load_modules=False)
    again.close()


def test_second_app_exits_clearly_and_leaves_the_first_jobs_running(tmp_path):
    home = tmp_path / "home"
    holder = textwrap.dedent(f"""
        import sys, time; sys.path.insert(0, {str(ROOT)!r})
        from core.context import build_context
        ctx = build_context({str(home)!r}, load_modules=False)
        def fn(job):
            while not job.should_stop():
                time.sleep(0.05)
        print(ctx.jobs.submit("t.forever", {{}}, fn), flush=True)
        time.sleep(120)
    """)
    p = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        jid = p.stdout.readline().strip()
        from core.store import Store

        db = home / "data" / "studio.sqlite3"
        deadline = time.time() + 30
        while Store(db).get_job(jid)["status"] != "running" and time.time() < deadline:
            time.sleep(0.1)
        second = subprocess.run([sys.executable, str(ROOT / "main.py"), "--home", str(home), "--port", "0"],
                                capture_output=True, text=True, timeout=120, env=_env())
        assert second.returncode == 2
        assert "Traceback" not in second.stderr and str(home / "data") in second.stderr
        assert "CyberBill Studio" in second.stderr
        assert Store(db).get_job(jid)["status"] == "running"  # untouched by the second start
    finally:
        p.kill()
        p.wait(10)


def test_busy_port_gives_one_line_naming_port(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, str(ROOT / "main.py"), "--home", str(tmp_path / "h"), "--port", str(port)],
                           capture_output=True, text=True, timeout=120, env=_env())
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "--port" in r.stderr and str(port) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def _env() -> dict:
    import os

    return {**os.environ, "LANG": "en_US.UTF-8", "HF_HUB_OFFLINE": "1"}


def test_a_refused_cli_job_closes_its_context(tmp_path):
    """A CLI whose job is refused (bad params, unknown kind) must not leave the runner's
    threads behind nor keep the data folder locked."""
    import io
    import threading

    from core.cli import run_job_foreground
    from core.context import build_context

    before = sorted(t.name for t in threading.enumerate() if t.name.startswith("job-"))
    for kind in ("no.such_kind", "sr.upscale"):
        ctx = build_context(tmp_path / "home")
        assert run_job_foreground(ctx, kind, {"nope": 1}, out=io.StringIO()) == 2
    after = sorted(t.name for t in threading.enumerate() if t.name.startswith("job-"))
    assert after == before
    build_context(tmp_path / "home", load_modules=False).close()  # the lock was released
