"""Every user-visible string of the UI goes through locales/: a literal text given to a
Gradio component's label, info, placeholder or table headers (or a Button's/Markdown's
first argument) is a string a French user would see in English. Scans the source of every
tab and of the shell's shared UI."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEXT_KWARGS = {"label", "info", "placeholder", "headers"}
FIRST_ARG_IS_TEXT = {"Button", "Markdown", "Tab", "Accordion", "UploadButton", "DownloadButton"}
# the same in every language: file format names and examples of what to type
NOT_WORDS = {"GIF", "MP4", "lora.", "sks", "simple background, ..."}
SOURCES = sorted([*ROOT.glob("modules/**/*.py"), *ROOT.glob("core/ui/*.py"), ROOT / "core" / "shell.py"])


def _literal_texts(node: ast.AST) -> list[str]:
    """Word-like string constants in a value (a str, or a list/tuple of them)."""
    items = node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]
    return [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)
            and any(ch.isalpha() for ch in i.value) and i.value not in NOT_WORDS]


def offenders(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "gr"):
            continue
        comp = node.func.attr
        texts = [(kw.arg, t) for kw in node.keywords if kw.arg in TEXT_KWARGS for t in _literal_texts(kw.value)]
        if comp in FIRST_ARG_IS_TEXT and node.args:
            texts += [("text", t) for t in _literal_texts(node.args[0])]
        found += [f"{filename}:{node.lineno} gr.{comp}({arg}={text!r})" for arg, text in texts]
    return found


def test_no_untranslated_ui_text():
    assert len(SOURCES) > 20
    bad = [o for p in SOURCES for o in offenders(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]
    assert bad == []


@pytest.mark.parametrize("code, n", [
    ('gr.Dataframe(headers=["file", "MiB"])', 2),
    ('gr.Button("Run")', 1),
    ('gr.Slider(1, 2, label="steps")', 1),
    ('gr.Dataframe(headers=[t("a.b")], label=i18n("c"))', 0),
    ('gr.Markdown("---")', 0),
    ('gr.Textbox(placeholder="1, 0.5")', 0),
])
def test_the_scan_sees_literals(code, n):
    assert len(offenders(code, "x.py")) == n
