"""Frame interpolation tab: RIFE (Practical-RIFE 4.x weights) for video and image pairs.

2x/4x/Nx, a target frame rate with exact timestamps, or slow motion; scene cuts are held,
not morphed; repeated frames can be dropped; audio is copied. Job kinds
``rife.interpolate_video`` and ``rife.interpolate_pair`` (params in `params.py`).
Light on purpose: torch and the engine load only when a job runs or the tab is built.
"""
from __future__ import annotations

from core.module import JobKind, Module
from modules.frame_interpolation.params import InterpolatePairParams, InterpolateVideoParams


def _run_video(job, params, ctx):
    from modules.frame_interpolation.jobs import run_interpolate_video

    return run_interpolate_video(job, params, ctx)


def _run_pair(job, params, ctx):
    from modules.frame_interpolation.jobs import run_interpolate_pair

    return run_interpolate_pair(job, params, ctx)


def _build_ui(ctx):
    from modules.frame_interpolation.ui import build_ui

    return build_ui(ctx)


MODULE = Module(
    id="frame_interpolation",
    title_key="rife.title",
    order=40,
    build_ui=_build_ui,
    job_kinds=[
        JobKind(name="rife.interpolate_video", params=InterpolateVideoParams, run=_run_video, gpu=True,
                title_key="rife.kind.video"),
        JobKind(name="rife.interpolate_pair", params=InterpolatePairParams, run=_run_pair, gpu=True,
                title_key="rife.kind.pair"),
    ],
)
