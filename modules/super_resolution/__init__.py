"""Super-resolution tab: ESRGAN-family upscaling of images, folders and videos.

Light on purpose: torch and the engine are imported only when a job runs or the tab is
built, so the app starts fast. Job kind `sr.upscale` (params: `params.UpscaleParams`).
"""
from __future__ import annotations

from core.module import JobKind, Module, lazy
from modules.super_resolution.params import UpscaleParams

MODULE = Module(
    id="super_resolution",
    title_key="sr.title",
    order=30,
    build_ui=lazy("modules.super_resolution.ui:build_ui"),
    job_kinds=[JobKind(name="sr.upscale", params=UpscaleParams, run=lazy("modules.super_resolution.batch:run_upscale"),
                       gpu=True, title_key="sr.kind.upscale")],
)
