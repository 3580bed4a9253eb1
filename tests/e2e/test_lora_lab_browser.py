"""LoRA Lab in a real browser: "Try it in LoRA Lab" on a stopped LoRA run in the Jobs tab
fills the tab (checkpoints as rows, sample prompt), a grid runs from the tab, the labelled
grid shows as the result and its cells are the job's artifacts."""
from __future__ import annotations

import shutil
import time

import pytest

from tests.e2e.browser import browser_page, open_in_jobs_tab, running_studio, screenshot_dir
from tests.lora_lab.helpers import strong_lora

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    from tests.lora_training.tiny_sdxl import make_tiny_sdxl

    return make_tiny_sdxl(tmp_path_factory.mktemp("lab_e2e") / "tiny_sdxl")


def test_try_it_then_grid_from_the_tab(ctx, tiny_base, tmp_path):
    import torch

    torch.set_num_threads(1)
    base = ctx.path("CHECKPOINTS_DIR") / "tiny_sdxl"
    shutil.copytree(tiny_base, base)
    folder = ctx.path("LORAS_DIR")
    final = strong_lora(folder, "mine", seed=2)
    step = strong_lora(folder, "mine-000002", seed=1)
    run_id = "20260101-000000-run001"
    train = {"project": "mine", "base_model": str(base), "trigger_word": "sks", "sample_prompts": ["sks, a red cat"]}
    ctx.store.create_job(run_id, "lora.train", train)
    ctx.store.write_events([("artifact", run_id, time.time(), str(final), "lora")])
    ctx.store.set_status(run_id, "stopped")
    shots = screenshot_dir(tmp_path)
    with running_studio(ctx) as url, browser_page(height=1300) as page:
        page.goto(url, wait_until="load")
        open_in_jobs_tab(page, run_id)
        page.locator(f".cb-jobs-table span:text-is('{run_id}')").first.click()
        page.locator("#tab-jobs .cb-open-lora_lab").first.click()
        rows = page.locator("#lab-grid-rows textarea")
        page.get_by_role("tab", name="Grid").first.click()
        page.wait_for_function("el => el.value.includes('mine-000002')", arg=rows.element_handle(), timeout=20_000)
        assert rows.input_value().splitlines() == [str(step), str(final)]
        assert page.locator("#lab-grid-prompts textarea").input_value() == "sks, a red cat"
        assert "run001" in page.locator("#lab-run-status").inner_text()
        for sel, value in (("#lab-width input", "64"), ("#lab-height input", "64"), ("#lab-steps input[type=number]", "3"),
                           ("#lab-seed input", "5")):
            page.locator(sel).first.fill(value)
            page.locator(sel).first.press("Tab")
        page.locator("#lab-grid-strengths textarea").fill("0, 0.5, 1")
        page.locator("#lab-grid-run").click()
        deadline = time.time() + 60
        while time.time() < deadline and not ctx.store.list_jobs(kind_prefix="lab."):
            time.sleep(0.1)
        job_id = ctx.store.list_jobs(kind_prefix="lab.")[0]["id"]
        row = ctx.jobs.wait(job_id, timeout=300)
        assert row["status"] == "completed", row["error"]
        assert row["params"]["rows"] == [str(step), str(final)] and row["params"]["strengths"] == [0, 0.5, 1]
        assert row["params"]["width"] == 64 and row["params"]["steps"] == 3 and row["params"]["seed"] == 5
        assert len(ctx.store.artifacts(job_id, "cell")) == 6 and len(ctx.store.artifacts(job_id, "grid")) == 1
        result = page.locator("#lab-result img")
        result.wait_for(timeout=30_000)
        assert "grid_p0" in (result.get_attribute("src") or "")
        page.wait_for_function("el => /Completed/.test(el.innerText)",
                               arg=page.locator("#tab-lora_lab .cb-job-status").first.element_handle(), timeout=20_000)
        page.screenshot(path=str(shots / "lora_lab_grid.png"), full_page=True)
        open_in_jobs_tab(page, job_id, log_regex="grid")
        # "Try it" on a job that is not a LoRA run: one clear message, the tab stays
        page.locator("#tab-jobs .cb-open-lora_lab").first.click()
        page.get_by_text("is not a LoRA training run").first.wait_for(timeout=20_000)
        assert page.get_by_role("tab", name="Jobs").last.get_attribute("aria-selected") == "true"
