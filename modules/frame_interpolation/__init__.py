"""Frame interpolation tab: RIFE (Practical-RIFE 4.x weights) for video and image pairs.

2x/4x/Nx, a target frame rate with exact timestamps, or slow motion; scene cuts are held,
not morphed; repeated frames can be dropped; audio is copied. Job kinds
``rife.interpolate_video`` and ``rife.interpolate_pair`` (params in `params.py`).
Light on purpose: torch and the engine load only when a job runs or the tab is built.
"""
from __future__ import annotations

from core.module import JobKind, Module, lazy
from modules.frame_interpolation.params import InterpolatePairParams, InterpolateVideoParams

MODULE = Module(
    id="frame_interpolation",
    title_key="rife.title",
    order=40,
    build_ui=lazy("modules.frame_interpolation.ui:build_ui"),
    job_kinds=[
        JobKind(name="rife.interpolate_video", params=InterpolateVideoParams, gpu=True, title_key="rife.kind.video",
                run=lazy("modules.frame_interpolation.jobs:run_interpolate_video")),
        JobKind(name="rife.interpolate_pair", params=InterpolatePairParams, gpu=True, title_key="rife.kind.pair",
                run=lazy("modules.frame_interpolation.jobs:run_interpolate_pair")),
    ],
)
