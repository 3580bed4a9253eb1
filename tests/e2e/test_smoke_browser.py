"""The page loads in a real browser, every tab opens, French works; screenshots to docs/."""
from __future__ import annotations

import pytest

from core.i18n import load_locale
from tests.e2e.browser import browser_page, running_studio, screenshot_dir

pytestmark = pytest.mark.e2e


def tab_names(ctx, lang):
    table = load_locale(lang)
    return [table[m.title_key] for m in ctx.modules if m.build_ui] + [table["jobs.title"], table["settings.title"]]


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_every_tab_opens(ctx, lang, tmp_path):
    DOCS = screenshot_dir(tmp_path)
    with running_studio(ctx) as url, browser_page(locale="fr-FR" if lang == "fr" else "en-US") as page:
        page.goto(url, wait_until="networkidle")
        page.get_by_text(load_locale(lang)["app.title"]).first.wait_for(timeout=30_000)
        names = tab_names(ctx, lang)
        for name in names:
            page.get_by_role("tab", name=name).click()
            page.wait_for_timeout(300)
            assert page.get_by_role("tab", name=name).get_attribute("aria-selected") == "true"
            if lang == "en":
                slug = name.lower().replace(" ", "_").replace("/", "_")
                page.screenshot(path=str(DOCS / f"tab_{slug}.png"), full_page=True)
        if lang == "fr":
            assert page.get_by_role("tab", name="Réglages").count() == 1
            page.screenshot(path=str(DOCS / "studio_fr.png"))
