"""Image classifier tab: transfer learning on an ImageFolder dataset (seeds 003/004).

Light on import (no torch here): engines are imported inside the job functions.
"""
from __future__ import annotations

from core.module import JobKind, Module
from modules.image_classifier.params import ExportParams, TrainParams


def _train(job, params, ctx):
    from modules.image_classifier.train import run_train

    return run_train(job, params, ctx)


def _export(job, params, ctx):
    from modules.image_classifier.onnx_io import run_export

    return run_export(job, params, ctx)


def _resume(old_params: dict, old_job_id: str, ctx) -> dict:
    """Resume = continue the run saved under the same model name."""
    return {**old_params, "resume": True, "overwrite": False}


def _build_ui(ctx) -> None:
    from modules.image_classifier.ui import build_ui

    build_ui(ctx)


def _router(ctx):
    from modules.image_classifier.api import build_router

    return build_router(ctx)


MODULE = Module(
    id="image_classifier",
    title_key="clf.title",
    order=60,
    build_ui=_build_ui,
    job_kinds=[
        JobKind(name="clf.train", params=TrainParams, run=_train, gpu=True, title_key="clf.kind.train",
                resume=_resume),
        JobKind(name="clf.export_onnx", params=ExportParams, run=_export, gpu=False, title_key="clf.kind.export"),
    ],
    api_router=_router,
)
