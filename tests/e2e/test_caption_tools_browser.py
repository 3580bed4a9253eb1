"""The caption editor's dataset tools in a real browser: tag frequency table, rename a tag in
all captions, filter by tag and add a tag to the shown images only, undo the last bulk edit,
save; the files of the project change as expected and the source folder does not."""
from __future__ import annotations

import time

import pytest

from tests.e2e.browser import browser_page, choose_lora_project, running_studio, screenshot_dir

pytestmark = pytest.mark.e2e

CAPTIONS = ["sks, 1girl, long_hair, smile", "sks, 1girl, short hair", "sks, 1boy, smile"]


@pytest.fixture
def studio(tmp_path):
    from core.context import build_context
    from tests.lora_training.tiny_sdxl import make_images

    ctx = build_context(tmp_path / "home")
    src = tmp_path / "photos"
    for i, img in enumerate(make_images(src, n=3, size=256, captions=False, seed=2)):
        img.with_suffix(".txt").write_text(CAPTIONS[i], encoding="utf-8")
    job = ctx.jobs.submit("lora.prepare", {"project": "tags", "source_dir": str(src), "resolution": 256,
                                           "min_size": 64})
    assert ctx.jobs.wait(job, 120)["status"] == "completed"
    yield ctx, src
    ctx.close()


def shows(page, text: str, timeout: int = 20_000) -> None:
    """Wait until the page's visible text contains `text`."""
    page.wait_for_function("t => document.body.innerText.includes(t)", arg=text, timeout=timeout)


def _wait_files(concept, check, timeout: float = 20.0) -> list[str]:
    deadline = time.time() + timeout
    texts: list[str] = []
    while time.time() < deadline:
        # hidden names are the atomic writer's temp files, renamed a moment later
        texts = [p.read_text(encoding="utf-8") for p in sorted(concept.glob("*.txt")) if not p.name.startswith(".")]
        if check(texts):
            return texts
        time.sleep(0.2)
    pytest.fail(f"captions on disk never matched: {texts}")


def test_caption_tools(studio, tmp_path):
    ctx, src = studio
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    concept = ctx.path("LORA_PROJECTS_DIR") / "tags" / "data" / "default"
    with running_studio(ctx) as url, browser_page(height=1800) as page:
        page.goto(url, wait_until="load")
        choose_lora_project(page, "tags")
        page.get_by_text("Caption editor").click()
        page.get_by_role("button", name="Load images and captions").click()
        shows(page, "3 image(s) loaded", 30_000)
        shows(page, "long_hair")  # the frequency table lists the concept's tags
        shows(page, "3 caption(s), 0 empty")  # the length statistics

        page.get_by_label("Rename tag", exact=True).fill("long_hair")
        page.get_by_label("to", exact=True).fill("long hair")
        page.get_by_role("button", name="Rename in all").click()
        shows(page, "long hair")

        page.get_by_label("Show only images with tag(s) (comma-separated; empty = all)").fill("smile")
        page.get_by_role("button", name="Filter", exact=True).click()
        shows(page, "2 of 3 image(s) shown")
        page.get_by_label("Tag(s), comma-separated").fill("happy")
        page.get_by_role("button", name="Add to all").click()
        shows(page, "2 caption(s) changed")
        page.get_by_label("Rename tag", exact=True).fill("1boy")
        page.get_by_label("to", exact=True).fill("male")
        page.get_by_role("button", name="Rename in all").click()
        shows(page, "1 caption(s) changed")
        page.get_by_role("button", name="Undo last bulk edit").click()  # the 1boy -> male rename
        shows(page, "Last bulk edit undone")
        page.screenshot(path=str(screenshot_dir(tmp_path) / "lora_caption_tools.png"), full_page=True)
        page.get_by_role("button", name="Save captions").click()
        texts = _wait_files(concept, lambda t: sum("happy" in x for x in t) == 2 and "long hair" in " ".join(t))
    assert sorted(texts) == sorted(["happy, sks, 1girl, long hair, smile", "sks, 1girl, short hair",
                                    "happy, sks, 1boy, smile"])  # added at the start (no trigger word set)
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # the source is untouched
