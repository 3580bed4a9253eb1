"""Runs, resume and model lists in a real browser (issue 18 points 1, 2, 4): two runs of one
project with different ranks, Resume of the first from the LoRA tab continues its own state
with its own settings; after a page reload (form back to defaults) Resume replays the stopped
run's parameters and "Load its settings" refills the form; a weight file copied into
models/upscalers appears after Refresh."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.browser import browser_page, running_studio, screenshot_dir
from tests.e2e.test_lora_flow_browser import lora_ctx, wait_metrics  # noqa: F401 - the fixture

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def child_of(ctx, parent: str, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for row in ctx.store.list_jobs(kind_prefix="lora."):
            if row.get("parent_id") == parent:
                return row
        time.sleep(0.2)
    pytest.fail(f"no job continues {parent}")


def run_and_stop(ctx, steps: int, **kw) -> dict:
    job = ctx.jobs.submit("lora.train", kw)
    wait_metrics(ctx, job, steps)
    ctx.jobs.stop(job)
    row = ctx.jobs.wait(job, timeout=120)
    assert row["status"] == "stopped", row["error"]
    return row


def stop_from_page(ctx, page, job_id: str) -> dict:
    page.locator(".cb-stop").first.click()
    row = ctx.jobs.wait(job_id, timeout=120)
    assert row["status"] == "stopped"
    return row


def rank_in_form(page) -> str:
    return page.locator("input[type=number][aria-label*='Rank']").first.input_value()


def test_runs_resume_reload_and_refresh(lora_ctx, tmp_path):
    from safetensors.torch import save_file
    import torch

    from tests.lora_training.tiny_sdxl import make_images

    ctx = lora_ctx
    shots = screenshot_dir(tmp_path)
    make_images(ctx.path("LORA_PROJECTS_DIR") / "e2e" / "data" / "c", n=2, size=64, seed=3)
    common = dict(project="e2e", output_name="same", resolution=64, max_steps=400, save_every_steps=2,
                  save_every_epochs=0, keep_last=2, min_snr_gamma=0.0, lr_unet=1e-3)
    first = run_and_stop(ctx, 3, rank=4, alpha=4.0, **common)
    # same project and name, other rank (the LoRA file exists: the user said replace it)
    second = run_and_stop(ctx, 3, rank=8, alpha=8.0, overwrite=True, **common)
    first_dir = str(Path(first["result"]["state"]).parent)
    assert first_dir != str(Path(second["result"]["state"]).parent)  # each run owns its folder

    with running_studio(ctx) as url, browser_page(height=1400) as page:
        page.goto(url, wait_until="load")
        page.get_by_role("tab", name="LoRA training").click()
        page.get_by_text("Runs and configs").first.click()
        page.get_by_label("Past run").first.click()
        page.get_by_role("option", name="rank 4").first.click()
        page.get_by_role("button", name="Resume run").first.click()
        resumed = child_of(ctx, first["id"])
        assert resumed["params"]["rank"] == 4 and resumed["params"]["resume_from"].startswith(first_dir)
        wait_metrics(ctx, resumed["id"], 1)
        assert ctx.store.metrics(resumed["id"], "loss")[0]["step"] > 1  # its own state, continued
        page.wait_for_function("el => /Running|Stopped/.test(el.innerText)",
                               arg=page.locator(".cb-job-status").first.element_handle(), timeout=20_000)
        page.screenshot(path=str(shots / "lora_runs_resume.png"), full_page=True)
        stop_from_page(ctx, page, resumed["id"])

        # a reload: the form is at its defaults, Resume still replays the stopped run (rank 4)
        page.reload(wait_until="load")
        page.get_by_role("tab", name="LoRA training").click()
        assert rank_in_form(page) == "16"
        page.get_by_role("button", name="Resume run").first.click()
        again = child_of(ctx, resumed["id"])
        assert again["params"]["rank"] == 4 and again["params"]["resume_from"].startswith(first_dir)
        wait_metrics(ctx, again["id"], 1)
        stop_from_page(ctx, page, again["id"])

        # "load settings of run X" refills the form
        page.get_by_text("Runs and configs").first.click()
        page.get_by_label("Past run").first.click()
        page.get_by_role("option", name="rank 8").first.click()
        page.get_by_role("button", name="Load its settings").first.click()
        page.wait_for_function("() => [...document.querySelectorAll(\"input[type=number][aria-label*='Rank']\")]"
                               ".some(e => e.value === '8')", timeout=20_000)
        page.screenshot(path=str(shots / "lora_runs_settings_loaded.png"), full_page=True)

        # a weight file copied in while the studio runs: listed after Refresh, no restart
        save_file({"w": torch.zeros(1)}, str(ctx.path("UPSCALERS_DIR") / "copied_x4.safetensors"))
        page.get_by_role("tab", name="Super-resolution").click()
        page.locator("#sr-model").locator("xpath=ancestor::div[contains(@class,'row')][1]") \
            .get_by_role("button", name="Refresh").first.click()
        page.locator("#sr-model input").first.click()
        page.get_by_role("option", name="copied_x4.safetensors").first.wait_for(timeout=20_000)
        page.screenshot(path=str(shots / "sr_refreshed_models.png"), full_page=True)
