"""Headless Chromium (Debian's package) driven by Playwright, plus a live studio server.

Playwright's own browser download cannot work offline, so we point it at
/usr/bin/chromium with the flags this closed network needs.
"""
from __future__ import annotations

import os
import shutil
import socket
from contextlib import contextmanager

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def require_chromium() -> str:
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; the test command installs it (apt-get install chromium)")
        pytest.skip("chromium not installed")
    return path


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@contextmanager
def browser_page(locale: str = "en-US", width: int = 1400, height: int = 1000):
    from playwright.sync_api import sync_playwright

    exe = require_chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(locale=locale, viewport={"width": width, "height": height})
            yield context.new_page()
        finally:
            browser.close()


@contextmanager
def running_studio(ctx):
    from core.shell import launch

    port = free_port()
    demo = launch(ctx, port=port, block=False)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()


def screenshot_dir(tmp_path) -> "Path":
    """docs/screenshots when UPDATE_SCREENSHOTS=1 (refreshing the README's pictures), else tmp."""
    from pathlib import Path

    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        out = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    else:
        out = Path(tmp_path) / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def choose_lora_project(page, name: str) -> None:
    """Open the LoRA training tab and type a project name (a new one is created on Enter)."""
    page.get_by_role("tab", name="LoRA training").click()
    project = page.get_by_label("Project", exact=True).first
    project.fill(name)
    project.press("Enter")


def open_in_jobs_tab(page, job_id: str, log_regex: str | None = None) -> None:
    """Go to the Jobs tab, refresh, click the job's row; optionally wait until its details
    log matches `log_regex` (a JavaScript regex body)."""
    page.get_by_role("tab", name="Jobs").last.click()
    page.get_by_role("button", name="Refresh").first.click()
    cell = page.locator(f".cb-jobs-table span:text-is('{job_id}')").first
    cell.wait_for(timeout=20_000)
    if log_regex is None:
        return
    cell.click()
    details_log = page.locator(".cb-jobs-log textarea:visible").first
    page.wait_for_function(f"el => /{log_regex}/.test(el.value)", arg=details_log.element_handle(),
                           timeout=20_000)
