"""SQLite store: jobs, logs, metrics, artifacts. Embedded, WAL, survives a SIGKILL.

One connection guarded by a lock (sqlite3 serialises writers anyway); the job runner
batches event writes into one transaction per flush so a chatty job costs one fsync per
flush, not per line. Readers (UI polling, REST) use the same API and see committed rows.
"""
from __future__ import annotations

import errno
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from core.safetext import dumps, safe_text

STATUSES = ("pending", "running", "completed", "failed", "stopped", "cancelled", "interrupted")
FINAL = frozenset({"completed", "failed", "stopped", "cancelled", "interrupted"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    error TEXT,
    result TEXT,
    progress_done REAL DEFAULT 0,
    progress_total REAL DEFAULT 0,
    progress_desc TEXT DEFAULT '',
    device TEXT DEFAULT '',
    parent_id TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    ts REAL NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_job ON logs(job_id, id);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_job ON metrics(job_id, name, step);
CREATE TABLE IF NOT EXISTS artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS artifacts_job ON artifacts(job_id, id);
"""


def is_disk_full(exc: BaseException) -> bool:
    """True for the ways a full disk (or a file size/quota limit) reaches Python."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc).lower()


def _row(cur: sqlite3.Cursor, row: tuple) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cur.description, row)}


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30, isolation_level=None)
        self._db.row_factory = _row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(SCHEMA)

    # -- low level -------------------------------------------------------
    def _exec(self, sql: str, args: Iterable = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, tuple(args))

    def transaction(self):
        """Context manager: one BEGIN IMMEDIATE ... COMMIT under the store lock."""
        store = self

        class _Tx:
            def __enter__(self):
                store._lock.acquire()
                store._db.execute("BEGIN IMMEDIATE")
                return store._db

            def __exit__(self, exc_type, exc, tb):
                try:
                    store._db.execute("ROLLBACK" if exc_type else "COMMIT")
                finally:
                    store._lock.release()
                return False

        return _Tx()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- jobs ------------------------------------------------------------
    def create_job(self, job_id: str, kind: str, params: dict, parent_id: str | None = None) -> None:
        self._exec(
            "INSERT INTO jobs(id, kind, params, status, created, parent_id) VALUES (?,?,?,?,?,?)",
            (job_id, kind, dumps(params), "pending", time.time(), parent_id),
        )

    def set_status(self, job_id: str, status: str, error: str | None = None, result: Any = None,
                   device: str | None = None) -> None:
        assert status in STATUSES, status
        now = time.time()
        sets, args = ["status=?"], [status]
        if status == "running":
            sets.append("started=?")
            args.append(now)
        if status in FINAL:
            sets.append("finished=?")
            args.append(now)
        if error is not None:
            sets.append("error=?")
            args.append(safe_text(error))
        if result is not None:
            sets.append("result=?")
            args.append(dumps(result))
        if device is not None:
            sets.append("device=?")
            args.append(safe_text(device))
        args.append(job_id)
        self._exec(f"UPDATE jobs SET {', '.join(sets)} WHERE id=?", args)

    def get_job(self, job_id: str) -> dict | None:
        row = self._exec("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _decode_job(row) if row else None

    def list_jobs(self, status: str | None = None, kind_prefix: str | None = None, limit: int = 200,
                  offset: int = 0) -> list[dict]:
        where, args = [], []
        if status:
            where.append("status=?")
            args.append(status)
        if kind_prefix:
            # a prefix match: the user's % and _ are literal characters, not LIKE wildcards
            where.append("kind LIKE ? ESCAPE '\\'")
            args.append(kind_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created DESC LIMIT ? OFFSET ?"
        return [_decode_job(r) for r in self._exec(sql, args + [limit, offset]).fetchall()]

    def delete_job(self, job_id: str) -> None:
        with self.transaction() as db:
            for table in ("logs", "metrics", "artifacts"):
                db.execute(f"DELETE FROM {table} WHERE job_id=?", (job_id,))
            db.execute("DELETE FROM jobs WHERE id=?", (job_id,))

    def mark_interrupted(self, statuses: tuple[str, ...] = ("running",)) -> list[str]:
        """After a crash: jobs the dead process left running become `interrupted`."""
        marks = ",".join("?" * len(statuses))
        ids = [r["id"] for r in self._exec(f"SELECT id FROM jobs WHERE status IN ({marks})", statuses).fetchall()]
        now = time.time()
        with self.transaction() as db:
            for job_id in ids:
                db.execute("UPDATE jobs SET status='interrupted', finished=? WHERE id=?", (now, job_id))
                db.execute("INSERT INTO logs(job_id, ts, level, message) VALUES (?,?,?,?)",
                           (job_id, now, "warning", "interrupted: the studio stopped while this job ran"))
        return ids

    def count_by_status(self) -> dict[str, int]:
        rows = self._exec("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        return {r["status"]: r["n"] for r in rows}

    def durations(self) -> dict[str, float]:
        """Mean duration (s) of finished jobs by kind."""
        rows = self._exec(
            "SELECT kind, AVG(finished-started) AS d FROM jobs WHERE started IS NOT NULL "
            "AND finished IS NOT NULL GROUP BY kind").fetchall()
        return {r["kind"]: round(r["d"] or 0.0, 2) for r in rows}

    # -- events ------------------------------------------------------------
    def write_events(self, events: list[tuple]) -> None:
        """Apply a batch of runner events in one transaction.

        Event tuples: ("log", job, ts, level, msg) | ("metric", job, ts, step, name, value) |
        ("artifact", job, ts, path, kind) | ("progress", job, done, total, desc).
        Text goes through `safe_text`: one file name that is not UTF-8 must not make SQLite
        refuse (and the runner drop) the whole batch of log lines it came with.
        """
        if not events:
            return
        with self.transaction() as db:
            for ev in events:
                tag = ev[0]
                if tag == "log":
                    db.execute("INSERT INTO logs(job_id, ts, level, message) VALUES (?,?,?,?)",
                               (ev[1], ev[2], safe_text(ev[3]), safe_text(ev[4])))
                elif tag == "metric":
                    db.execute("INSERT INTO metrics(job_id, ts, step, name, value) VALUES (?,?,?,?,?)",
                               (ev[1], ev[2], ev[3], safe_text(ev[4]), ev[5]))
                elif tag == "artifact":
                    db.execute("INSERT INTO artifacts(job_id, ts, path, kind) VALUES (?,?,?,?)",
                               (ev[1], ev[2], safe_text(ev[3]), safe_text(ev[4])))
                elif tag == "progress":
                    db.execute("UPDATE jobs SET progress_done=?, progress_total=?, progress_desc=? WHERE id=?",
                               (ev[2], ev[3], safe_text(ev[4]), ev[1]))

    def logs(self, job_id: str, after: int = 0, limit: int = 1000) -> list[dict]:
        return self._exec("SELECT id, ts, level, message FROM logs WHERE job_id=? AND id>? ORDER BY id LIMIT ?",
                          (job_id, after, limit)).fetchall()

    def tail_logs(self, job_id: str, n: int = 400) -> tuple[list[dict], int]:
        """The last `n` log lines (oldest first) and the total count."""
        rows = self._exec("SELECT id, ts, level, message FROM logs WHERE job_id=? ORDER BY id DESC LIMIT ?",
                          (job_id, n)).fetchall()
        total = self._exec("SELECT COUNT(*) AS n FROM logs WHERE job_id=?", (job_id,)).fetchone()["n"]
        return rows[::-1], total

    def metrics(self, job_id: str, name: str | None = None) -> list[dict]:
        if name:
            return self._exec("SELECT step, name, value FROM metrics WHERE job_id=? AND name=? ORDER BY step, id",
                              (job_id, name)).fetchall()
        return self._exec("SELECT step, name, value FROM metrics WHERE job_id=? ORDER BY step, id",
                          (job_id,)).fetchall()

    def artifacts(self, job_id: str, kind: str | None = None) -> list[dict]:
        if kind:
            return self._exec("SELECT path, kind, ts FROM artifacts WHERE job_id=? AND kind=? ORDER BY id",
                              (job_id, kind)).fetchall()
        return self._exec("SELECT path, kind, ts FROM artifacts WHERE job_id=? ORDER BY id", (job_id,)).fetchall()


def _decode_job(row: dict) -> dict:
    row = dict(row)
    row["params"] = json.loads(row["params"] or "{}")
    row["result"] = json.loads(row["result"]) if row.get("result") else None
    return row
