"""Image classifier in a real browser: count a dataset (bad files listed), train a tiny
ResNet from the form, watch the metrics stream, the model lands in the saved-model list."""
from __future__ import annotations

import time

import pytest

from tests.e2e.browser import browser_page, running_studio, screenshot_dir

pytestmark = pytest.mark.e2e
TAB = "#tab-image_classifier"


def test_train_from_the_tab(ctx, tmp_path):
    import torch

    from tests.image_classifier.conftest import make_dataset, save_tiny_resnet

    torch.set_num_threads(1)
    data = make_dataset(tmp_path / "colors", per_class=12)
    backbone = save_tiny_resnet(tmp_path / "tiny-resnet")
    shots = screenshot_dir(tmp_path)
    with running_studio(ctx) as url, browser_page(height=1400) as page:
        page.goto(url, wait_until="load")
        page.get_by_role("tab", name="Image classifier").click()
        tab = page.locator(TAB)
        tab.get_by_label("Dataset folder").fill(str(data))
        tab.get_by_role("button", name="Count images").click()
        page.locator(f"{TAB} span:text-is('red')").first.wait_for(timeout=30_000)  # class counts shown
        tab.get_by_label("Model name").fill("colors_e2e")
        tab.get_by_label("Backbone (overrides the preset)").fill(str(backbone))
        epochs = tab.get_by_label("Epochs", exact=True)
        epochs.fill("3")
        epochs.press("Tab")
        tab.get_by_role("button", name="Train", exact=True).click()
        deadline = time.time() + 60
        while time.time() < deadline and not ctx.store.list_jobs(kind_prefix="clf.train"):
            time.sleep(0.1)
        job_id = ctx.store.list_jobs(kind_prefix="clf.train")[0]["id"]
        row = ctx.jobs.wait(job_id, timeout=240)
        assert row["status"] == "completed", row["error"]
        assert ctx.store.metrics(job_id, "val_acc"), "validation accuracy was recorded"
        logs = "\n".join(r["message"] for r in ctx.store.logs(job_id, limit=10_000))
        assert "broken.png" in logs and "empty.jpg" in logs  # unreadable images named, skipped
        log = page.locator(f"{TAB} .cb-job-log textarea").first
        page.wait_for_function("el => el.value.includes('clf.train')", arg=log.element_handle(), timeout=30_000)
        status = page.locator(f"{TAB} .cb-job-status").first
        page.wait_for_function("el => /Completed/.test(el.innerText)", arg=status.element_handle(), timeout=30_000)
        assert (ctx.path("CLASSIFIERS_DIR") / "colors_e2e").is_dir()
        page.screenshot(path=str(shots / "classifier_trained.png"), full_page=True)
