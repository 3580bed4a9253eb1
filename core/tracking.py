"""Experiment tracking for every training job (LoRA, fast style, classifier).

The studio's SQLite store already keeps every job's params, metrics and artifacts. A
`Tracker` mirrors them to external trackers the user turned on in settings:

- MLflow when `MLFLOW_ENABLED` is true and `mlflow` imports. The tracking URI is
  `MLFLOW_TRACKING_URI`, else a local store under `<home>/mlruns` (an SQLite database
  `mlflow.db` plus an `artifacts/` folder: MLflow 3 refuses new plain file stores, so the
  local default is its recommended database backend). A plain folder path or `file:` URI
  is honoured as a file store, which the user then chose explicitly.
- TensorBoard when `TENSORBOARD_ENABLED` is true and `torch.utils.tensorboard` works;
  event files go to `TENSORBOARD_DIR` if set, else `<home>/tensorboard/<kind>/<job id>`.

A tracking failure never fails the job: the backend logs one warning in the job's log
and is switched off for the rest of the run, and training goes on.

Usage from a training engine::

    with Tracker.for_job(job, ctx, params) as tracker:
        tracker.metric(step, loss=0.3)     # studio store + trackers
        tracker.log_artifact(model_path)

MLflow is driven through `MlflowClient` with an explicit run id, never the global
"active run", because several jobs may run in threads of the same process.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

# Remote MLflow servers: fail fast instead of retrying for minutes (the user can still
# override both through the environment).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

FLUSH_EVERY_S = 2.0  # metrics go to MLflow in batches: one write per flush, not per value
FLUSH_EVERY_N = 200


def flatten_params(params: Any, prefix: str = "") -> dict[str, Any]:
    """A pydantic model / nested dict as flat `a.b` keys with scalar (or str) values."""
    if hasattr(params, "model_dump"):
        params = params.model_dump(mode="json")
    out: dict[str, Any] = {}
    if isinstance(params, dict):
        for key, value in params.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) or hasattr(value, "model_dump"):
                out.update(flatten_params(value, name))
            else:
                out[name] = value
    elif params is not None:
        out[prefix or "value"] = params
    return out


class _Backend:
    name = "?"

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, step: int, metrics: dict[str, float]) -> None: ...
    def log_artifact(self, path: Path) -> None: ...
    def flush(self) -> None: ...
    def close(self, status: str) -> None: ...


def resolve_mlflow_uri(ctx) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment or None)."""
    raw = str(ctx.config.get("MLFLOW_TRACKING_URI") or "").strip()
    if not raw:
        root = Path(ctx.config.home) / "mlruns"
        root.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()
    if "://" not in raw and not raw.startswith(("sqlite:", "databricks")):
        raw = Path(raw).expanduser().resolve().as_uri()  # a plain folder: a file store
    if raw.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # the user asked for one
    return raw, None


class _MlflowBackend(_Backend):
    name = "MLflow"

    def __init__(self, ctx, job, run_name: str) -> None:
        from mlflow.tracking import MlflowClient

        uri, artifact_location = resolve_mlflow_uri(ctx)
        self.client = MlflowClient(tracking_uri=uri)
        exp_name = f"cyberbill/{job.kind}"
        exp = self.client.get_experiment_by_name(exp_name)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(
            exp_name, artifact_location=artifact_location)
        run = self.client.create_run(exp_id, run_name=run_name,
                                     tags={"cyberbill.job_id": job.id, "cyberbill.kind": job.kind})
        self.run_id = run.info.run_id
        self.uri = uri
        self._pending: list = []
        self._last_flush = time.time()

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending += [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        if len(self._pending) >= FLUSH_EVERY_N or time.time() - self._last_flush >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        self._last_flush = time.time()
        for i in range(0, len(pending), 1000):
            self.client.log_batch(self.run_id, metrics=pending[i:i + 1000])

    def log_artifact(self, path: Path) -> None:
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
        else:
            self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str) -> None:
        self.flush()
        self.client.set_terminated(self.run_id, status=status)


class _TensorBoardBackend(_Backend):
    name = "TensorBoard"

    def __init__(self, ctx, job) -> None:
        from torch.utils.tensorboard import SummaryWriter

        base = ctx.config.get("TENSORBOARD_DIR")
        root = Path(base).expanduser() if base else Path(ctx.config.home) / "tensorboard"
        if not root.is_absolute():
            root = Path(ctx.config.home) / root
        self.logdir = root / job.kind / job.id
        self.writer = SummaryWriter(log_dir=str(self.logdir))

    def log_params(self, params: dict[str, Any]) -> None:
        rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(params.items()))
        self.writer.add_text("params", "| param | value |\n|---|---|\n" + rows, 0)

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, float(value), int(step))

    def log_artifact(self, path: Path) -> None:
        self.writer.add_text("artifacts", str(path), 0)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()


class Tracker:
    """Fan-out to the enabled trackers; every call is failure-proof (see module doc)."""

    def __init__(self, job=None, backends: list[_Backend] | None = None) -> None:
        self.job = job
        self.backends: list[_Backend] = list(backends or [])
        self.warnings: list[str] = []
        self.closed = False

    @classmethod
    def for_job(cls, job, ctx, params: Any = None, run_name: str | None = None) -> "Tracker":
        tracker = cls(job)
        cfg = ctx.config if ctx is not None else None
        if cfg is not None and cfg.get("MLFLOW_ENABLED"):
            tracker._open("MLflow", lambda: _MlflowBackend(ctx, job, run_name or job.id))
        if cfg is not None and cfg.get("TENSORBOARD_ENABLED"):
            tracker._open("TensorBoard", lambda: _TensorBoardBackend(ctx, job))
        if params is not None:
            tracker.log_params(params)
        return tracker

    @property
    def active(self) -> list[str]:
        return [b.name for b in self.backends]

    def _warn(self, backend: str, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:400] if str(exc) else type(exc).__name__
        msg = self.job.t("tracking.failed", backend=backend, error=error) if self.job is not None \
            else f"{backend} tracking off: {error}"
        self.warnings.append(msg)
        if self.job is not None:
            self.job.warning(msg)

    def _open(self, name: str, factory) -> None:
        try:
            self.backends.append(factory())
        except ImportError as exc:
            self._warn(name, exc)
        except Exception as exc:  # noqa: BLE001 - tracking must never fail the job
            self._warn(name, exc)

    def _each(self, method: str, *args) -> None:
        for backend in list(self.backends):
            try:
                getattr(backend, method)(*args)
            except Exception as exc:  # noqa: BLE001 - drop the backend, keep training
                self.backends.remove(backend)
                self._warn(backend.name, exc)

    # -- public API ----------------------------------------------------------
    def log_params(self, params: Any) -> None:
        flat = flatten_params(params)
        if flat:
            self._each("log_params", flat)

    def log_metrics(self, step: int, **metrics: float) -> None:
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        if clean:
            self._each("log_metrics", int(step), clean)

    def metric(self, step: int, **metrics: float) -> None:
        """Record in the studio store (job.metric) and in the trackers."""
        if self.job is not None:
            self.job.metric(step, **metrics)
        self.log_metrics(step, **metrics)

    def log_artifact(self, path: str | Path) -> None:
        path = Path(path)
        if path.exists():
            self._each("log_artifact", path)

    def flush(self) -> None:
        self._each("flush")

    def close(self, status: str | None = None) -> None:
        """End the runs. Status defaults from the job: FINISHED, or KILLED when stopped."""
        if self.closed:
            return
        self.closed = True
        if status is None:
            stopped = self.job is not None and self.job.should_stop()
            status = "KILLED" if stopped else "FINISHED"
        self._each("close", status)

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close("FAILED" if exc_type is not None and exc_type.__name__ != "JobStopped" else None)
        return False
