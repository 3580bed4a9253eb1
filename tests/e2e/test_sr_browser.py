"""Super-resolution in a real browser: a folder upscale with a tiny x4 network picked from
the model list, the log streams, Stop mid-folder keeps the finished files, the before/after
slider loads, the job is in the Jobs tab."""
from __future__ import annotations

import time

import pytest

from tests.e2e.browser import browser_page, open_in_jobs_tab, running_studio, screenshot_dir

pytestmark = pytest.mark.e2e


def test_folder_upscale_stop_and_compare(ctx, tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from core.media import load_image
    from tests.super_resolution.conftest import compact_sd

    torch.set_num_threads(1)
    torch.save({"params": compact_sd(nf=16, nc=4)}, ctx.path("UPSCALERS_DIR") / "tiny_x4.pth")
    src, out = tmp_path / "photos", ctx.path("OUTPUTS_DIR") / "upscaled_e2e"  # typed outputs lie there
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(src / f"img_{i:02d}.png")
    shots = screenshot_dir(tmp_path)
    with running_studio(ctx) as url, browser_page(height=1200) as page:
        page.goto(url, wait_until="load")
        page.get_by_role("tab", name="Super-resolution").click()
        page.get_by_label("Folder", exact=True).check()
        page.get_by_label("Folder path (searched recursively)").fill(str(src))
        page.get_by_label("Output folder (empty: outputs/upscaled/<job>)").fill("upscaled_e2e")
        page.locator("#sr-start").click()
        deadline = time.time() + 60
        while time.time() < deadline and not ctx.store.list_jobs(kind_prefix="sr."):
            time.sleep(0.1)
        job_id = ctx.store.list_jobs(kind_prefix="sr.")[0]["id"]
        while time.time() < deadline and len(list(out.rglob("*.png"))) < 3:
            time.sleep(0.1)
        log = page.locator("#tab-super_resolution .cb-job-log textarea").first
        page.wait_for_function("el => el.value.includes('sr.upscale')", arg=log.element_handle(), timeout=30_000)
        page.locator("#tab-super_resolution .cb-stop").first.click()
        row = ctx.jobs.wait(job_id, timeout=120)
        assert row["status"] == "stopped"
        done = sorted(out.rglob("*.png"))
        assert 3 <= len(done) < 60
        assert all(load_image(p).size == (512, 384) for p in done)
        page.wait_for_function("el => /Stopped/.test(el.innerText)",
                               arg=page.locator("#tab-super_resolution .cb-job-status").first.element_handle(), timeout=20_000)
        page.screenshot(path=str(shots / "sr_stopped.png"), full_page=True)
        open_in_jobs_tab(page, job_id)
