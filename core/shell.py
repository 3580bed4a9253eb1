"""The Blocks: header, one tab per discovered module, the Jobs tab and Settings.

Also `launch()`: binds 127.0.0.1 unless told otherwise, restricts file access to the
studio's folders, caps uploads, mounts the REST API under /api.
"""
from __future__ import annotations

import traceback

import gradio as gr

from core.i18n import gradio_i18n, load_locale, resolve_language
from core.ui.jobs_tab import build_jobs_tab
from core.ui.settings_tab import build_settings_tab

CSS = """
.cb-header h1 {margin-bottom: 0}
.cb-job-log textarea {font-family: ui-monospace, monospace; font-size: 12px}
"""


def make_i18n(ctx):
    """gr.I18n following the browser; a LANGUAGE setting other than auto forces it."""
    forced = str(ctx.config.get("LANGUAGE", "auto")).lower()
    if forced in ("en", "fr"):
        table = load_locale(resolve_language(forced))
        return gr.I18n(en=table, fr=table)
    return gradio_i18n()


def build_app(ctx) -> gr.Blocks:
    ctx.i18n = i18n = make_i18n(ctx)
    ctx.panels.clear()
    with gr.Blocks(title=ctx.t("app.title")) as demo:
        with gr.Column(elem_classes=["cb-header"]):
            gr.Markdown("# " + ctx.t("app.title"))
            gr.Markdown(i18n("app.subtitle"))  # follows the browser language, as labels do
        with gr.Tabs():
            for module in ctx.modules:
                if module.build_ui is None:
                    continue
                with gr.Tab(i18n(module.title_key), id=module.id, elem_id=f"tab-{module.id}"):
                    try:
                        module.build_ui(ctx)
                    except Exception:  # noqa: BLE001 - one broken tab must not take the studio down
                        gr.Markdown(ctx.t("shell.tab_failed", module=module.id))
                        gr.Code(traceback.format_exc(), language=None)
            with gr.Tab(i18n("jobs.title"), id="jobs", elem_id="tab-jobs"):
                build_jobs_tab(ctx, demo)
            with gr.Tab(i18n("settings.title"), id="settings", elem_id="tab-settings"):
                build_settings_tab(ctx)
        for panel in ctx.panels:
            panel.attach_on_load(demo)
    return demo


def private_files(ctx) -> list[str]:
    """Files inside the allowed folders that the file route must never serve: the job
    database (DATA_DIR is an allowed root because job previews live under it) and the
    user's settings."""
    db = str(ctx.store.path)
    private = [db, db + "-wal", db + "-shm", db + "-journal", str(ctx.config.user_file)]
    return private + ([str(ctx.lock.path)] if ctx.lock is not None else [])


def launch(ctx, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           auth: tuple[str, str] | None = None, block: bool = True) -> gr.Blocks:
    from core.api import mount_api

    demo = build_app(ctx)
    if host not in ("127.0.0.1", "localhost", "::1") and auth is None:
        print(ctx.t("shell.listen_warning", host=host), flush=True)
    demo.queue(default_concurrency_limit=8)
    demo.launch(
        server_name=host, server_port=port, share=share, auth=auth, prevent_thread_lock=True,
        allowed_paths=[str(p) for p in ctx.config.allowed_roots()] + [str(ctx.jobs.jobs_dir)],
        blocked_paths=private_files(ctx),
        max_file_size=f"{int(ctx.config.get('MAX_UPLOAD_MB', 512))}mb", i18n=ctx.i18n, css=CSS,
        quiet=not block, show_error=True,
    )
    mount_api(demo.app, ctx, auth=auth)
    if block:
        try:
            demo.block_thread()
        finally:
            ctx.close()
    return demo
