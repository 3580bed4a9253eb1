"""REST API (seed 000's /api/training/... generalised to every job kind), mounted on the
Gradio server under /api with its own OpenAPI schema at /api/openapi.json.

Create with `POST /api/jobs {"kind": ..., "params": {...}}` (params validated by the kind's
pydantic model: a bad one is a 422 naming the field), then start, follow (status, logs
after an id, metrics, artifacts), stop, resume, delete.
"""
from __future__ import annotations

import secrets
import shutil
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field, ValidationError

from core.errors import StudioError
from core.system import system_info
from core.ui.job_view import eta_seconds

MAX_ID = 2**62


class JobCreate(BaseModel):
    kind: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)
    start: bool = False


class JobState(BaseModel):
    id: str
    kind: str
    status: str
    params: dict[str, Any]
    created: float
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    result: Any = None
    progress_done: float = 0
    progress_total: float = 0
    progress_desc: str = ""
    eta_s: float | None = None
    queue_position: int | None = None
    device: str | None = None
    parent_id: str | None = None


def _state(ctx, row: dict) -> JobState:
    return JobState(**{k: row.get(k) for k in JobState.model_fields if k in row},
                    eta_s=eta_seconds(row), queue_position=ctx.jobs.queue_position(row["id"]))


def create_api(ctx, auth: tuple[str, str] | None = None) -> FastAPI:
    deps = []
    if auth:
        basic = HTTPBasic()

        def check(creds: HTTPBasicCredentials = Depends(basic)) -> None:
            ok = secrets.compare_digest(creds.username, auth[0]) and secrets.compare_digest(creds.password, auth[1])
            if not ok:
                raise HTTPException(401, "bad credentials", headers={"WWW-Authenticate": "Basic"})

        deps = [Depends(check)]
    api = FastAPI(title="CyberBill Studio API", version="1.0", dependencies=deps)

    def row_or_404(job_id: str) -> dict:
        row = ctx.store.get_job(job_id)
        if row is None:
            raise HTTPException(404, ctx.t("jobs.unknown", id=job_id))
        return row

    def studio_error(exc: StudioError, code: int = 409) -> HTTPException:
        return HTTPException(code, exc.render(ctx.t))

    @api.post("/jobs", status_code=201, response_model=JobState)
    def create_job(body: JobCreate) -> JobState:
        if body.kind not in ctx.jobs.kinds:
            raise HTTPException(422, [{"loc": ["body", "kind"], "msg": ctx.t("jobs.unknown_kind", kind=body.kind),
                                       "type": "value_error"}])
        try:
            job_id = ctx.jobs.create(body.kind, body.params)
        except ValidationError as exc:
            raise HTTPException(422, [{"loc": ["body", "params", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                                      for e in exc.errors(include_url=False, include_input=False)])
        except StudioError as exc:
            raise studio_error(exc, 422)
        if body.start:
            ctx.jobs.start(job_id)
        return _state(ctx, ctx.store.get_job(job_id))

    @api.get("/jobs", response_model=list[JobState])
    def list_jobs(status: str | None = Query(None, max_length=20), kind: str | None = Query(None, max_length=100),
                  limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_ID)) -> list[JobState]:
        return [_state(ctx, r) for r in ctx.store.list_jobs(status, kind, limit, offset)]

    @api.get("/jobs/{job_id}", response_model=JobState)
    def get_job(job_id: str) -> JobState:
        return _state(ctx, row_or_404(job_id))

    @api.post("/jobs/{job_id}/start", response_model=JobState)
    def start_job(job_id: str) -> JobState:
        row = row_or_404(job_id)
        if row["status"] != "pending" or ctx.jobs.get(job_id) is None:
            raise HTTPException(409, ctx.t("jobs.cannot_start", id=job_id, status=row["status"]))
        ctx.jobs.start(job_id)
        return _state(ctx, ctx.store.get_job(job_id))

    @api.post("/jobs/{job_id}/stop", response_model=JobState)
    def stop_job(job_id: str) -> JobState:
        row_or_404(job_id)
        ctx.jobs.stop(job_id)
        return _state(ctx, ctx.store.get_job(job_id))

    @api.post("/jobs/{job_id}/resume", response_model=JobState, status_code=201)
    def resume_job(job_id: str) -> JobState:
        row_or_404(job_id)
        try:
            new_id = ctx.jobs.resume(job_id)
        except StudioError as exc:
            raise studio_error(exc)
        return _state(ctx, ctx.store.get_job(new_id))

    @api.delete("/jobs/{job_id}", status_code=204)
    def delete_job(job_id: str) -> None:
        row = row_or_404(job_id)
        if row["status"] in ("pending", "running") and ctx.jobs.get(job_id) is not None:
            raise HTTPException(409, ctx.t("jobs.still_active", id=job_id))
        ctx.store.delete_job(job_id)
        shutil.rmtree(ctx.jobs.jobs_dir / job_id, ignore_errors=True)

    @api.get("/jobs/{job_id}/logs")
    def job_logs(job_id: str, after: int = Query(0, ge=0, le=MAX_ID),
                 limit: int = Query(1000, ge=1, le=10000)) -> list[dict]:
        row_or_404(job_id)
        return ctx.store.logs(job_id, after, limit)

    @api.get("/jobs/{job_id}/metrics")
    def job_metrics(job_id: str, name: str | None = Query(None, max_length=100)) -> list[dict]:
        row_or_404(job_id)
        return ctx.store.metrics(job_id, name)

    @api.get("/jobs/{job_id}/artifacts")
    def job_artifacts(job_id: str) -> list[dict]:
        row_or_404(job_id)
        return ctx.store.artifacts(job_id)

    @api.get("/kinds")
    def kinds() -> dict[str, Any]:
        return {name: {"gpu": k.gpu, "resumable": k.resume is not None, "params": k.params.model_json_schema()}
                for name, k in sorted(ctx.jobs.kinds.items())}

    @api.get("/system")
    def system() -> dict[str, Any]:
        return system_info(ctx)

    for module in ctx.modules:
        if module.api_router is not None:
            api.include_router(module.api_router(ctx))
    return api


def mount_api(app, ctx, auth: tuple[str, str] | None = None) -> FastAPI:
    """Mount the API on Gradio's FastAPI app (done after launch, as Gradio builds it then)."""
    api = create_api(ctx, auth)
    app.mount("/api", api)
    # Gradio's own routes come first in the list; a mount appended last still wins for
    # /api/... because Gradio registers nothing under /api.
    return api
