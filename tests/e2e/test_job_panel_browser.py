"""In a real browser: start a job from a form, watch the log and chart stream, reload the
page and see the panel re-attach to the running job, press Stop, find it in the Jobs tab."""
from __future__ import annotations

import time

import pytest

from tests.e2e import loop_module
from tests.e2e.browser import browser_page, open_in_jobs_tab, running_studio, screenshot_dir

pytestmark = pytest.mark.e2e


def job_id_box(page):
    return page.locator(".cb-job-id textarea, .cb-job-id input").first


def open_loop_tab(page):
    # The test tab reuses the "Jobs" title key; it is the first of the two "Jobs" tabs.
    page.get_by_role("tab", name="Jobs").first.click()


def test_follow_reload_stop_and_jobs_tab(bare_ctx, tmp_path):
    shots = screenshot_dir(tmp_path)
    loop_module.install(bare_ctx)
    with running_studio(bare_ctx) as url, browser_page() as page:
        page.goto(url, wait_until="load")
        open_loop_tab(page)
        page.locator("#loop-start").click()
        box = job_id_box(page)
        page.wait_for_function("el => el.value.length > 0", arg=box.element_handle(), timeout=20_000)
        jid = box.input_value()
        log = page.locator(".cb-job-log textarea").first
        page.wait_for_function("el => /loop step [3-9]/.test(el.value)", arg=log.element_handle(), timeout=30_000)

        page.reload(wait_until="load")  # re-attach after a reload
        open_loop_tab(page)
        box = job_id_box(page)
        page.wait_for_function("(args) => args[0].value === args[1]", arg=[box.element_handle(), jid],
                               timeout=20_000)
        assert bare_ctx.store.get_job(jid)["status"] == "running"
        page.locator(".cb-stop").first.click()
        row = bare_ctx.jobs.wait(jid, timeout=30)
        assert row["status"] == "stopped" and row["result"]["last"] < 200
        status = page.locator(".cb-job-status").first
        page.wait_for_function("el => /Stopped/.test(el.innerText)", arg=status.element_handle(), timeout=20_000)
        page.screenshot(path=str(shots / "job_panel_stopped.png"), full_page=False)

        open_in_jobs_tab(page, jid, "stop seen at step")
        time.sleep(0.5)
        page.screenshot(path=str(shots / "jobs_tab_details.png"), full_page=True)
