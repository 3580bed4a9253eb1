"""Model lists that follow their folders: every dropdown of a tab that lists models
(upscalers, RIFE weights, style networks, base checkpoints, LoRA files, captioners, ...) is
rescanned when the tab's Refresh is clicked and at every page load, so a file copied into
`models/...` shows up without restarting the studio.

    follow_folders(refresh_button, [(dropdown, lambda: list_models(folder)), ...])

Each lister returns the choices (values or (label, value) pairs). The user's current pick is
kept when it is still listed (or typed, for a dropdown that takes custom values); otherwise
the first listed model is picked, except for an optional list (a third item True, e.g.
"initialise from"), where no pick stays no pick.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import gradio as gr

Lister = Callable[[], Sequence[Any]]


def _values(choices: Sequence[Any]) -> list[Any]:
    return [c[1] if isinstance(c, (tuple, list)) else c for c in choices]


def rescan(lister: Lister, current: Any, custom: bool = False, optional: bool = False) -> dict:
    """The gr.update for one list: fresh choices, the current pick kept when it still makes sense."""
    choices = list(lister())
    values = _values(choices)
    if current in values or (custom and current):
        value = current
    elif optional:
        value = None
    else:
        value = values[0] if values else None
    return gr.update(choices=choices, value=value)


def follow_folders(button: Any, lists: Sequence[tuple], extra: Sequence[tuple[Any, Callable[[], Any]]] = (),
                   on_load: bool = True) -> None:
    """Rescan every list of `lists` ((dropdown, lister) or (dropdown, lister, optional)) and
    refill every `extra` component (e.g. a table of files) when `button` is clicked and when
    the page loads."""
    lists = [(e[0], e[1], bool(e[2]) if len(e) > 2 else False) for e in lists if e[0] is not None]
    dropdowns = [d for d, _, _ in lists]
    outputs = dropdowns + [c for c, _ in extra]

    def update(*current):
        ups = [rescan(fn, cur, bool(getattr(d, "allow_custom_value", False)), opt)
               for (d, fn, opt), cur in zip(lists, current)]
        return tuple(ups + [fn() for _, fn in extra]) if len(outputs) > 1 else (ups + [fn() for _, fn in extra])[0]

    if not outputs:
        return
    if button is not None:
        button.click(update, inputs=dropdowns, outputs=outputs, show_progress="hidden")
    from gradio.context import Context

    root = Context.root_block  # the studio's Blocks while tabs are built
    if root is not None and on_load:
        root.load(update, inputs=dropdowns, outputs=outputs, show_progress="hidden")
