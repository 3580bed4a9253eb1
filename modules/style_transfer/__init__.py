"""Style transfer tab: Gatys optimisation on VGG19, fast feed-forward networks (apply to
images/folders/videos, train new ones), colour preservation, ONNX export.

Kept light on purpose: no torch import here. The job kinds point at thin wrappers that
import the engines when a job actually runs.
"""
from __future__ import annotations

from core.module import JobKind, Module
from modules.style_transfer.params import ExportOnnxParams, FastApplyParams, FastTrainParams, GatysParams


def _gatys(job, params, ctx):
    from modules.style_transfer.runners import run_gatys

    return run_gatys(job, params, ctx)


def _fast_apply(job, params, ctx):
    from modules.style_transfer.runners import run_fast_apply

    return run_fast_apply(job, params, ctx)


def _fast_train(job, params, ctx):
    from modules.style_transfer.runners import run_fast_train

    return run_fast_train(job, params, ctx)


def _export_onnx(job, params, ctx):
    from modules.style_transfer.runners import run_export_onnx

    return run_export_onnx(job, params, ctx)


def build_ui(ctx) -> None:
    from modules.style_transfer.ui import build_ui as build

    build(ctx)


JOB_KINDS = [
    JobKind(name="style.gatys", params=GatysParams, run=_gatys, gpu=True, title_key="style.kind.gatys"),
    JobKind(name="style.fast_apply", params=FastApplyParams, run=_fast_apply, gpu=True,
            title_key="style.kind.fast_apply"),
    JobKind(name="style.fast_train", params=FastTrainParams, run=_fast_train, gpu=True,
            title_key="style.kind.fast_train"),
    JobKind(name="style.export_onnx", params=ExportOnnxParams, run=_export_onnx, gpu=False,
            title_key="style.kind.export_onnx"),
]

MODULE = Module(id="style_transfer", title_key="style.title", order=50, build_ui=build_ui, job_kinds=JOB_KINDS)
