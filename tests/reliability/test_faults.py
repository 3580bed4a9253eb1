"""Faults the studio must survive, through the real server and runner.

- the disk fills while the store writes, and while a job saves its output;
- out of memory inside a job (the errors torch and Python really raise);
- two clients starting GPU jobs at once (one device lease, independent stops);
- path traversal in every name the core takes (job ids in URLs, settings keys).
"""
from __future__ import annotations

import http.client
import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.reliability.helpers import live_studio, wait_final

WRITES = ("create_job", "set_status", "write_events", "delete_job")


def make_disk_fill(monkeypatch, store) -> threading.Event:
    """While the returned event is set, every store write fails as SQLite does on a full disk."""
    full = threading.Event()
    for name in WRITES:
        real = getattr(store, name)

        def guarded(*a, _real=real, **kw):
            if full.is_set():
                raise sqlite3.OperationalError("database or disk is full")
            return _real(*a, **kw)

        monkeypatch.setattr(store, name, guarded)
    return full


def test_disk_full_under_the_store(tmp_path, monkeypatch):
    with live_studio(tmp_path / "home") as (base, ctx, _), httpx.Client(base_url=base + "/api", timeout=30) as c:
        full = make_disk_fill(monkeypatch, ctx.store)
        jid = c.post("/jobs", json={"kind": "rel.gpu", "params": {"steps": 60, "delay": 0.01}, "start": True}).json()["id"]
        while c.get(f"/jobs/{jid}").json()["progress_done"] < 3:
            time.sleep(0.01)
        full.set()
        # the job runs to its end while nothing can be written; a new job is refused clearly
        r = c.post("/jobs", json={"kind": "rel.cpu", "params": {}})
        assert r.status_code == 507 and "disk full" in r.json()["detail"]
        while ctx.jobs.get(jid) is not None and ctx.jobs.get(jid).done < 60:
            time.sleep(0.01)
        time.sleep(0.5)  # the runner now retries the final state and the buffered events
        assert c.get(f"/jobs/{jid}").json()["status"] == "running"  # not lost, not yet written
        full.clear()
        state = wait_final(c, jid)
        assert state["status"] == "completed" and state["result"] == {"last": 59}
        ctx.jobs.flush()
        steps = [x["message"] for x in c.get(f"/jobs/{jid}/logs", params={"limit": 1000}).json()]
        assert [f"step {i}" for i in range(60)] == [m for m in steps if m.startswith("step ")]
        assert len(c.get(f"/jobs/{jid}/metrics").json()) == 60
        # the runner's threads survived: the next GPU and CPU jobs complete
        for kind in ("rel.gpu", "rel.cpu"):
            nid = c.post("/jobs", json={"kind": kind, "params": {"steps": 3}, "start": True}).json()["id"]
            assert wait_final(c, nid)["status"] == "completed"
        assert sqlite3.connect(ctx.store.path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_disk_full_while_a_job_saves(tmp_path):
    with live_studio(tmp_path / "home", overrides={"LANGUAGE": "fr"}) as (base, ctx, _), \
            httpx.Client(base_url=base + "/api", timeout=30) as c:
        jid = c.post("/jobs", json={"kind": "rel.gpu", "params": {"steps": 4, "fault": "disk_full"},
                                    "start": True}).json()["id"]
        state = wait_final(c, jid)
        assert state["status"] == "failed"
        assert state["error"].startswith("Le disque est plein") and "out.bin" in state["error"]
        assert "Unexpected" not in state["error"] and "inattendue" not in state["error"]
        assert wait_final(c, c.post("/jobs", json={"kind": "rel.gpu", "params": {}, "start": True}).json()["id"])[
            "status"] == "completed"


def test_out_of_memory_fails_clearly_and_the_app_serves_on(tmp_path):
    with live_studio(tmp_path / "home") as (base, ctx, _), httpx.Client(base_url=base + "/api", timeout=30) as c:
        for fault in ("oom_cuda", "oom_runtime", "memory"):
            check_oom(base, ctx, c, fault)


def check_oom(base: str, ctx, c: httpx.Client, fault: str) -> None:
    """One job dies of `fault`: a clear translated message with the hint, then a job completes."""
    jid = c.post("/jobs", json={"kind": "rel.gpu", "params": {"steps": 5, "fault": fault}, "start": True}).json()["id"]
    state = wait_final(c, jid)
    hint = ctx.t("errors.oom_hint")
    assert state["status"] == "failed"
    assert state["error"] == ctx.t("errors.oom", hint=hint) and hint in state["error"]
    logs = [x["message"] for x in c.get(f"/jobs/{jid}/logs").json()]
    assert any("Traceback" in m for m in logs)  # the developer still gets the trace
    assert ctx.models.loaded() == []  # the runner released what the job owned
    second = c.post("/jobs", json={"kind": "rel.gpu", "params": {"steps": 5}, "start": True}).json()["id"]
    assert wait_final(c, second)["status"] == "completed"
    assert httpx.get(base + "/", timeout=30).status_code == 200


def test_two_clients_gpu_jobs_queue_and_stop_independently(tmp_path):
    record: list = []
    with live_studio(tmp_path / "home", record=record) as (base, ctx, _):
        a, b = (httpx.Client(base_url=base + "/api", timeout=30) for _ in range(2))
        ids: dict[str, list[str]] = {"a": [], "b": []}
        go = threading.Barrier(2)

        def client(name, c):
            go.wait()
            for _ in range(3):
                r = c.post("/jobs", json={"kind": "rel.gpu", "params": {"steps": 30, "delay": 0.01}, "start": True})
                ids[name].append(r.json()["id"])

        threads = [threading.Thread(target=client, args=(n, c)) for n, c in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        everyone = ids["a"] + ids["b"]
        positions = [a.get(f"/jobs/{j}").json()["queue_position"] for j in everyone]
        assert sum(p is None for p in positions) <= 1 and sorted(p for p in positions if p) == list(
            range(1, len([p for p in positions if p]) + 1))  # one runs, the others wait in line
        # A stops its last job (queued: cancelled) and, once it runs, its first one
        victim = ids["a"][-1]
        assert a.post(f"/jobs/{victim}/stop").json()["status"] == "cancelled"
        first = ids["a"][0]
        while a.get(f"/jobs/{first}").json()["status"] != "running":
            time.sleep(0.005)
        assert a.post(f"/jobs/{first}/stop").status_code == 200
        finals = {j: wait_final(b, j) for j in everyone}
        assert finals[victim]["status"] == "cancelled" and finals[first]["status"] == "stopped"
        assert all(finals[j]["status"] == "completed" and finals[j]["result"] == {"last": 29} for j in ids["b"])
        assert finals[ids["a"][1]]["status"] == "completed"
        # never two GPU jobs at once: the recorded intervals do not overlap
        spans = {}
        for jid, what, t in record:
            spans.setdefault(jid, {})[what] = t
        ordered = sorted((s["start"], s["end"]) for s in spans.values())
        assert len(ordered) == 5  # the cancelled one never started
        assert all(prev[1] <= nxt[0] for prev, nxt in zip(ordered, ordered[1:]))
        a.close(), b.close()


TRAVERSALS = ["..", "../..", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "%2e%2e%2f%2e%2e", "foo%00bar", "%00",
              "..%5C..%5Cwindows", "%2Fetc%2Fpasswd", "~root", "a" * 300, "x%0Ay", ".", "...."]


def raw_request(base: str, method: str, path: str) -> tuple[int, str]:
    """Send the path byte for byte: httpx and browsers would remove the dot segments first."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_path_traversal_in_job_ids_and_setting_keys(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    home = tmp_path / "home"
    with live_studio(home) as (base, ctx, _), httpx.Client(base_url=base + "/api", timeout=30) as c:
        real = c.post("/jobs", json={"kind": "rel.cpu", "params": {}, "start": True}).json()["id"]
        wait_final(c, real)
        (ctx.jobs.jobs_dir / "sentinel").mkdir(parents=True)
        before_home, before_out = tree(home), tree(tmp_path)
        codes = []
        for bad in TRAVERSALS:
            for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/start"), ("POST", "/stop"),
                                   ("POST", "/resume"), ("GET", "/logs"), ("GET", "/metrics"), ("GET", "/artifacts")):
                status, body = raw_request(base, method, f"/api/jobs/{bad}{suffix}")
                codes.append(status)
                assert status in (404, 405, 422), (method, bad, suffix, status, body[:200])
        assert 422 in codes and 404 in codes
        for bad in ("../../etc/passwd", "/etc/passwd", "rel.cpu\x00", "rel.cpu/../x"):
            r = c.post("/jobs", json={"kind": bad, "params": {}})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "kind"]
            assert c.get("/jobs", params={"kind": bad, "status": bad}).json() == []
        for wild in ("%", "_", "rel_cpu", "\\"):  # no LIKE wildcard from the user
            assert c.get("/jobs", params={"kind": wild}).json() == []
        assert [j["id"] for j in c.get("/jobs", params={"kind": "rel.c"}).json()] == [real]
        assert tree(home) == before_home and tree(tmp_path) == before_out
        assert (outside / "keep.txt").read_text() == "precious" and c.get(f"/jobs/{real}").status_code == 200
        # settings: only known keys are saved, always to the one user file inside the home
        for key in ("../evil", "/tmp/evil", "DATA_DIR/../../x", "X\x00Y", "..\\..\\evil"):
            with pytest.raises(KeyError):
                ctx.config.save_user({key: "1"})
        assert tree(tmp_path) == before_out
        ctx.config.save_user({"LANGUAGE": "fr"})
        assert ctx.config.user_file.is_relative_to(home) and ctx.config.user_file.is_file()


CHILD = r'''
import json, resource, signal, sys
sys.path.insert(0, sys.argv[1])
from pydantic import BaseModel
from core.context import build_context
from core.module import JobKind

class P(BaseModel):
    mb: int = 16

def save(path, data):
    """Temp name then rename, as every engine saves: a failed write leaves no half file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)

def run(job, p, ctx):
    job.workdir.mkdir(parents=True, exist_ok=True)
    save(job.workdir / "ckpt_1.bin", b"1" * 2**20)
    job.artifact(job.workdir / "ckpt_1.bin", "checkpoint")
    save(job.workdir / "ckpt_2.bin", b"2" * (p.mb * 2**20))

ctx = build_context(sys.argv[2], overrides={"LANGUAGE": "en"}, load_modules=False)
ctx.jobs.register(JobKind("rel.saver", P, run, gpu=True))
# a real "disk full": the kernel refuses writes past 8 MiB in this process (EFBIG)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (8 * 2**20, 8 * 2**20))
first = ctx.jobs.wait(ctx.jobs.submit("rel.saver", {"mb": 16}), 60)
second = ctx.jobs.wait(ctx.jobs.submit("rel.saver", {"mb": 1}), 60)
print(json.dumps({"first": first, "second": second}))
ctx.close()
'''


def test_real_file_size_limit_in_a_child_process(tmp_path):
    """No injection: the kernel's own error (RLIMIT_FSIZE -> EFBIG) reaches the runner."""
    home = tmp_path / "home"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(Path(__file__).resolve().parents[2]), str(home)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    first, second = out["first"], out["second"]
    assert first["status"] == "failed" and first["error"].startswith("The disk is full")
    assert first["id"] in first["error"]  # write() errors carry no file name: the job's folder is named
    work = home / "data" / "jobs" / first["id"]
    assert (work / "ckpt_1.bin").read_bytes() == b"1" * 2**20  # the previous checkpoint is intact
    assert not (work / "ckpt_2.bin").exists() and not (work / "ckpt_2.bin.tmp").exists()
    assert second["status"] == "completed"  # the runner went on
    assert sqlite3.connect(home / "data" / "studio.sqlite3").execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_real_cuda_out_of_memory(tmp_path):
    """On a machine with CUDA: a real allocation past the device's memory (skipped on CPU)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from pydantic import BaseModel

    from core.context import build_context
    from core.module import JobKind

    class Alloc(BaseModel):
        gib: float = 1.0

    def run(job, p, ctx):
        x = torch.empty(int(p.gib * 2**30), dtype=torch.uint8, device="cuda")
        return {"bytes": x.numel()}

    ctx = build_context(tmp_path / "home", load_modules=False)
    try:
        ctx.jobs.register(JobKind("rel.alloc", Alloc, run, gpu=True))
        total_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
        bad = ctx.jobs.wait(ctx.jobs.submit("rel.alloc", {"gib": total_gib * 2}))
        assert bad["status"] == "failed"
        assert bad["error"] == ctx.t("errors.oom", hint=ctx.t("errors.oom_hint"))
        good = ctx.jobs.wait(ctx.jobs.submit("rel.alloc", {"gib": 0.5}))
        assert good["status"] == "completed" and good["result"] == {"bytes": 2**29}
        assert torch.cuda.memory_allocated() == 0  # nothing of either job is left on the device
    finally:
        ctx.close()


def test_a_batch_the_store_never_takes_is_dropped_not_retried(tmp_path, monkeypatch):
    """Only disk/IO errors are retried: a poison batch must not block every later event."""
    from core.context import build_context
    from tests.reliability.helpers import register_kinds

    ctx = build_context(tmp_path / "home", load_modules=False)
    try:
        register_kinds(ctx)
        real, calls = ctx.store.write_events, []

        def poison_once(events):
            calls.append(len(events))
            if len(calls) == 1:
                raise sqlite3.IntegrityError("poison")
            return real(events)

        monkeypatch.setattr(ctx.store, "write_events", poison_once)
        first = ctx.jobs.wait(ctx.jobs.submit("rel.cpu", {"steps": 3}))
        second = ctx.jobs.wait(ctx.jobs.submit("rel.cpu", {"steps": 3}))
        assert first["status"] == second["status"] == "completed"
        # retried forever, the poison batch would hold back every later event: these would be missing
        assert [x["message"] for x in ctx.store.logs(second["id"]) if x["message"].startswith("step")] == [
            "step 0", "step 1", "step 2"]
        assert len(calls) >= 2
    finally:
        ctx.close()
