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


def _stop_state(page, selector: str) -> dict:
    return page.evaluate("(s) => { const b = document.querySelector(s); "
                         "return {disabled: b.disabled, cls: b.className}; }", selector)


def test_live_views_follow_and_clear(bare_ctx, tmp_path):
    """Issue 18.6: the log follows its tail, the chart legend names its series, Stop is live
    only with a job, a stopped job shows no ETA, the Jobs tab detail follows a running job to
    its end, and a new job does not show the previous job's chart."""
    shots = screenshot_dir(tmp_path)
    loop_module.install(bare_ctx)
    with running_studio(bare_ctx) as url, browser_page() as page:
        page.goto(url, wait_until="load")
        open_loop_tab(page)
        assert _stop_state(page, ".cb-stop button, button.cb-stop")["disabled"] is True  # nothing to stop yet
        page.locator("#loop-start").click()
        box = job_id_box(page)
        page.wait_for_function("el => el.value.length > 0", arg=box.element_handle(), timeout=20_000)
        jid = box.input_value()
        log = page.locator(".cb-job-log textarea").first
        page.wait_for_function("el => /loop step (2[0-9]|[3-9][0-9])/.test(el.value)", arg=log.element_handle(),
                               timeout=40_000)
        page.wait_for_function("el => el.scrollHeight > el.clientHeight + 20 && "
                               "el.scrollTop + el.clientHeight >= el.scrollHeight - 4",
                               arg=log.element_handle(), timeout=20_000)  # at the tail, not the top
        assert _stop_state(page, ".cb-stop button, button.cb-stop")["disabled"] is False
        # The legend (series names) is inside the plot's box, not clipped below it.
        legend_ok = page.evaluate("""() => {
            const texts = Array.from(document.querySelectorAll('svg text'))
                .filter(t => t.textContent === 'loss (smoothed)');
            return texts.some(t => { const r = t.getBoundingClientRect();
                let box = t.closest('.block') || t.closest('svg'); const b = box.getBoundingClientRect();
                return r.height > 0 && r.bottom <= b.bottom + 1 && r.top >= b.top; });
        }""")
        assert legend_ok, "legend entries are clipped or missing"
        page.screenshot(path=str(shots / "job_panel_live_views.png"), full_page=True)  # running: tail, legend

        open_in_jobs_tab(page, jid, "loop step")  # the detail view of a running job ...
        bare_ctx.jobs.stop(jid)
        bare_ctx.jobs.wait(jid, timeout=30)
        page.wait_for_function("() => Array.from(document.querySelectorAll('.cb-jobs-log textarea'))"
                               ".some(t => /Stopped after/.test(t.value))", timeout=20_000)  # ... follows it to its end
        page.wait_for_function("() => /Stopped/.test(document.body.innerText.split('Parameters')[0].slice(-400))",
                               timeout=20_000)

        open_loop_tab(page)
        status = page.locator(".cb-job-status").first
        page.wait_for_function("el => /Stopped/.test(el.innerText)", arg=status.element_handle(), timeout=20_000)
        assert "ETA" not in status.inner_text()
        page.wait_for_function("(s) => document.querySelector(s).disabled", arg=".cb-stop button, button.cb-stop",
                               timeout=20_000)

        # A new job replaces the followed one (its chart is cleared: see test_panel_refresh_clears_chart).
        page.locator("#loop-steps input").first.fill("1")
        page.locator("#loop-start").click()
        page.wait_for_function("(old) => { const el = document.querySelector('.cb-job-id textarea, .cb-job-id input');"
                               " return el.value && el.value !== old; }", arg=jid, timeout=20_000)
