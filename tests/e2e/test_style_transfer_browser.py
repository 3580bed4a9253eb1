"""In a real browser, the Style transfer tab: pick a fast network in the dropdown, type an
input folder, Apply, watch the log stream, press Stop mid-batch, check the stylized files
on disk (same sizes as the inputs), then open the job in the Jobs tab."""
from __future__ import annotations

import time

import pytest
import torch

from modules.style_transfer.transformer_net import TransformerNet
from tests.e2e.browser import browser_page, open_in_jobs_tab, running_studio, screenshot_dir
from tests.style_transfer.helpers import pattern_image

pytestmark = pytest.mark.e2e

N_IMAGES = 60  # long enough that Stop lands mid-batch


def test_fast_apply_stop_and_jobs_tab(ctx, tmp_path):
    shots = screenshot_dir(tmp_path)
    torch.manual_seed(0)
    torch.save(TransformerNet().state_dict(), ctx.path("STYLE_DIR") / "tiny_candy.pth")
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(N_IMAGES):
        pattern_image(200 + (i % 3) * 8, 160, seed=i).save(src / f"img_{i:03d}.png")

    with running_studio(ctx) as url, browser_page() as page:
        page.goto(url, wait_until="load")
        page.get_by_role("tab", name="Style transfer").first.click()
        page.get_by_role("tab", name="Fast style: apply").first.click()
        net = page.get_by_label("Style network").first
        net.click()
        page.get_by_role("option", name="tiny_candy.pth").first.click()
        page.get_by_label("Or a folder on this machine").first.fill(str(src))
        page.get_by_role("button", name="Apply", exact=True).first.click()

        box = page.locator(".cb-job-id textarea:visible, .cb-job-id input:visible").first
        page.wait_for_function("el => el.value.length > 0", arg=box.element_handle(), timeout=30_000)
        jid = box.input_value()
        deadline = time.time() + 120
        while time.time() < deadline and len(ctx.store.artifacts(jid)) < 3:
            time.sleep(0.2)
        assert len(ctx.store.artifacts(jid)) >= 3
        log = page.locator(".cb-job-log textarea:visible").first
        page.wait_for_function("el => /tiny_candy.pth/.test(el.value)", arg=log.element_handle(), timeout=30_000)
        page.screenshot(path=str(shots / "style_transfer_apply.png"), full_page=False)
        page.locator(".cb-stop:visible").first.click()

        row = ctx.jobs.wait(jid, timeout=60)
        assert row["status"] == "stopped", row["status"]
        written = row["result"]["written"]
        assert 3 <= written < N_IMAGES
        from pathlib import Path
        out_dir = Path(row["result"]["output_dir"])
        files = sorted(out_dir.rglob("*.png"))
        assert len(files) == written  # finished outputs kept, no partial file left
        from PIL import Image
        for f in files:
            with Image.open(f) as im, Image.open(src / f.name) as orig:
                assert im.size == orig.size
        status = page.locator(".cb-job-status:visible").first
        page.wait_for_function("el => /Stopped/.test(el.innerText)", arg=status.element_handle(), timeout=20_000)

        open_in_jobs_tab(page, jid, "tiny_candy.pth")
