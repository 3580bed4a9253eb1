"""The LoRA Lab tab: one form for a single generation or a checkpoint x strength grid, the
shared job panel (progress, live previews, Stop, outputs) and the latest result.

"Try it" (core.ui.open_with) fills the form from a LoRA run: base, final LoRA, every step
checkpoint as grid rows, trigger word and sample prompts as the prompts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from core.errors import StudioError
from core.i18n import request_translator
from core.ui import open_with
from modules.lora_lab.params import GenerateParams
from modules.lora_lab.samplers import SAMPLER_NAMES

MODULE_ID = "lora_lab"


def base_choices(ctx) -> list[str]:
    """Diffusers folders and single files in CHECKPOINTS_DIR, then the configured default."""
    folder = ctx.path("CHECKPOINTS_DIR")
    found = sorted(str(p) for p in folder.iterdir() if (p / "model_index.json").is_file() or
                   p.suffix.lower() in (".safetensors", ".ckpt")) if folder.is_dir() else []
    default = str(ctx.config.get("DEFAULT_SDXL_MODEL_FOR_LORA", "") or "")
    return found + ([default] if default and default not in found else [])


def lora_choices(ctx) -> list[str]:
    folder = ctx.path("LORAS_DIR")
    return sorted(p.name for p in folder.glob("*.safetensors")) if folder.is_dir() else []


def parse_loras(ctx, text: str) -> list[dict]:
    """'file-or-name [strength]' per line -> [{'path', 'strength'}] (strength 1 when left out)."""
    out = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        head, _, last = line.rpartition(" ")
        try:
            out.append({"path": head.strip(), "strength": float(last)} if head.strip() else
                       {"path": line, "strength": 1.0})
        except ValueError:
            out.append({"path": line, "strength": 1.0})
    return out


def parse_strengths(ctx, text: str) -> list[float]:
    try:
        return [float(x) for x in (text or "").replace(";", ",").split(",") if x.strip()]
    except ValueError as exc:
        raise gr.Error(ctx.t("lab.ui.bad_strengths")) from exc


def sampling(base, negative, sampler, steps, cfg, seed, width, height) -> dict:
    return {"base_model": (base or "").strip(), "negative_prompt": negative or "", "sampler": sampler,
            "steps": int(steps), "cfg": float(cfg), "seed": int(seed), "width": int(width), "height": int(height)}


def fill_from_run(ctx, job_id: str) -> list:
    """Updates of [run_id, base, prompt, loras, grid_prompts, grid_rows, run_status] from a run."""
    from modules.lora_lab.runs import run_info

    info = run_info(ctx, job_id)
    prompts = info.prompts or ([info.trigger] if info.trigger else [])
    prompt = prompts[0] if prompts else ""
    msg = ctx.t("lab.ui.run_loaded", id=info.job_id, count=len(info.checkpoints), trigger=info.trigger)
    return [info.job_id, gr.update(value=info.base_model), prompt, f"{info.lora} 1.0", "\n".join(prompts),
            "\n".join(info.checkpoints), msg]


def latest_result(ctx, job_id: str) -> Any:
    """The newest grid (else image) of a finished job, for the Result view."""
    if not job_id:
        return None
    arts = ctx.store.artifacts(job_id.split(":")[0])
    for kind in ("grid", "image"):
        paths = [a["path"] for a in arts if a["kind"] == kind and Path(a["path"]).is_file()]
        if paths:
            return paths[-1]
    return None


def build_ui(ctx) -> None:
    from core.ui.job_panel import JobPanel

    i18n = ctx.i18n
    d = GenerateParams.model_fields
    gr.Markdown(i18n("lab.ui.intro"))
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                run_id = gr.Textbox(label=i18n("lab.ui.run_id"), max_lines=1, scale=3, elem_id="lab-run-id")
                load_run = gr.Button(i18n("lab.ui.load_run"), scale=1, size="sm")
            run_status = gr.Markdown(elem_id="lab-run-status")
            choices = base_choices(ctx)
            base = gr.Dropdown(choices, value=choices[0] if choices else None, allow_custom_value=True,
                               label=i18n("lab.ui.base"), elem_id="lab-base")
            prompt = gr.Textbox(label=i18n("lab.ui.prompt"), lines=2, elem_id="lab-prompt")
            negative = gr.Textbox(label=i18n("lab.ui.negative"), lines=1, elem_id="lab-negative")
            with gr.Row():
                sampler = gr.Dropdown(list(SAMPLER_NAMES), value=d["sampler"].default, label=i18n("lab.ui.sampler"))
                steps = gr.Slider(1, 150, value=d["steps"].default, step=1, label=i18n("lab.ui.steps"),
                                  elem_id="lab-steps")
                cfg = gr.Slider(0, 30, value=d["cfg"].default, step=0.5, label=i18n("lab.ui.cfg"))
            with gr.Row():
                seed = gr.Number(d["seed"].default, precision=0, label=i18n("lab.ui.seed"), elem_id="lab-seed")
                width = gr.Number(d["width"].default, precision=0, minimum=64, maximum=2048, step=8,
                                  label=i18n("lab.ui.width"), elem_id="lab-width")
                height = gr.Number(d["height"].default, precision=0, minimum=64, maximum=2048, step=8,
                                   label=i18n("lab.ui.height"), elem_id="lab-height")
            with gr.Tabs():
                with gr.Tab(i18n("lab.ui.single_tab"), id="lab-single"):
                    loras = gr.Textbox(label=i18n("lab.ui.loras"), lines=3, elem_id="lab-loras")
                    batch = gr.Slider(1, 16, value=1, step=1, label=i18n("lab.ui.batch"))
                    gen_btn = gr.Button(i18n("lab.ui.generate"), variant="primary", elem_id="lab-generate")
                with gr.Tab(i18n("lab.ui.grid_tab"), id="lab-grid", elem_id="lab-grid-tab"):
                    grid_prompts = gr.Textbox(label=i18n("lab.ui.grid_prompts"), lines=2, elem_id="lab-grid-prompts")
                    grid_rows = gr.Textbox(label=i18n("lab.ui.grid_rows"), lines=4, elem_id="lab-grid-rows")
                    strengths = gr.Textbox("0, 0.5, 0.75, 1.0", label=i18n("lab.ui.grid_strengths"),
                                           elem_id="lab-grid-strengths")
                    grid_btn = gr.Button(i18n("lab.ui.grid_run"), variant="primary", elem_id="lab-grid-run")
            with gr.Accordion(i18n("lab.ui.available"), open=False):
                available = gr.Dataframe(headers=[ctx.t("lab.ui.col_file")], value=[[n] for n in lora_choices(ctx)],
                                         interactive=False)
                gr.Button(i18n("lab.ui.refresh"), size="sm").click(
                    lambda: [[n] for n in lora_choices(ctx)], outputs=available)
        with gr.Column(scale=2):
            panel = JobPanel(ctx, kind_prefix="lab.")
            result = gr.Image(label=i18n("lab.ui.result"), type="filepath", interactive=False,
                              elem_id="lab-result")

    common = [base, negative, sampler, steps, cfg, seed, width, height]

    def generate(*v):
        b, neg, smp, st, c, sd, w, h, text, n, p = v
        params = {**sampling(b, neg, smp, st, c, sd, w, h), "prompt": p or "", "loras": parse_loras(ctx, text),
                  "batch": int(n)}
        return panel.submit("lab.generate", params)

    def grid(*v):
        b, neg, smp, st, c, sd, w, h, ps, rows, strs = v
        params = {**sampling(b, neg, smp, st, c, sd, w, h), "prompts": [x for x in (ps or "").splitlines()],
                  "rows": [x.strip() for x in (rows or "").splitlines() if x.strip()],
                  "strengths": parse_strengths(ctx, strs)}
        return panel.submit("lab.grid", params)

    gen_btn.click(generate, inputs=common + [loras, batch, prompt], outputs=panel.job_id)
    grid_btn.click(grid, inputs=common + [grid_prompts, grid_rows, strengths], outputs=panel.job_id)
    panel.finished.change(lambda f: latest_result(ctx, f), inputs=panel.finished, outputs=result)

    fill_outputs = [run_id, base, prompt, loras, grid_prompts, grid_rows, run_status]

    def load(job_id: str, request: gr.Request = None):
        try:
            return fill_from_run(ctx, job_id)
        except StudioError as exc:
            raise gr.Error(exc.render(request_translator(ctx, request))) from exc

    load_run.click(load, inputs=run_id, outputs=fill_outputs)
    run_id.submit(load, inputs=run_id, outputs=fill_outputs)
    open_with.register_target(ctx, MODULE_ID, lambda job_id: fill_from_run(ctx, job_id), fill_outputs)


