"""SQLite store: concurrent writers lose nothing, reopen after a kill, interrupted jobs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from core.store import Store

ROOT = Path(__file__).resolve().parents[2]


def test_concurrent_writers_lose_no_log_line(tmp_path):
    store = Store(tmp_path / "s.db")
    store.create_job("j", "k", {})

    def writer(w):
        for i in range(200):
            store.write_events([("log", "j", time.time(), "info", f"{w}:{i}")])

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    msgs = [r["message"] for r in store.logs("j", limit=10_000)]
    assert len(msgs) == 800
    for w in range(4):
        mine = [int(m.split(":")[1]) for m in msgs if m.startswith(f"{w}:")]
        assert mine == list(range(200))  # per-writer order kept
    store.close()


def test_two_processes_write_the_same_store(tmp_path):
    db = tmp_path / "s.db"
    Store(db).create_job("j", "k", {})
    code = textwrap.dedent(f"""
        import sys, time; sys.path.insert(0, {str(ROOT)!r})
        from core.store import Store
        s = Store({str(db)!r})
        for i in range(300):
            s.write_events([("log", "j", time.time(), "info", sys.argv[1] + str(i))])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, tag]) for tag in ("a", "b")]
    assert all(p.wait(60) == 0 for p in procs)
    assert len(Store(db).logs("j", limit=10_000)) == 600


def test_killed_process_leaves_job_interrupted_and_store_intact(tmp_path):
    """A child runs a job through the real runner and is SIGKILLed mid-job."""
    home = tmp_path / "home"
    code = textwrap.dedent(f"""
        import sys, time; sys.path.insert(0, {str(ROOT)!r})
        from core.context import build_context
        ctx = build_context({str(home)!r}, load_modules=False)
        def fn(job):
            i = 0
            while True:
                job.log("info", f"step {{i}}"); job.metric(i, loss=1.0); i += 1
                time.sleep(0.005)
        jid = ctx.jobs.submit("t.forever", {{}}, fn)
        print(jid, flush=True)
        time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    jid = p.stdout.readline().strip()
    db = home / "data" / "studio.sqlite3"
    deadline = time.time() + 30
    while time.time() < deadline:
        if len(Store(db).logs(jid)) > 20:
            break
        time.sleep(0.1)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    store = Store(db)
    assert store._exec("PRAGMA integrity_check").fetchone()["integrity_check"] == "ok"
    assert store.get_job(jid)["status"] == "running"  # what the dead process left
    n_logs = len(store.logs(jid, limit=100_000))
    store.close()

    from core.context import build_context

    ctx = build_context(home, load_modules=False)  # the restart
    try:
        assert jid in ctx.jobs.interrupted_at_start
        row = ctx.store.get_job(jid)
        assert row["status"] == "interrupted" and row["finished"] is not None
        logs = ctx.store.logs(jid, limit=100_000)
        assert len(logs) == n_logs + 1 and logs[-1]["level"] == "warning"
    finally:
        ctx.close()


def test_list_filter_delete(tmp_path):
    s = Store(tmp_path / "s.db")
    for i, kind in enumerate(["lora.train", "sr.upscale", "lora.caption"]):
        s.create_job(f"j{i}", kind, {"i": i})
    s.set_status("j0", "running")
    s.set_status("j0", "completed", result={"ok": 1})
    assert {r["id"] for r in s.list_jobs(kind_prefix="lora.")} == {"j0", "j2"}
    assert [r["id"] for r in s.list_jobs(status="completed")] == ["j0"]
    assert s.get_job("j0")["result"] == {"ok": 1}
    s.write_events([("log", "j1", 1.0, "info", "x"), ("metric", "j1", 1.0, 3, "loss", 0.5)])
    s.delete_job("j1")
    assert s.get_job("j1") is None and s.logs("j1") == [] and s.metrics("j1") == []
    assert s.count_by_status() == {"completed": 1, "pending": 1}
