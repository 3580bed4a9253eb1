"""Cross-tab "open with": a button where a job is shown (the Jobs tab, a tab's job panel)
that switches to another tab and fills it from that job, e.g. "Try it in LoRA Lab" on a
LoRA training run.

A module declares what it can open with `Module(open_with=OpenWith(kinds=("lora.",),
label_key=...))`; in its `build_ui` it calls `register_target(ctx, module_id, fill, outputs)`
where `fill(job_id)` returns the updates of `outputs` (raise StudioError for a job it
cannot open). Buttons are made from the declarations, so a panel built before the target
tab still gets one; the shell wires them once every tab exists (`wire`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from core.errors import StudioError
from core.i18n import request_translator


@dataclass
class _Sender:
    button: Any
    source: Any  # component holding a job id
    module_id: str


@dataclass
class _Target:
    fill: Callable[[str], Any]
    outputs: list


def _state(ctx) -> dict:
    return ctx.__dict__.setdefault("_open_with", {"senders": [], "targets": {}})


def buttons(ctx, source, kind_prefix: str = "") -> list:
    """One button per module that can open jobs of `kind_prefix` (any kind when empty)."""
    made = []
    for module in ctx.modules:
        ow = getattr(module, "open_with", None)
        if ow is None or module.build_ui is None:
            continue
        if kind_prefix and not any(k.startswith(kind_prefix) or kind_prefix.startswith(k) for k in ow.kinds):
            continue
        b = gr.Button(ctx.i18n(ow.label_key), size="sm", elem_classes=[f"cb-open-{module.id}"])
        _state(ctx)["senders"].append(_Sender(b, source, module.id))
        made.append(b)
    return made


def register_target(ctx, module_id: str, fill: Callable[[str], Any], outputs: list) -> None:
    _state(ctx)["targets"][module_id] = _Target(fill, outputs)


def _opener(ctx, target: _Target, module_id: str):
    def open_job(job_id: str, request: gr.Request = None):
        try:
            updates = target.fill(job_id or "")
        except StudioError as exc:  # in the browser's language, like the job panel's messages
            raise gr.Error(exc.render(request_translator(ctx, request))) from exc
        return [*updates, gr.Tabs(selected=module_id)]

    return open_job


def wire(ctx, tabs) -> None:
    """Connect every button to its tab (called by the shell inside the Blocks, after all tabs)."""
    state = _state(ctx)
    for s in state["senders"]:
        target = state["targets"].get(s.module_id)
        if target is None:  # the tab failed to build: the button would do nothing
            s.button.visible = False
            continue

        s.button.click(_opener(ctx, target, s.module_id), inputs=s.source, outputs=[*target.outputs, tabs])
    state["senders"].clear()
