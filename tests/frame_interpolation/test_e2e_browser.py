"""In a real browser: open the tab, give it two images, run, and see the job complete."""
from __future__ import annotations

import pytest
from PIL import Image

from core.i18n import load_locale
from tests.e2e.browser import browser_page, running_studio
from tests.frame_interpolation.helpers import save_tiny_model, scene

pytestmark = pytest.mark.e2e


def test_pair_from_the_browser(ctx, tmp_path):
    save_tiny_model(ctx.path("RIFE_DIR"))
    a, b = tmp_path / "first.png", tmp_path / "second.png"
    Image.fromarray(scene(0)).save(a)
    Image.fromarray(scene(4)).save(b)
    en = load_locale("en")
    with running_studio(ctx) as url, browser_page() as page:
        page.goto(url, wait_until="networkidle")
        page.get_by_role("tab", name=en["rife.title"]).click()
        page.get_by_role("tab", name=en["rife.ui.tab_pair"]).click()
        page.locator("#rife-image-a input[type=file]").set_input_files(str(a))
        page.locator("#rife-image-b input[type=file]").set_input_files(str(b))
        for box in ("#rife-image-a", "#rife-image-b"):  # an upload is done when its image shows
            page.locator(f"{box} img").first.wait_for(state="visible", timeout=30_000)
        page.locator("#rife-start-pair").click()
        page.get_by_text(en["jobs.status.completed"]).first.wait_for(timeout=60_000)
    rows = ctx.store.list_jobs(kind_prefix="rife.", limit=5)
    assert len(rows) == 1 and rows[0]["status"] == "completed"
    kinds = sorted(x["kind"] for x in ctx.store.artifacts(rows[0]["id"]))
    assert kinds.count("image") == 1 and "animation" in kinds and "video" in kinds
