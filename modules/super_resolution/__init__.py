"""Super-resolution tab: ESRGAN-family upscaling of images, folders and videos.

Light on purpose: torch and the engine are imported only when a job runs or the tab is
built, so the app starts fast. Job kind `sr.upscale` (params: `params.UpscaleParams`).
"""
from __future__ import annotations

from core.module import JobKind, Module
from modules.super_resolution.params import UpscaleParams


def _run(job, params, ctx):
    from modules.super_resolution.batch import run_upscale

    return run_upscale(job, params, ctx)


def _build_ui(ctx):
    from modules.super_resolution.ui import build_ui

    return build_ui(ctx)


MODULE = Module(
    id="super_resolution",
    title_key="sr.title",
    order=30,
    build_ui=_build_ui,
    job_kinds=[JobKind(name="sr.upscale", params=UpscaleParams, run=_run, gpu=True, title_key="sr.kind.upscale")],
)
