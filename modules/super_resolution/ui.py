"""The Super-resolution tab: model picker, inputs (images / folder / video), settings,
the shared JobPanel, and a before/after slider filled when a job finishes.

Only builds components and submits `sr.upscale` jobs; all work is in the engine.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from core.errors import StudioError
from core.ui.job_panel import JobPanel
from core.ui.model_lists import follow_folders
from modules.super_resolution.batch import list_models, resolve_model

COMPARE_MAX_SIDE = 1600  # the slider shows a screen-sized view, not a 16k-pixel PNG


def _model_info(ctx, name: str | None) -> str:
    if not name:
        return ""
    from modules.super_resolution.detect import load_model

    try:
        _model, spec = load_model(resolve_model(name, ctx.path("UPSCALERS_DIR")))
    except StudioError as exc:
        return "⚠️ " + exc.render(ctx.t)
    return f"**{name}**: {spec.describe()}"


def _pair_images(src: str, dst: str):
    """(before, after) as PIL images of one size; before enlarged with nearest (true pixels)."""
    from PIL import Image

    from modules.super_resolution.files import read_image

    def to_pil(path: str) -> Image.Image:
        a = read_image(Path(path))
        if a.dtype != "uint8":
            a = (a.astype("float32") / (257.0 if a.dtype == "uint16" else 1 / 255.0)).clip(0, 255).astype("uint8")
        return Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)

    after = to_pil(dst)
    after.thumbnail((COMPARE_MAX_SIDE, COMPARE_MAX_SIDE), Image.LANCZOS)
    before = to_pil(src).resize(after.size, Image.NEAREST)
    return before.convert("RGBA"), after.convert("RGBA")


def build_ui(ctx) -> None:
    i18n, t = ctx.i18n, ctx.t
    folder = ctx.path("UPSCALERS_DIR")
    gr.Markdown(t("sr.ui.intro", folder=folder))
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                names = list_models(folder)
                model = gr.Dropdown(names, value=names[0] if names else None, label=i18n("sr.ui.model"),
                                    scale=4, elem_id="sr-model")
                refresh = gr.Button(i18n("sr.ui.refresh"), size="sm", scale=1)
            info = gr.Markdown()
            source = gr.Radio([(i18n("sr.ui.source.files"), "files"), (i18n("sr.ui.source.folder"), "folder"),
                               (i18n("sr.ui.source.video"), "video")], value="files", label=i18n("sr.ui.source"))
            files = gr.File(label=i18n("sr.ui.files"), file_count="multiple", file_types=["image"], type="filepath")
            folder_in = gr.Textbox(label=i18n("sr.ui.folder"), visible=False, max_lines=1)
            video = gr.Video(label=i18n("sr.ui.video"), visible=False, sources=["upload"])
            output_dir = gr.Textbox(label=i18n("sr.ui.output_dir"), max_lines=1)
            outscale = gr.Number(0, minimum=0, maximum=16, step=0.5, label=i18n("sr.ui.outscale"))
            with gr.Accordion(i18n("sr.ui.settings"), open=False):
                with gr.Row():
                    tile = gr.Number(0, minimum=0, maximum=8192, step=32, precision=0, label=i18n("sr.ui.tile"))
                    overlap = gr.Number(8, minimum=0, maximum=256, precision=0, label=i18n("sr.ui.overlap"))
                    pad = gr.Number(16, minimum=0, maximum=256, precision=0, label=i18n("sr.ui.pad"))
                with gr.Row():
                    precision = gr.Dropdown(["auto", "fp32", "fp16", "bf16"], value="auto",
                                            label=i18n("sr.ui.precision"))
                    alpha = gr.Dropdown(["model", "lanczos"], value="model", label=i18n("sr.ui.alpha"))
                    fmt = gr.Dropdown(["same", "png", "jpg", "webp", "tif"], value="same", label=i18n("sr.ui.format"))
                with gr.Row():
                    suffix = gr.Textbox("", label=i18n("sr.ui.suffix"), max_lines=1)
                    skip = gr.Checkbox(False, label=i18n("sr.ui.skip_existing"))
                with gr.Row():
                    codec = gr.Dropdown(["h264", "hevc", "vp9"], value="h264", label=i18n("sr.ui.codec"))
                    crf = gr.Slider(0, 51, value=18, step=1, label=i18n("sr.ui.crf"))
            start = gr.Button(i18n("sr.ui.start"), variant="primary", elem_id="sr-start")
        with gr.Column(scale=4):
            compare = gr.ImageSlider(label=i18n("sr.ui.compare"), type="pil", interactive=False, max_height=640)
            pair_pick = gr.Dropdown([], label=i18n("sr.ui.compare_pick"), visible=False)
            panel = JobPanel(ctx, kind_prefix="sr.")
    shown = gr.State("")  # job whose comparison is loaded

    follow_folders(refresh, [(model, lambda: list_models(folder))])  # Refresh and page load rescan
    model.change(lambda n: _model_info(ctx, n), inputs=model, outputs=info)
    source.change(lambda s: (gr.update(visible=s == "files"), gr.update(visible=s == "folder"),
                             gr.update(visible=s == "video")), inputs=source, outputs=[files, folder_in, video])

    def submit(model_v, source_v, files_v, folder_v, video_v, out_v, outscale_v, tile_v, overlap_v, pad_v,
               precision_v, alpha_v, fmt_v, suffix_v, skip_v, codec_v, crf_v):
        if not model_v:
            raise gr.Error(t("sr.ui.no_model"))
        inputs = {"files": [str(f) for f in (files_v or [])], "folder": [folder_v.strip()] if folder_v else [],
                  "video": [str(video_v)] if video_v else []}[source_v]
        if not inputs:
            raise gr.Error(t("sr.ui.no_input"))
        params = {"model": model_v, "inputs": inputs, "output_dir": (out_v or "").strip() or None,
                  "outscale": float(outscale_v) if outscale_v else None, "tile": int(tile_v or 0),
                  "overlap": int(overlap_v or 0), "pad": int(pad_v or 0), "precision": precision_v,
                  "alpha": alpha_v, "format": fmt_v, "suffix": suffix_v or "", "skip_existing": bool(skip_v),
                  "video_codec": codec_v, "crf": int(crf_v)}
        return panel.submit("sr.upscale", params)

    start.click(submit, inputs=[model, source, files, folder_in, video, output_dir, outscale, tile, overlap, pad,
                                precision, alpha, fmt, suffix, skip, codec, crf], outputs=panel.job_id)

    def load_pairs(job_id, loaded):
        """When the followed job is over, offer its (source, result) pairs in the slider."""
        row = ctx.store.get_job(job_id) if job_id else None
        if row is None or row["status"] in ("pending", "running") or job_id == loaded:
            return gr.skip(), gr.skip(), gr.skip()
        pairs = [p for p in ((row.get("result") or {}).get("pairs") or []) if Path(p[1]).is_file()]
        if not pairs:
            return None, gr.update(choices=[], visible=False), job_id
        choices = [(Path(src).name, str(i)) for i, (src, _dst) in enumerate(pairs)]
        try:
            first = _pair_images(*pairs[0])
        except StudioError:
            first = None
        return first, gr.update(choices=choices, value="0", visible=len(pairs) > 1), job_id

    panel.timer.tick(load_pairs, inputs=[panel.job_id, shown], outputs=[compare, pair_pick, shown],
                     show_progress="hidden")

    def pick(job_id, idx):
        row = ctx.store.get_job(job_id) if job_id else None
        pairs = ((row or {}).get("result") or {}).get("pairs") or []
        if idx is None or not pairs or int(idx) >= len(pairs):
            return gr.skip()
        return _pair_images(*pairs[int(idx)])

    pair_pick.input(pick, inputs=[panel.job_id, pair_pick], outputs=compare)
