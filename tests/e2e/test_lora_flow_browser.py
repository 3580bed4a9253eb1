"""The LoRA flow in a real browser, on a tiny SDXL and a tiny Florence-2 built on the spot:
import a folder, caption it, edit a caption, Prepare & Train, watch the loss chart, Stop
(a LoRA is saved), Resume (it continues), the LoRA is listed."""
from __future__ import annotations

import time

import pytest

from tests.e2e.browser import browser_page, choose_lora_project, running_studio, screenshot_dir

pytestmark = pytest.mark.e2e


def wait_job(ctx, kind: str, statuses: tuple[str, ...], timeout: float = 240) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = [r for r in ctx.store.list_jobs(kind_prefix=kind) if r["kind"] == kind]
        if rows and rows[0]["status"] in statuses:
            return rows[0]
        time.sleep(0.2)
    pytest.fail(f"{kind} did not reach {statuses}")


def wait_metrics(ctx, job_id: str, n: int, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(ctx.store.metrics(job_id, "loss")) >= n:
            return
        time.sleep(0.2)
    pytest.fail(f"job {job_id} logged fewer than {n} losses")


def fill_number(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True).first
    box.fill(str(value))
    box.press("Tab")


@pytest.fixture
def lora_ctx(tmp_path):
    import torch

    from core.context import build_context
    from tests.lora_training.tiny_florence import make_tiny_florence
    from tests.lora_training.tiny_sdxl import make_tiny_sdxl

    torch.set_num_threads(1)
    sdxl = make_tiny_sdxl(tmp_path / "models" / "tiny_sdxl")
    florence = make_tiny_florence(tmp_path / "models" / "tiny_florence")
    ctx = build_context(tmp_path / "home", overrides={"DEFAULT_SDXL_MODEL_FOR_LORA": str(sdxl),
                                                      "DEFAULT_CAPTION_MODEL": str(florence)})
    yield ctx
    ctx.close()


def test_lora_flow(lora_ctx, tmp_path):
    from tests.lora_training.tiny_sdxl import make_images

    ctx = lora_ctx
    shots = screenshot_dir(tmp_path)
    src = tmp_path / "photos"
    make_images(src, n=3, size=256, captions=False, seed=1)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    with running_studio(ctx) as url, browser_page(height=1400) as page:
        page.goto(url, wait_until="load")
        choose_lora_project(page, "e2e")
        page.get_by_label("Source folder (never modified)").fill(str(src))
        fill_number(page, "Resolution", 256)
        fill_number(page, "Minimum size (short side, px)", 64)

        page.get_by_role("button", name="Prepare images").click()
        prep = wait_job(ctx, "lora.prepare", ("completed", "failed"))
        assert prep["status"] == "completed", prep["error"]
        concept = ctx.path("LORA_PROJECTS_DIR") / "e2e" / "data" / "default"
        assert len(list(concept.glob("*.png"))) == 3

        page.get_by_label("Trigger word").first.fill("sks")
        page.get_by_role("button", name="Caption images").click()
        cap = wait_job(ctx, "lora.caption", ("completed", "failed"))
        assert cap["status"] == "completed", cap["error"]
        captions = sorted(concept.glob("*.txt"))
        assert len(captions) == 3 and all(c.read_text().startswith("sks") for c in captions)

        page.get_by_text("Caption editor").click()
        page.get_by_role("button", name="Load images and captions").click()
        page.locator(".gallery-item, button.thumbnail-item").first.click(timeout=30_000)
        box = page.get_by_label("Caption of the selected image").first
        page.wait_for_function("el => el.value.startsWith('sks')", arg=box.element_handle(), timeout=20_000)
        box.fill("sks, a photo edited in the browser")
        page.get_by_role("button", name="Update caption").click()
        page.get_by_role("button", name="Save captions").click()
        deadline = time.time() + 20
        while time.time() < deadline and not any("edited in the browser" in c.read_text() for c in captions):
            time.sleep(0.2)
        assert sum("edited in the browser" in c.read_text() for c in captions) == 1
        page.screenshot(path=str(shots / "lora_caption_editor.png"), full_page=True)

        fill_number(page, "Max steps (0 = epochs)", 400)
        page.get_by_text("Samples, validation and checkpoints").click()
        fill_number(page, "Save state every N steps", 2)
        page.get_by_role("button", name="Prepare & Train").click()
        job = wait_job(ctx, "lora.prepare_and_train", ("running",))
        wait_metrics(ctx, job["id"], 4)
        page.locator(".cb-job-status").first.wait_for()
        page.wait_for_function("el => /Running/.test(el.innerText)",
                               arg=page.locator(".cb-job-status").first.element_handle(), timeout=20_000)
        page.locator("canvas, svg.marks").first.wait_for(timeout=20_000)  # the loss chart is drawn
        page.screenshot(path=str(shots / "lora_training_live.png"), full_page=True)
        page.locator(".cb-stop").first.click()
        row = ctx.jobs.wait(job["id"], timeout=120)
        assert row["status"] == "stopped"
        loras = sorted((ctx.path("LORAS_DIR")).glob("*.safetensors"))
        assert loras, "Stop saves a LoRA"
        steps_done = max(m["step"] for m in ctx.store.metrics(job["id"], "loss"))

        page.get_by_role("button", name="Resume run").click()  # the run the panel shows, its own params
        resumed = wait_job(ctx, "lora.prepare_and_train", ("running",))
        assert resumed["parent_id"] == job["id"]
        wait_metrics(ctx, resumed["id"], 2)
        first = ctx.store.metrics(resumed["id"], "loss")[0]["step"]
        assert first > 1 and first <= steps_done + 1, (first, steps_done)
        page.locator(".cb-stop").first.click()
        assert ctx.jobs.wait(resumed["id"], timeout=120)["status"] == "stopped"

        page.get_by_text("LoRAs in the LoRA folder").click()
        page.get_by_role("button", name="Refresh").last.click()
        page.locator(f"span:text-is('{loras[0].name}')").first.wait_for(timeout=20_000)
        page.screenshot(path=str(shots / "lora_stopped_listed.png"), full_page=True)
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # the source is untouched
