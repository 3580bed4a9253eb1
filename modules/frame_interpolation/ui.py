"""The Frame interpolation tab: model and flow scale, a Video form and a Two-images form,
and the shared JobPanel (progress in frames with ETA, frames/s chart, previews, Stop).

Only builds components and submits ``rife.interpolate_video`` / ``rife.interpolate_pair``
jobs; all the work is in the engine (see jobs.py).
"""
from __future__ import annotations

import gradio as gr

from core.errors import StudioError
from core.ui.job_panel import JobPanel
from core.ui.model_lists import follow_folders
from modules.frame_interpolation.weights import list_models, resolve_model

MODES = ("multiply", "fps", "slowmo")


def _model_info(ctx, name: str | None) -> str:
    if not name:
        return ctx.t("rife.no_models", folder=ctx.path("RIFE_DIR"))
    from modules.frame_interpolation.weights import load_ifnet

    try:
        cfg = load_ifnet(resolve_model(name, ctx.path("RIFE_DIR"))).config
    except StudioError as exc:
        return "⚠️ " + exc.render(ctx.t)
    return ctx.t("rife.ui.model_info", name=name, variant=cfg.variant, blocks=len(cfg.block_channels))


def _path(upload, typed: str) -> str:
    """An uploaded file wins; else the path typed (local studio: files can stay where they are)."""
    if upload:
        return upload if isinstance(upload, str) else getattr(upload, "name", str(upload))
    return (typed or "").strip()


def build_ui(ctx) -> None:
    i18n, t = ctx.i18n, ctx.t
    folder = ctx.path("RIFE_DIR")
    gr.Markdown(t("rife.ui.intro", folder=folder))
    names = list_models(folder)
    with gr.Row():
        model = gr.Dropdown(names, value=names[-1] if names else None, label=i18n("rife.ui.model"), scale=4,
                            elem_id="rife-model")
        refresh = gr.Button(i18n("rife.ui.refresh"), size="sm", scale=1)
        scale = gr.Dropdown([0.25, 0.5, 1.0, 2.0, 4.0], value=1.0, label=i18n("rife.ui.scale"), scale=2)
        precision = gr.Radio(["auto", "fp16", "fp32"], value="auto", label=i18n("rife.ui.precision"), scale=2)
    info = gr.Markdown(_model_info(ctx, model.value))
    follow_folders(refresh, [(model, lambda: list_models(folder))])  # Refresh and page load rescan
    model.change(lambda n: _model_info(ctx, n), inputs=model, outputs=info)

    with gr.Row():
        with gr.Column(scale=3):
            with gr.Tabs():
                with gr.Tab(i18n("rife.ui.tab_video")):
                    video_in = gr.Video(label=i18n("rife.ui.video"), sources=["upload"])
                    video_path = gr.Textbox(label=i18n("rife.ui.video_path"), max_lines=1)
                    mode = gr.Radio([(t(f"rife.ui.mode.{m}"), m) for m in MODES], value="multiply",
                                    label=i18n("rife.ui.mode"))
                    multi = gr.Slider(2, 16, value=2, step=1, label=i18n("rife.ui.multiplier"))
                    fps = gr.Textbox("60", label=i18n("rife.ui.target_fps"), max_lines=1, visible=False)
                    slow = gr.Slider(1, 16, value=4, step=0.5, label=i18n("rife.ui.slowmo"), visible=False)
                    with gr.Accordion(i18n("rife.ui.scenes"), open=False):
                        scene = gr.Radio([(t(f"rife.ui.scene.{m}"), m) for m in ("off", "hist", "ssim")],
                                         value="hist", label=i18n("rife.ui.scene_detect"))
                        threshold = gr.Slider(0.05, 0.95, value=0.3, step=0.05, label=i18n("rife.ui.threshold"))
                        dedupe = gr.Checkbox(False, label=i18n("rife.ui.dedupe"))
                    with gr.Accordion(i18n("rife.ui.output"), open=False):
                        out_path = gr.Textbox(label=i18n("rife.ui.output_path"), max_lines=1)
                        with gr.Row():
                            codec = gr.Dropdown(["h264", "hevc", "vp9"], value="h264", label=i18n("rife.ui.codec"))
                            crf = gr.Slider(0, 51, value=18, step=1, label=i18n("rife.ui.crf"))
                            preset = gr.Dropdown(["ultrafast", "veryfast", "fast", "medium", "slow"], value="medium",
                                                 label=i18n("rife.ui.preset"))
                        audio = gr.Checkbox(True, label=i18n("rife.ui.keep_audio"))
                    start_video = gr.Button(i18n("rife.ui.start_video"), variant="primary", elem_id="rife-start-video")
                with gr.Tab(i18n("rife.ui.tab_pair")):
                    with gr.Row():
                        img_a = gr.Image(type="filepath", label=i18n("rife.ui.image_a"), elem_id="rife-image-a")
                        img_b = gr.Image(type="filepath", label=i18n("rife.ui.image_b"), elem_id="rife-image-b")
                    timestep = gr.Slider(0.01, 0.99, value=0.5, step=0.01, label=i18n("rife.ui.timestep"))
                    with gr.Row():
                        frames = gr.Slider(1, 63, value=7, step=1, label=i18n("rife.ui.frames"))
                        anim_fps = gr.Slider(1, 60, value=12, step=1, label=i18n("rife.ui.anim_fps"))
                    with gr.Row():
                        boomerang = gr.Checkbox(True, label=i18n("rife.ui.boomerang"))
                        gif = gr.Checkbox(True, label="GIF")
                        mp4 = gr.Checkbox(True, label="MP4")
                    start_pair = gr.Button(i18n("rife.ui.start_pair"), variant="primary", elem_id="rife-start-pair")
        with gr.Column(scale=2):
            panel = JobPanel(ctx, kind_prefix="rife.", metrics=("fps",))

    def show_mode(m: str):
        return gr.update(visible=m == "multiply"), gr.update(visible=m == "fps"), gr.update(visible=m == "slowmo")

    mode.change(show_mode, inputs=mode, outputs=[multi, fps, slow])

    def submit_video(upload, typed, m, mu, f, sl, sc, th, dd, op, cd, q, pr, au, mdl, scl, prec):
        params = dict(input=_path(upload, typed), output=(op or "").strip(), mode=m, multiplier=int(mu),
                      target_fps=f, slowmo=float(sl), scene_detect=sc, scene_threshold=float(th), dedupe=bool(dd),
                      codec=cd, crf=int(q), preset=pr, keep_audio=bool(au), model=mdl or "", scale=float(scl),
                      precision=prec)
        if not params["input"]:
            raise gr.Error(ctx.t("rife.ui.need_video"))
        return panel.submit("rife.interpolate_video", params)

    start_video.click(submit_video, inputs=[video_in, video_path, mode, multi, fps, slow, scene, threshold, dedupe,
                                            out_path, codec, crf, preset, audio, model, scale, precision],
                      outputs=panel.job_id)

    def submit_pair(a, b, ts, n, afps, boom, g, m4, mdl, scl, prec):
        if not a or not b:
            raise gr.Error(ctx.t("rife.ui.need_images"))
        return panel.submit("rife.interpolate_pair", dict(
            image_a=a, image_b=b, timestep=float(ts), frames=int(n), fps=float(afps), boomerang=bool(boom),
            gif=bool(g), mp4=bool(m4), model=mdl or "", scale=float(scl), precision=prec))

    start_pair.click(submit_pair, inputs=[img_a, img_b, timestep, frames, anim_fps, boomerang, gif, mp4, model, scale,
                                          precision], outputs=panel.job_id)
