"""Locales: `locales/<lang>/<namespace>.json` merged into one flat key -> text table per language.

One file per module namespace so modules never edit each other's strings. The UI uses
`gr.I18n` (labels follow the browser language); server-side text (job logs, errors) uses
a `Translator` in the configured language (`LANGUAGE`, "auto" = from $LANG, else en).
Missing keys fall back to English, then to the key itself, so a typo shows, never crashes.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from core.config import INSTALL_DIR

LOCALES_DIR = INSTALL_DIR / "locales"
LANGUAGES = ("en", "fr")


@lru_cache(maxsize=None)
def load_locale(lang: str) -> dict[str, str]:
    table: dict[str, str] = {}
    folder = LOCALES_DIR / lang
    for f in sorted(folder.glob("*.json")):
        for key, text in json.loads(f.read_text(encoding="utf-8")).items():
            if key in table:
                raise ValueError(f"duplicate locale key {key!r} in {f}")
            table[key] = text
    return table


def resolve_language(setting: str | None) -> str:
    lang = (setting or "auto").lower()
    if lang == "auto":
        lang = (os.environ.get("LANG") or "en")[:2].lower()
    return lang if lang in LANGUAGES else "en"


class Translator:
    """`t(key, **params)` -> text in one language, with English fallback."""

    def __init__(self, lang: str = "en") -> None:
        self.lang = lang if lang in LANGUAGES else "en"

    def __call__(self, key: str, **params: object) -> str:
        text = load_locale(self.lang).get(key) or load_locale("en").get(key) or key
        if params:
            try:
                return text.format(**params)
            except (KeyError, IndexError, ValueError):
                return text
        return text


def browser_language(accept_language: str | None, setting: str | None = "auto") -> str:
    """The language a browser asked for (its Accept-Language header), unless LANGUAGE forces one.

    Labels follow the browser through gr.I18n; text the server composes for one request
    (status lines, tables) uses this so both agree."""
    forced = (setting or "auto").lower()
    if forced in LANGUAGES:
        return forced
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip()[:2].lower()
        if code in LANGUAGES:
            return code
    return resolve_language(setting)


def request_translator(ctx, request) -> "Translator":
    """A Translator for the browser behind a Gradio request (the studio's own without one)."""
    headers = getattr(request, "headers", None)
    if headers is None:
        return ctx.t
    return Translator(browser_language(headers.get("accept-language"), str(ctx.config.get("LANGUAGE", "auto"))))


def gradio_i18n():
    """A gr.I18n with every language (imported lazily: engines never need gradio)."""
    import gradio as gr

    return gr.I18n(**{lang: load_locale(lang) for lang in LANGUAGES})


def missing_keys() -> dict[str, set[str]]:
    """Keys present in one language but not another (used by a test)."""
    tables = {lang: set(load_locale(lang)) for lang in LANGUAGES}
    every = set().union(*tables.values())
    return {lang: every - keys for lang, keys in tables.items() if every - keys}


def locale_path(lang: str, namespace: str) -> Path:
    return LOCALES_DIR / lang / f"{namespace}.json"
