"""REST API through the running server, and the Gradio app through gradio_client."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.browser import free_port
from tests.e2e.loop_module import KIND


@pytest.fixture
def server(bare_ctx):
    from core.shell import launch

    bare_ctx.jobs.register(KIND)
    port = free_port()
    demo = launch(bare_ctx, port=port, block=False)
    yield f"http://127.0.0.1:{port}", bare_ctx
    demo.close()


def test_rest_job_lifecycle(server):
    base, ctx = server
    c = httpx.Client(base_url=base + "/api", timeout=30)
    r = c.post("/jobs", json={"kind": "test.loop", "params": {"steps": 2000, "delay": 0.01}})
    assert r.status_code == 201
    jid = r.json()["id"]
    assert r.json()["status"] == "pending"
    assert c.post(f"/jobs/{jid}/start").status_code == 200
    for _ in range(200):
        if c.get(f"/jobs/{jid}").json()["progress_done"] >= 5:
            break
        time.sleep(0.05)
    logs = c.get(f"/jobs/{jid}/logs", params={"after": 0}).json()
    assert logs and logs[0]["message"].startswith("Job test.loop started")
    after = logs[-1]["id"]
    assert c.post(f"/jobs/{jid}/stop").status_code == 200
    ctx.jobs.wait(jid)
    state = c.get(f"/jobs/{jid}").json()
    assert state["status"] == "stopped" and state["result"]["last"] < 2000
    newer = c.get(f"/jobs/{jid}/logs", params={"after": after}).json()
    assert all(x["id"] > after for x in newer) and newer
    assert any(j["id"] == jid for j in c.get("/jobs").json())
    assert c.delete(f"/jobs/{jid}").status_code == 204
    assert c.get(f"/jobs/{jid}").status_code == 404


def test_rest_errors_name_the_field(server):
    base, _ = server
    c = httpx.Client(base_url=base + "/api", timeout=30)
    r = c.post("/jobs", json={"kind": "test.loop", "params": {"steps": "many"}})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "params", "steps"]
    r = c.post("/jobs", json={"kind": "test.loop", "params": {"steps": 10**12}})
    assert r.status_code == 422
    r = c.post("/jobs", json={"kind": "nope"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "kind"]
    assert c.post("/jobs", json={"params": {}}).status_code == 422
    assert c.get("/jobs/does-not-exist").status_code == 404
    assert c.post("/jobs/does-not-exist/stop").status_code == 404
    assert c.get("/jobs/x/logs", params={"after": -1}).status_code in (404, 422)
    sysinfo = c.get("/system").json()
    assert sysinfo["device"] == "cpu" and "jobs_by_status" in sysinfo
    assert "test.loop" in c.get("/kinds").json()


def test_gradio_client_sees_the_app(server):
    from gradio_client import Client

    base, _ = server
    client = Client(base + "/", verbose=False)
    info = client.view_api(return_format="dict", print_info=False)
    assert info["named_endpoints"] or info["unnamed_endpoints"]
    page = httpx.get(base + "/").text
    assert "CyberBill Studio" in page or "gradio" in page.lower()
