"""Gradio caption editor of the LoRA data section, with the dataset tag tools.

Works on an in-memory copy of the project's captions (`gr.State`): edit one caption,
replace text in all, add / remove / rename tags (on every image, or only on those the tag
filter shows), a tag frequency table and caption length statistics that follow every
change, Undo of the last bulk edit, and Save, which writes only the changed `.txt` files of
the project (`captions.save_captions`; the import's source folder is never written).
Handlers are module functions taking `ctx` first and returning plain values, so tests call
them directly; `build_editor(ctx, t, c)` lays the components out and wires them.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from core.errors import StudioError, user_message

from . import captions as ops
from .project import Project


def _err(ctx, exc: Exception) -> str:
    return "⚠️ " + user_message(exc, ctx.t)


def shown_keys(captions: dict, filter_tag: str) -> list[str]:
    return ops.filter_by_tag(captions, filter_tag or "")


def _only(captions: dict, filter_tag: str):
    return shown_keys(captions, filter_tag) if (filter_tag or "").strip() else None


def freq_rows(captions: dict) -> list[list]:
    return [[tag, n] for tag, n in ops.tag_frequency(captions)]


def stats_md(ctx, captions: dict, filter_tag: str = "") -> str:
    s = ops.caption_stats(captions)
    return ctx.t("lora_data.ui.stats", shown=len(shown_keys(captions, filter_tag)), **s)


def view(ctx, captions: dict, filter_tag: str) -> tuple[list, list, str]:
    """(gallery items of the shown images, frequency rows, statistics markdown)."""
    gallery = [(k, captions[k]) for k in shown_keys(captions, filter_tag)]
    return gallery, freq_rows(captions), stats_md(ctx, captions, filter_tag)


def _changed_msg(ctx, n: int, captions: dict, original: dict) -> str:
    pending = sum(captions.get(k) != original.get(k) for k in captions)
    return ctx.t("lora_data.ui.changed", count=n, pending=pending)


def load_editor(ctx, project, concept):
    """-> gallery, captions, original, selected, status, undo, freq, stats."""
    try:
        items = ops.load_items(Project.from_ctx(ctx, project or ""), (concept or "").strip() or None)
    except StudioError as exc:
        return [], {}, {}, "", _err(ctx, exc), None, [], ""
    caps = {str(i.image): i.caption for i in items}
    gallery, freq, stats = view(ctx, caps, "")
    return gallery, caps, dict(caps), "", ctx.t("lora_data.ui.loaded", count=len(caps)), None, freq, stats


def select_image(captions: dict, filter_tag: str, evt: gr.SelectData):
    keys = shown_keys(captions, filter_tag)
    if evt is None or evt.index is None or not 0 <= int(evt.index) < len(keys):
        return "", ""
    key = keys[int(evt.index)]
    return key, captions[key]


def apply_edit(ctx, selected, text, captions, original, filter_tag=""):
    """-> gallery, captions, status, freq, stats (a single edit is not a bulk edit: no undo)."""
    if not selected or selected not in captions:
        return gr.skip(), captions, ctx.t("lora_data.ui.no_selection"), gr.skip(), gr.skip()
    caps, n = ops.set_caption(captions, selected, text or "")
    gallery, freq, stats = view(ctx, caps, filter_tag)
    return gallery, caps, _changed_msg(ctx, n, caps, original), freq, stats


def bulk_edit(ctx, op: str, args: dict, captions, original, filter_tag="", undo=None):
    """One bulk operation: `replace`, `add`, `remove` or `rename`.

    -> gallery, captions, status, undo, freq, stats. `undo` becomes the captions before the
    edit when something changed (one level: the last bulk edit).
    """
    only = _only(captions, filter_tag)
    try:
        if op == "replace":
            caps, n = ops.find_replace(captions, args.get("find", ""), args.get("replace", ""),
                                       bool(args.get("regex")), bool(args.get("case", True)))
        elif op == "add":
            caps, n = ops.add_tag(captions, args.get("tag", ""), args.get("position", "start"),
                                  keep_first=args.get("trigger", ""), only=only)
        elif op == "remove":
            caps, n = ops.remove_tag(captions, args.get("tag", ""), only=only)
        elif op == "rename":
            caps, n = ops.rename_tag(captions, args.get("old", ""), args.get("new", ""), only=only)
        else:
            raise ValueError(op)
    except StudioError as exc:
        return gr.skip(), captions, _err(ctx, exc), undo, gr.skip(), gr.skip()
    gallery, freq, stats = view(ctx, caps, filter_tag)
    return gallery, caps, _changed_msg(ctx, n, caps, original), (dict(captions) if n else undo), freq, stats


def undo_bulk(ctx, captions, original, undo, filter_tag=""):
    """-> gallery, captions, status, undo (cleared), freq, stats."""
    if not undo:
        return gr.skip(), captions, ctx.t("lora_data.ui.nothing_to_undo"), None, gr.skip(), gr.skip()
    caps = dict(undo)
    gallery, freq, stats = view(ctx, caps, filter_tag)
    n = sum(caps.get(k) != captions.get(k) for k in caps)
    return gallery, caps, ctx.t("lora_data.ui.undone", count=n), None, freq, stats


def apply_filter(ctx, captions, filter_tag):
    """-> gallery, status, stats."""
    gallery, _, stats = view(ctx, captions, filter_tag)
    return gallery, ctx.t("lora_data.ui.filtered", shown=len(gallery), total=len(captions)), stats


def save_all(ctx, project, captions, original):
    try:
        written = ops.save_captions(Project.from_ctx(ctx, project or ""), captions, original)
    except StudioError as exc:
        return original, _err(ctx, exc)
    return dict(captions), ctx.t("lora_data.ui.saved", count=len(written))


def build_editor(ctx, t, c: dict[str, Any]) -> None:
    """The editor's components, into `c` (inside the current Blocks context)."""
    with gr.Accordion(t("lora_data.ui.editor"), open=False):
        c["load_btn"] = gr.Button(t("lora_data.ui.load"), size="sm")
        with gr.Row():
            c["filter_tag"] = gr.Textbox(label=t("lora_data.ui.filter_tag"), scale=3)
            c["filter_btn"] = gr.Button(t("lora_data.ui.filter"), size="sm", scale=0)
        c["gallery"] = gr.Gallery(label=t("lora_data.ui.gallery"), columns=6, height=360, allow_preview=False)
        c["captions"], c["original"], c["selected"] = gr.State({}), gr.State({}), gr.State("")
        c["undo"] = gr.State(None)
        c["caption_box"] = gr.Textbox(label=t("lora_data.ui.caption_box"), lines=3)
        c["apply_btn"] = gr.Button(t("lora_data.ui.apply"), size="sm")
        with gr.Row():
            c["find"] = gr.Textbox(label=t("lora_data.ui.find"))
            c["replace"] = gr.Textbox(label=t("lora_data.ui.replace"))
            c["regex"] = gr.Checkbox(value=False, label=t("lora_data.ui.regex"))
            c["case"] = gr.Checkbox(value=True, label=t("lora_data.ui.case_sensitive"))
            c["replace_btn"] = gr.Button(t("lora_data.ui.replace_all"), size="sm")
        with gr.Row():
            c["tag"] = gr.Textbox(label=t("lora_data.ui.tag"))
            c["position"] = gr.Radio(choices=[(t("lora_data.ui.pos_start"), "start"),
                                              (t("lora_data.ui.pos_end"), "end")],
                                     value="start", label=t("lora_data.ui.position"))
            c["add_tag_btn"] = gr.Button(t("lora_data.ui.add_tag"), size="sm")
            c["remove_tag_btn"] = gr.Button(t("lora_data.ui.remove_tag"), size="sm")
        with gr.Row():
            c["rename_from"] = gr.Textbox(label=t("lora_data.ui.rename_from"))
            c["rename_to"] = gr.Textbox(label=t("lora_data.ui.rename_to"))
            c["rename_btn"] = gr.Button(t("lora_data.ui.rename"), size="sm")
            c["undo_btn"] = gr.Button(t("lora_data.ui.undo"), size="sm")
        with gr.Row():
            # headers in the server's language: a Dataframe does not translate gr.I18n headers
            c["freq"] = gr.Dataframe(headers=[ctx.t("lora_data.ui.freq_tag"), ctx.t("lora_data.ui.freq_count")],
                                     value=[], interactive=False, label=t("lora_data.ui.freq"), max_height=300,
                                     column_widths=["75%", "25%"], scale=1)
            c["stats"] = gr.Markdown()
        c["save_btn"] = gr.Button(t("lora_data.ui.save"), variant="primary")
        c["editor_status"] = gr.Markdown()


def wire_editor(ctx, c: dict[str, Any]) -> None:
    state = [c["captions"], c["original"]]
    out = [c["gallery"], c["captions"], c["editor_status"], c["undo"], c["freq"], c["stats"]]
    c["load_btn"].click(lambda p, k: load_editor(ctx, p, k), [c["project"], c["concept"]],
                        [c["gallery"], *state, c["selected"], c["editor_status"], c["undo"], c["freq"], c["stats"]])
    c["gallery"].select(select_image, [c["captions"], c["filter_tag"]], [c["selected"], c["caption_box"]])
    c["apply_btn"].click(lambda *a: apply_edit(ctx, *a), [c["selected"], c["caption_box"], *state, c["filter_tag"]],
                         [c["gallery"], c["captions"], c["editor_status"], c["freq"], c["stats"]])
    for evt in (c["filter_btn"].click, c["filter_tag"].submit):
        evt(lambda cap, f: apply_filter(ctx, cap, f), [c["captions"], c["filter_tag"]],
            [c["gallery"], c["editor_status"], c["stats"]])
    tail = [*state, c["filter_tag"], c["undo"]]
    c["replace_btn"].click(lambda fi, re_, rx, cs, *r: bulk_edit(ctx, "replace", {"find": fi, "replace": re_,
                                                                                  "regex": rx, "case": cs}, *r),
                           [c["find"], c["replace"], c["regex"], c["case"], *tail], out)
    c["add_tag_btn"].click(lambda tg, pos, trig, *r: bulk_edit(ctx, "add", {"tag": tg, "position": pos,
                                                                             "trigger": trig}, *r),
                           [c["tag"], c["position"], c["trigger_word"], *tail], out)
    c["remove_tag_btn"].click(lambda tg, *r: bulk_edit(ctx, "remove", {"tag": tg}, *r), [c["tag"], *tail], out)
    c["rename_btn"].click(lambda a, b, *r: bulk_edit(ctx, "rename", {"old": a, "new": b}, *r),
                          [c["rename_from"], c["rename_to"], *tail], out)
    c["undo_btn"].click(lambda cap, orig, f, u: undo_bulk(ctx, cap, orig, u, f), tail, out)
    c["save_btn"].click(lambda p, cap, orig: save_all(ctx, p, cap, orig), [c["project"], *state],
                        [c["original"], c["editor_status"]])
