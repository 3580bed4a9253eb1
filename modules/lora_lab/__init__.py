"""LoRA Lab tab: SDXL txt2img with LoRAs at chosen strengths, and checkpoint x strength grids.

Job kinds `lab.generate` (params: `params.GenerateParams`) and `lab.grid`
(`params.GridParams`); both hold the GPU lease, so a generation queued behind a training
waits in the GPU queue. The tab can be opened from a LoRA run ("Try it") through
`core.ui.open_with`. Heavy imports happen when a job runs or the tab is built.
"""
from __future__ import annotations

from core.module import JobKind, Module, OpenWith, lazy
from modules.lora_lab.params import GenerateParams, GridParams

MODULE = Module(
    id="lora_lab",
    title_key="lab.title",
    order=15,
    build_ui=lazy("modules.lora_lab.ui:build_ui"),
    open_with=OpenWith(kinds=("lora.",), label_key="lab.ui.try_it"),  # "Try it" on a LoRA run
    job_kinds=[
        JobKind(name="lab.generate", params=GenerateParams, run=lazy("modules.lora_lab.jobs:run_generate"),
                gpu=True, title_key="lab.kind.generate"),
        JobKind(name="lab.grid", params=GridParams, run=lazy("modules.lora_lab.jobs:run_grid"),
                gpu=True, title_key="lab.kind.grid"),
    ],
)
