"""REST API (seed 000's /api/training/... generalised to every job kind), mounted on the
Gradio server under /api with its own OpenAPI schema at /api/openapi.json.

Create with `POST /api/jobs {"kind": ..., "params": {...}}` (params validated by the kind's
pydantic model: a bad one is a 422 naming the field), then start, follow (status, logs
after an id, metrics, artifacts), stop, resume, delete.
"""
from __future__ import annotations

import re
import json
import secrets
import shutil
import sqlite3
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field, ValidationError

from core.errors import StudioError, error_text
from core.store import is_disk_full
from core.system import system_info
from core.ui.job_view import eta_seconds

MAX_ID = 2**62
# Job ids are "20260101-120000-abc123": no dot, slash or NUL can reach the store or a folder name.
JobId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


class ErrorOut(BaseModel):
    detail: str


# Documented so that clients (and the schema fuzzer) know every status a route can answer.
NOT_FOUND = {404: {"model": ErrorOut, "description": "no such job"}}
CONFLICT = {409: {"model": ErrorOut, "description": "the job is not in a state that allows this"}}


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


def _integral_floats_to_int(value: Any) -> Any:
    """JSON Schema counts 54.0 as an integer; strict pydantic would not. Floats fields still
    accept ints in strict mode, so this normalisation loses nothing."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_floats_to_int(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_to_int(v) for v in value]
    return value


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

    async def disk_full(request: Request, exc: Exception) -> JSONResponse:
        """A full disk under the store is a clear 507, not an anonymous 500."""
        if not is_disk_full(exc):
            raise exc
        return JSONResponse({"detail": ctx.t("rel.store_full")}, status_code=507)

    api.add_exception_handler(OSError, disk_full)
    api.add_exception_handler(sqlite3.OperationalError, disk_full)

    def row_or_404(job_id: str) -> dict:
        row = ctx.store.get_job(job_id)
        if row is None:
            raise HTTPException(404, ctx.t("jobs.unknown", id=job_id))
        return row

    def studio_error(exc: StudioError, code: int = 409) -> HTTPException:
        return HTTPException(code, exc.render(ctx.t))

    @api.post("/jobs", status_code=201, response_model=JobState,
              responses={400: {"model": ErrorOut, "description": "the body is not JSON"}})
    def create_job(body: JobCreate) -> JobState:
        if body.kind not in ctx.jobs.kinds:
            raise HTTPException(422, [{"loc": ["body", "kind"], "msg": ctx.t("jobs.unknown_kind", kind=body.kind),
                                       "type": "value_error"}])
        try:
            # Strict JSON validation: a REST client sending `false` for an int or "3" for a
            # number is told so (422) rather than silently coerced, as the schema promises.
            model = ctx.jobs.kinds[body.kind].params
            params = model.model_validate_json(json.dumps(_integral_floats_to_int(body.params)), strict=True)
            job_id = ctx.jobs.create(body.kind, params)
        except ValidationError as exc:
            raise HTTPException(422, [{"loc": ["body", "params", *e["loc"]], "msg": error_text(e, ctx.t), "type": e["type"]}
                                      for e in exc.errors(include_url=False, include_input=False)])
        except StudioError as exc:  # same shape as a validation error, as documented for 422
            raise HTTPException(422, [{"loc": ["body", "params"], "msg": exc.render(ctx.t), "type": "value_error"}])
        if body.start:
            ctx.jobs.start(job_id)
        return _state(ctx, ctx.store.get_job(job_id))

    @api.get("/jobs", response_model=list[JobState])
    def list_jobs(status: str | None = Query(None, max_length=20), kind: str | None = Query(None, max_length=100),
                  limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_ID)) -> list[JobState]:
        return [_state(ctx, r) for r in ctx.store.list_jobs(status, kind, limit, offset)]

    @api.get("/jobs/{job_id}", response_model=JobState, responses=NOT_FOUND)
    def get_job(job_id: JobId) -> JobState:
        return _state(ctx, row_or_404(job_id))

    @api.post("/jobs/{job_id}/start", response_model=JobState, responses={**NOT_FOUND, **CONFLICT})
    def start_job(job_id: JobId) -> JobState:
        row = row_or_404(job_id)
        if row["status"] != "pending" or ctx.jobs.get(job_id) is None:
            raise HTTPException(409, ctx.t("jobs.cannot_start", id=job_id, status=row["status"]))
        ctx.jobs.start(job_id)
        return _state(ctx, ctx.store.get_job(job_id))

    @api.post("/jobs/{job_id}/stop", response_model=JobState, responses=NOT_FOUND)
    def stop_job(job_id: JobId) -> JobState:
        row_or_404(job_id)
        ctx.jobs.stop(job_id)
        return _state(ctx, ctx.store.get_job(job_id))

    @api.post("/jobs/{job_id}/resume", response_model=JobState, status_code=201,
              responses={**NOT_FOUND, **CONFLICT})
    def resume_job(job_id: JobId) -> JobState:
        row_or_404(job_id)
        try:
            new_id = ctx.jobs.resume(job_id)
        except StudioError as exc:
            raise studio_error(exc)
        return _state(ctx, ctx.store.get_job(new_id))

    @api.delete("/jobs/{job_id}", status_code=204, responses={**NOT_FOUND, **CONFLICT})
    def delete_job(job_id: JobId) -> None:
        row = row_or_404(job_id)
        if row["status"] in ("pending", "running") and ctx.jobs.get(job_id) is not None:
            raise HTTPException(409, ctx.t("jobs.still_active", id=job_id))
        ctx.store.delete_job(job_id)
        shutil.rmtree(ctx.jobs.jobs_dir / job_id, ignore_errors=True)

    @api.get("/jobs/{job_id}/logs", responses=NOT_FOUND)
    def job_logs(job_id: JobId, after: int = Query(0, ge=0, le=MAX_ID),
                 limit: int = Query(1000, ge=1, le=10000)) -> list[dict]:
        row_or_404(job_id)
        return ctx.store.logs(job_id, after, limit)

    @api.get("/jobs/{job_id}/metrics", responses=NOT_FOUND)
    def job_metrics(job_id: JobId, name: str | None = Query(None, max_length=100)) -> list[dict]:
        row_or_404(job_id)
        return ctx.store.metrics(job_id, name)

    @api.get("/jobs/{job_id}/artifacts", responses=NOT_FOUND)
    def job_artifacts(job_id: JobId) -> list[dict]:
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
    _document_kinds(api, ctx)
    return api


def _document_kinds(api: FastAPI, ctx) -> None:
    """Publish JobCreate as one variant per registered kind, each with its own params schema.

    The pydantic model only says "kind: str, params: object", so a client (or a schema
    fuzzer) could not know which kinds exist nor what their params look like. Built at
    each schema request, so kinds registered after startup appear too.
    """
    base = api.openapi

    def openapi() -> dict[str, Any]:
        api.openapi_schema = None
        schema = base()
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        variants = []
        for name, kind in sorted(ctx.jobs.kinds.items()):
            tag = re.sub(r"[^A-Za-z0-9_]", "_", name)
            params = kind.params.model_json_schema(ref_template=f"#/components/schemas/{tag}__{{model}}")
            for dname, sub in params.pop("$defs", {}).items():
                comps[f"{tag}__{dname}"] = sub
            variants.append({
                "type": "object", "title": f"JobCreate[{name}]",
                "required": ["kind", "params"] if params.get("required") else ["kind"],
                "properties": {"kind": {"type": "string", "enum": [name]}, "params": params,
                               "start": {"type": "boolean", "default": False}}})
        if variants:
            comps["JobCreate"] = {"title": "JobCreate", "oneOf": variants}
        return schema

    api.openapi = openapi  # type: ignore[method-assign]


def mount_api(app, ctx, auth: tuple[str, str] | None = None) -> FastAPI:
    """Mount the API on Gradio's FastAPI app (done after launch, as Gradio builds it then)."""
    api = create_api(ctx, auth)
    app.mount("/api", api)
    # Gradio's own routes come first in the list; a mount appended last still wins for
    # /api/... because Gradio registers nothing under /api.
    return api
