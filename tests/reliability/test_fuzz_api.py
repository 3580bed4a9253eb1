"""Schemathesis fuzzing of the REST API from its own OpenAPI schema, against a live server.

Every operation gets schema-valid data (must not be rejected, must answer a documented
status with a body that matches the schema) and schema-invalid data (must be a 4xx,
never a 5xx); the per-job routes are fuzzed again with the ids of real jobs so their
query parameters meet real rows. Bounded by `max_examples`, so the run is ~20 s.
"""
from __future__ import annotations

import re
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.reliability.helpers import live_studio, wait_final

POSITIVE_EXAMPLES = 25
NEGATIVE_EXAMPLES = 15
REAL_ID_EXAMPLES = 8


def fuzz(op, base: str, mode: GenerationMode, n: int, counter: list, **strategy_kw) -> str | None:
    """Run `n` generated cases of one operation; return the failure text or None."""

    @given(case=op.as_strategy(mode, **strategy_kw))
    @settings(max_examples=n, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def check(case):
        counter[0] += 1
        case.call_and_validate(base_url=base)

    try:
        check()
    except BaseException as exc:  # noqa: BLE001 - schemathesis raises an exception group
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = str(exc)
        if "Unable to satisfy assumptions" in text and mode is GenerationMode.NEGATIVE:
            return None  # an operation without parameters has no invalid input to make
        return f"{op.label} [{mode.value}]: {text[:1500]}"
    return None


def test_rest_api_schema_fuzz(tmp_path):
    with live_studio(tmp_path / "home") as (base, ctx, _):
        api = base + "/api"
        doc = httpx.get(api + "/openapi.json").json()
        variants = doc["components"]["schemas"]["JobCreate"]["oneOf"]
        assert {v["properties"]["kind"]["enum"][0] for v in variants} == {"rel.cpu", "rel.gpu"}
        schema = schemathesis.openapi.from_dict(doc)
        ops = [r.ok() for r in schema.get_all_operations()]
        assert len(ops) >= 12
        failures, counter = [], [0]
        for op in ops:
            failures.append(fuzz(op, api, GenerationMode.POSITIVE, POSITIVE_EXAMPLES, counter))
            failures.append(fuzz(op, api, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, counter))
        # real rows: a completed, a failed and a never-started job
        with httpx.Client(base_url=api, timeout=30) as c:
            done = c.post("/jobs", json={"kind": "rel.cpu", "params": {"steps": 5}, "start": True}).json()["id"]
            bad = c.post("/jobs", json={"kind": "rel.cpu", "params": {"fail_at": 1}, "start": True}).json()["id"]
            idle = c.post("/jobs", json={"kind": "rel.gpu", "params": {}}).json()["id"]
            wait_final(c, done), wait_final(c, bad)
            for op in ops:
                if "{job_id}" in op.path:
                    for jid in (done, bad, idle):
                        failures.append(fuzz(op, api, GenerationMode.POSITIVE, REAL_ID_EXAMPLES, counter,
                                             path_parameters={"job_id": jid}))
            failures = [f for f in failures if f]
            assert not failures, "\n\n".join(failures)
            # whatever the fuzzer started stops through the API (a fuzzed job may run up to
            # 400 steps x 50 ms), then nothing is left running and the server still answers
            for jid in ctx.jobs.running() + ctx.jobs.queued():
                assert c.post(f"/jobs/{jid}/stop").status_code == 200
            deadline = time.time() + 15
            while ctx.jobs.running() or ctx.jobs.queued():
                assert time.time() < deadline, "jobs left running after the fuzz"
                time.sleep(0.1)
            assert c.get("/system").status_code == 200
            statuses = ctx.store.count_by_status()
        # every folder the runner made is named by a job id (no traversal reached a folder name)
        made = [p.name for p in ctx.jobs.jobs_dir.iterdir()] if ctx.jobs.jobs_dir.exists() else []
        assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", name) for name in made), made
    print(f"\nfuzz: {len(ops)} operations, {counter[0]} requests, jobs by status {statuses}")
    assert counter[0] >= len(ops) * 10
