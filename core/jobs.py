"""The job engine: a `Job` handle per unit of work, a `JobRunner` that owns the threads.

Each job owns its stop event and its progress (no global state). Its events (logs,
metrics, progress, artifacts) go through one queue to a writer thread that batches them
into the SQLite store; UIs and the REST API follow a job by reading the store, which is
why a page reload or a second browser tab re-attaches for free.

GPU-heavy kinds go through one queue served by one worker: that worker *is* the device
lease, so two GPU jobs can never overlap. CPU kinds get their own small pool.
"""
from __future__ import annotations

import queue
import sqlite3
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.contracts import Services
from core.errors import JobStopped, StudioError
from core.module import JobKind
from core.store import FINAL, Store, is_disk_full

LEVELS = ("debug", "info", "warning", "error")
FLUSH_INTERVAL_S = 0.2
STORE_RETRY_S = 30.0  # how long a job's final state is retried while the store cannot write
MAX_BACKLOG = 50_000  # events kept for retry while the store cannot write (oldest dropped beyond)


class Job:
    """What a job's function talks to. Cheap to call from a hot loop."""

    def __init__(self, job_id: str, kind: str, params: Any, workdir: Path, sink: Callable[[tuple], None],
                 t: Callable[..., str]) -> None:
        self.id = job_id
        self.kind = kind
        self.params = params
        self.workdir = Path(workdir)
        self.stop_event = threading.Event()
        self.t = t  # translator in the studio's language
        self.done = 0.0
        self.total = 0.0
        self.desc = ""
        self.started = time.time()
        self._sink = sink
        self._preview_n = 0

    # -- talking back ------------------------------------------------------
    def log(self, level: str, msg: str) -> None:
        if level == "debug":  # tracebacks and chatty detail: the job's own file, not the user's log
            self._debug(str(msg))
            return
        self._sink(("log", self.id, time.time(), level if level in LEVELS else "info", str(msg)))

    @property
    def debug_path(self) -> Path:
        return self.workdir / "debug.log"

    def _debug(self, msg: str) -> None:
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            with open(self.debug_path, "a", encoding="utf-8", errors="backslashreplace") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg.rstrip()}\n")
        except OSError:  # a full disk must not turn a debug line into a second failure
            pass

    def info(self, msg: str) -> None:
        self.log("info", msg)

    def warning(self, msg: str) -> None:
        self.log("warning", msg)

    def error(self, msg: str) -> None:
        self.log("error", msg)

    def progress(self, done: float, total: float, desc: str = "") -> None:
        self.done, self.total, self.desc = float(done), float(total), desc
        self._sink(("progress", self.id, self.done, self.total, desc))

    def eta_seconds(self) -> float | None:
        if self.done <= 0 or self.total <= 0:
            return None
        elapsed = time.time() - self.started
        return elapsed / self.done * max(self.total - self.done, 0.0)

    def metric(self, step: int, **values: float) -> None:
        now = time.time()
        for name, value in values.items():
            if value is None:
                continue
            self._sink(("metric", self.id, now, int(step), name, float(value)))

    def artifact(self, path: str | Path, kind: str) -> None:
        self._sink(("artifact", self.id, time.time(), str(path), kind))

    def preview(self, image: Any, name: str | None = None) -> Path:
        """Save a preview PNG under the job's folder and record it (kind 'preview')."""
        from core.media import save_image  # lazy: keeps the job engine light

        self._preview_n += 1
        out = self.workdir / "previews" / (name or f"preview_{self._preview_n:05d}.png")
        if isinstance(image, (str, Path)):
            out = Path(image)
        else:
            save_image(image, out)
        self.artifact(out, "preview")
        return out

    # -- stopping ------------------------------------------------------------
    def should_stop(self) -> bool:
        return self.stop_event.is_set()

    def raise_if_stopped(self) -> None:
        if self.stop_event.is_set():
            raise JobStopped()

    def request_stop(self) -> None:
        self.stop_event.set()


class ConsoleJob(Job):
    """A Job for scripts: prints events as they come. (`core.cli.run_job_foreground` runs a
    job through the real runner instead, with Ctrl+C = Stop and the job in the store.)"""

    def __init__(self, kind: str, params: Any = None, workdir: Path | None = None, t=None, verbose: bool = True):
        from core.i18n import Translator

        self.events: list[tuple] = []
        self.verbose = verbose
        super().__init__(uuid.uuid4().hex[:12], kind, params, Path(workdir or Path.cwd() / "outputs" / "cli"),
                         self._print, t or Translator("en"))

    def _debug(self, msg: str) -> None:  # a script's console is its debug file
        self._print(("log", self.id, time.time(), "debug", msg))

    def _print(self, ev: tuple) -> None:
        self.events.append(ev)
        if not self.verbose:
            return
        if ev[0] == "log":
            print(f"[{ev[3]}] {ev[4]}", file=sys.stderr, flush=True)
        elif ev[0] == "progress" and ev[3]:
            print(f"  {ev[4]} {ev[2]:.0f}/{ev[3]:.0f}", file=sys.stderr, flush=True)


def _transient(exc: BaseException) -> bool:
    """Store errors worth retrying: a full disk, a locked or unreachable database file."""
    return is_disk_full(exc) or isinstance(exc, (OSError, sqlite3.OperationalError))


@dataclass(order=True)
class _Queued:
    created: float
    job_id: str = field(compare=False)


class JobRunner:
    """Creates, queues, runs and stops jobs; the only owner of worker threads."""

    def __init__(self, store: Store, ctx: Services | None = None, jobs_dir: Path | None = None,
                 cpu_workers: int = 2, t=None) -> None:
        from core.i18n import Translator

        self.store = store
        self.ctx = ctx
        self.t = t or Translator("en")
        self.jobs_dir = Path(jobs_dir or store.path.parent / "jobs")
        self.kinds: dict[str, JobKind] = {}
        self._fns: dict[str, tuple[Callable, bool]] = {}  # job_id -> (fn(job), gpu)
        self._live: dict[str, Job] = {}
        self._events: "queue.SimpleQueue[tuple | None]" = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._queues: dict[bool, list[str]] = {True: [], False: []}
        self._closing = False
        self._running: set[str] = set()
        # final states the store refused even without the result: retried by the writer
        # thread until they land, so no job shows "running" for ever (job id -> (status, error))
        self._unsaved: dict[str, tuple[str, str]] = {}
        self.interrupted_at_start = store.mark_interrupted()
        self._writer = threading.Thread(target=self._write_loop, name="job-events", daemon=True)
        self._writer.start()
        self._workers = [threading.Thread(target=self._work_loop, args=(True,), name="job-gpu", daemon=True)]
        self._workers += [threading.Thread(target=self._work_loop, args=(False,), name=f"job-cpu-{i}", daemon=True)
                          for i in range(max(1, cpu_workers))]
        for w in self._workers:
            w.start()

    # -- registry ------------------------------------------------------------
    def register(self, kind: JobKind) -> None:
        if kind.name in self.kinds:
            raise ValueError(f"job kind {kind.name!r} registered twice")
        self.kinds[kind.name] = kind

    # -- lifecycle -------------------------------------------------------------
    def create(self, kind: str, params: Any = None, fn: Callable[[Job], Any] | None = None,
               gpu: bool | None = None, parent_id: str | None = None) -> str:
        """Record a pending job. `params` is validated by the kind's model when registered."""
        if fn is None:
            if kind not in self.kinds:
                raise KeyError(kind)
            jk = self.kinds[kind]
            model = params if isinstance(params, jk.params) else jk.params.model_validate(params or {})
            params = model
            if jk.check is not None:
                jk.check(model, self.ctx)
            fn = lambda job, _jk=jk, _p=model: _jk.run(job, _p, self.ctx)  # noqa: E731
            gpu = jk.gpu if gpu is None else gpu
        job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        stored = params.model_dump(mode="json") if hasattr(params, "model_dump") else (params or {})
        self.store.create_job(job_id, kind, stored, parent_id=parent_id)
        job = Job(job_id, kind, params, self.jobs_dir / job_id, self._events.put, self.t)
        with self._cond:
            self._live[job_id] = job
            self._fns[job_id] = (fn, bool(True if gpu is None else gpu))
        return job_id

    def start(self, job_id: str) -> None:
        with self._cond:
            if job_id not in self._fns:
                raise KeyError(job_id)
            fn, gpu = self._fns[job_id]
            q = self._queues[gpu]
            if job_id in q or job_id in self._running:
                return
            q.append(job_id)
            self._cond.notify_all()

    def submit(self, kind: str, params: Any = None, fn: Callable[[Job], Any] | None = None,
               gpu: bool | None = None, parent_id: str | None = None) -> str:
        job_id = self.create(kind, params, fn, gpu, parent_id)
        self.start(job_id)
        return job_id

    def resume(self, job_id: str) -> str:
        """Start a job continuing `job_id` (stopped/failed/interrupted) if its kind allows it."""
        row = self.store.get_job(job_id)
        if row is None:
            raise KeyError(job_id)
        kind = self.kinds.get(row["kind"])
        if kind is None or kind.resume is None:
            raise StudioError("jobs.not_resumable", kind=row["kind"])
        if row["status"] in ("pending", "running"):
            raise StudioError("jobs.still_active", id=job_id)
        params = kind.resume(row["params"], job_id, self.ctx)
        return self.submit(row["kind"], params, parent_id=job_id)

    def stop(self, job_id: str) -> str:
        """Stop a running job (its own event) or cancel a queued one. Returns the new state."""
        with self._cond:
            for q in self._queues.values():
                if job_id in q:
                    q.remove(job_id)
                    self._fns.pop(job_id, None)
                    self._live.pop(job_id, None)
                    self.store.set_status(job_id, "cancelled")
                    return "cancelled"
            job = self._live.get(job_id)
        if job is not None:
            job.request_stop()
            return "stopping"
        row = self.store.get_job(job_id)
        if row is None:
            raise KeyError(job_id)
        if row["status"] == "pending":  # created but never started
            self.store.set_status(job_id, "cancelled")
            return "cancelled"
        return row["status"]

    def get(self, job_id: str) -> Job | None:
        return self._live.get(job_id)

    def queue_position(self, job_id: str) -> int | None:
        with self._cond:
            for q in self._queues.values():
                if job_id in q:
                    return q.index(job_id) + 1
        return None

    def queued(self) -> list[str]:
        with self._cond:
            return list(self._queues[True]) + list(self._queues[False])

    def running(self) -> list[str]:
        with self._cond:
            return sorted(self._running)

    def wait(self, job_id: str, timeout: float = 60.0) -> dict:
        """Block until the job is final (tests, CLI). Flushes events first."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            row = self.store.get_job(job_id)
            if row and row["status"] in FINAL and job_id not in self._live:
                self.flush()
                return self.store.get_job(job_id)
            time.sleep(0.02)
        raise TimeoutError(f"job {job_id} not finished after {timeout}s")

    def flush(self) -> None:
        """Wait until every event put so far is in the store."""
        done = threading.Event()
        self._events.put(("flush", done))
        done.wait(10)

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closing = True
            for job in self._live.values():
                job.request_stop()
            self._cond.notify_all()
        for w in self._workers:
            w.join(timeout)
        self._events.put(None)
        self._writer.join(timeout)

    # -- threads ------------------------------------------------------------------
    def _work_loop(self, gpu: bool) -> None:
        while True:
            with self._cond:
                while not self._queues[gpu] and not self._closing:
                    self._cond.wait(0.5)
                if self._closing:
                    return
                job_id = self._queues[gpu].pop(0)
                fn, _ = self._fns.pop(job_id)
                job = self._live[job_id]
                self._running.add(job_id)
            try:
                self._run_one(job, fn, gpu)
            except Exception:  # noqa: BLE001 - e.g. the store failing; the worker must live on
                traceback.print_exc()
            finally:
                with self._cond:
                    self._running.discard(job_id)
                    self._live.pop(job_id, None)

    def _run_one(self, job: Job, fn: Callable[[Job], Any], gpu: bool) -> None:
        models = getattr(self.ctx, "models", None)
        device = models.device_name() if (models is not None and gpu) else "cpu"
        job.workdir.mkdir(parents=True, exist_ok=True)
        job.started = time.time()
        self._persist(self.store.set_status, job.id, "running", device=device)
        job.info(self.t("jobs.log.started", kind=job.kind, device=device))
        status, error, result = "completed", None, None
        try:
            result = fn(job)
            if job.should_stop():
                status = "stopped"
        except JobStopped:
            status = "stopped"
        except StudioError as exc:
            status, error = "failed", exc.render(self.t)
            job.error(error)
            job.log("debug", traceback.format_exc())
        except Exception as exc:  # noqa: BLE001 - a job failure must never kill the app
            status = "failed"
            if models is not None and models.is_oom(exc):
                error = self.t("errors.oom", hint=self.t("errors.oom_hint"))
            elif is_disk_full(exc):
                error = self.t("rel.disk_full", path=getattr(exc, "filename", None) or job.workdir)
            else:
                error = self.t("errors.unexpected", error=f"{type(exc).__name__}: {exc}")
            job.error(error)
            job.error(traceback.format_exc())
        finally:
            # release() ends in a full gc.collect() (+ empty_cache): ~0.5 s with torch and
            # gradio loaded, which made a tiny CPU job cost 0.5 s (seen in the soak). A CPU
            # job that loaded nothing through the manager has nothing to give back.
            owns = models is not None and any(owner == job.id for owner, _ in models.loaded())
            if models is not None and (gpu or owns):
                try:
                    models.release(job.id)
                except Exception:  # noqa: BLE001
                    job.warning(traceback.format_exc())
        job.info(self.t(f"jobs.log.{status}", seconds=round(time.time() - job.started, 1)))
        self.flush()
        if result is not None and not isinstance(result, (dict, list, str, int, float)):
            result = {"value": str(result)}
        if not self._persist(self.store.set_status, job.id, status, error=error, result=result):
            self._final_fallback(job, status, error)

    def _final_fallback(self, job: Job, status: str, error: str | None) -> None:
        """The final state could not be written: end the job as failed with a message saying
        so (no result, which may be what the store refused); keep retrying if even that fails."""
        message = self.t("jobs.store_write_failed", status=self.t(f"jobs.status.{status}"),
                         error=error or "-")
        with self._cond:
            self._unsaved[job.id] = ("failed", message)
        self._retry_unsaved()

    def _retry_unsaved(self) -> None:
        with self._cond:
            todo = list(self._unsaved.items())
        for job_id, (status, message) in todo:
            try:
                self.store.set_status(job_id, status, error=message)
            except Exception:  # noqa: BLE001 - tried again at the next flush
                continue
            with self._cond:
                self._unsaved.pop(job_id, None)

    def _persist(self, write: Callable[..., None], *args: Any, **kwargs: Any) -> bool:
        """A store write retried while the disk is full, so a job's final state is not lost
        and the worker thread never dies of it. False if it still failed after STORE_RETRY_S."""
        deadline, delay = time.time() + STORE_RETRY_S, 0.05
        while True:
            try:
                write(*args, **kwargs)
                return True
            except Exception as exc:  # noqa: BLE001
                if not _transient(exc) or time.time() > deadline or self._closing:
                    print(f"job store write failed for good: {type(exc).__name__}: {exc}", file=sys.stderr)
                    return False
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _write_loop(self) -> None:
        pending: list[tuple] = []
        waiters: list[threading.Event] = []
        last_progress: dict[str, tuple] = {}
        alive, failing = True, False
        while alive:
            try:
                ev = self._events.get(timeout=FLUSH_INTERVAL_S)
                if ev is None:
                    alive = False
                elif ev[0] == "flush":
                    waiters.append(ev[1])
                elif ev[0] == "progress":
                    last_progress[ev[1]] = ev  # coalesce: only the newest progress matters
                else:
                    pending.append(ev)
                # drain what is already there, bounded so a flood still flushes regularly
                while alive and len(pending) < 2000:
                    ev = self._events.get_nowait()
                    if ev is None:
                        alive = False
                    elif ev[0] == "flush":
                        waiters.append(ev[1])
                    elif ev[0] == "progress":
                        last_progress[ev[1]] = ev
                    else:
                        pending.append(ev)
            except queue.Empty:
                pass
            if pending or last_progress:
                batch = pending + list(last_progress.values())
                pending, last_progress = [], {}
                try:
                    self.store.write_events(batch)
                    failing = False
                except Exception as exc:  # noqa: BLE001 - a full disk must not kill the writer
                    if not _transient(exc):  # a batch SQLite will never take: drop it, go on
                        traceback.print_exc()
                    else:
                        if not failing:  # one line per outage, not one per flush
                            print(f"job events not written, will retry: {type(exc).__name__}: {exc}",
                                  file=sys.stderr)
                        failing = True
                        # keep them for the next flush (bounded: a long outage drops the oldest)
                        pending = [e for e in batch if e[0] != "progress"][-MAX_BACKLOG:]
                        for e in batch:
                            if e[0] == "progress" and e[1] not in last_progress:
                                last_progress[e[1]] = e
            if self._unsaved:
                self._retry_unsaved()
            for w in waiters:
                w.set()
            waiters = []
