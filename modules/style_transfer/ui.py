"""The Style transfer tab: four forms (Gatys, apply a fast network, train one, export to
ONNX) over one shared JobPanel. Forms only build params dicts and submit them; all the
work is in the job kinds, so what the UI does, the CLI and REST do identically.
"""
from __future__ import annotations

import gradio as gr

from core.ui.job_panel import JobPanel
from core.ui.model_lists import follow_folders
from modules.style_transfer.gatys import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from modules.style_transfer.resources import list_networks


def _csv(text: str | None) -> list[str] | None:
    items = [t.strip() for t in (text or "").replace(";", ",").split(",") if t.strip()]
    return items or None


def _paths(files) -> list[str]:
    if not files:
        return []
    files = files if isinstance(files, list) else [files]
    return [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]


def build_ui(ctx) -> None:
    i18n = ctx.i18n
    gr.Markdown(i18n("style.ui.intro"))

    def networks_update(value=None):
        names = list_networks(ctx)
        return gr.update(choices=names, value=value if value in names else (names[0] if names else None))

    with gr.Tabs():
        with gr.Tab(i18n("style.ui.tab_gatys"), elem_id="style-gatys"):
            with gr.Row():
                g_content = gr.Image(type="filepath", label=i18n("style.ui.content"), height=260)
                g_styles = gr.File(file_count="multiple", file_types=["image"], label=i18n("style.ui.styles"))
            g_weights = gr.Textbox(label=i18n("style.ui.style_weights"), placeholder="1, 0.5")
            with gr.Row():
                g_size = gr.Slider(64, 2048, value=512, step=32, label=i18n("style.ui.size"))
                g_steps = gr.Slider(1, 2000, value=300, step=1, label=i18n("style.ui.steps"))
                g_scales = gr.Slider(1, 4, value=1, step=1, label=i18n("style.ui.scales"))
            with gr.Row():
                g_opt = gr.Radio(["lbfgs", "adam"], value="lbfgs", label=i18n("style.ui.optimizer"))
                g_colors = gr.Checkbox(False, label=i18n("style.ui.original_colors"))
                g_space = gr.Radio(["ycbcr", "yiq"], value="ycbcr", label=i18n("style.ui.color_space"))
            with gr.Accordion(i18n("style.ui.advanced"), open=False):
                with gr.Row():
                    g_cw = gr.Number(1.0, label=i18n("style.ui.content_weight"))
                    g_sw = gr.Number(1e6, label=i18n("style.ui.style_weight"))
                    g_tv = gr.Number(1.0, label=i18n("style.ui.tv_weight"))
                    g_lr = gr.Number(None, label=i18n("style.ui.lr"))
                with gr.Row():
                    g_cl = gr.Textbox(", ".join(DEFAULT_CONTENT_LAYERS), label=i18n("style.ui.content_layers"))
                    g_sl = gr.Textbox(", ".join(DEFAULT_STYLE_LAYERS), label=i18n("style.ui.style_layers"))
                with gr.Row():
                    g_sscale = gr.Slider(0.25, 2.0, value=1.0, step=0.05, label=i18n("style.ui.style_scale"))
                    g_init = gr.Radio(["content", "noise"], value="content", label=i18n("style.ui.init"))
                    g_pool = gr.Radio(["max", "avg"], value="max", label=i18n("style.ui.pool"))
                    g_prev = gr.Number(50, precision=0, label=i18n("style.ui.preview_every"))
                    g_seed = gr.Number(0, precision=0, label=i18n("style.ui.seed"))
            g_run = gr.Button(i18n("style.ui.run_gatys"), variant="primary")

        with gr.Tab(i18n("style.ui.tab_apply"), elem_id="style-apply"):
            with gr.Row():
                a_net = gr.Dropdown(list_networks(ctx), label=i18n("style.ui.network"), allow_custom_value=True)
                a_refresh = gr.Button(i18n("style.ui.refresh"), size="sm")
            a_files = gr.File(file_count="multiple", file_types=["image", "video"], label=i18n("style.ui.inputs"))
            a_folder = gr.Textbox(label=i18n("style.ui.input_folder"))
            with gr.Row():
                a_max = gr.Number(None, precision=0, label=i18n("style.ui.max_side"))
                a_strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label=i18n("style.ui.strength"))
                a_colors = gr.Checkbox(False, label=i18n("style.ui.original_colors"))
                a_fmt = gr.Radio(["png", "jpg", "webp"], value="png", label=i18n("style.ui.image_format"))
                a_codec = gr.Radio(["h264", "hevc", "vp9"], value="h264", label=i18n("style.ui.codec"))
            a_run = gr.Button(i18n("style.ui.run_apply"), variant="primary")

        with gr.Tab(i18n("style.ui.tab_train"), elem_id="style-train"):
            gr.Markdown(i18n("style.ui.train_intro"))
            with gr.Row():
                t_style = gr.Image(type="filepath", label=i18n("style.ui.style_image"), height=220)
                with gr.Column():
                    t_dir = gr.Textbox(label=i18n("style.ui.content_dir"))
                    t_name = gr.Textbox(label=i18n("style.ui.network_name"), value="my_style")
                    t_init = gr.Dropdown(list_networks(ctx), value=None, label=i18n("style.ui.init_from"))
            with gr.Row():
                t_steps = gr.Number(2000, precision=0, label=i18n("style.ui.steps"))
                t_size = gr.Slider(64, 1024, value=256, step=32, label=i18n("style.ui.image_size"))
                t_batch = gr.Slider(1, 16, value=4, step=1, label=i18n("style.ui.batch_size"))
                t_lr = gr.Number(1e-3, label=i18n("style.ui.lr"))
            with gr.Row():
                t_cw = gr.Number(1e5, label=i18n("style.ui.content_weight"))
                t_sw = gr.Number(1e10, label=i18n("style.ui.style_weight"))
                t_prev = gr.Number(100, precision=0, label=i18n("style.ui.preview_every"))
                t_ckpt = gr.Number(500, precision=0, label=i18n("style.ui.checkpoint_every"))
            t_run = gr.Button(i18n("style.ui.run_train"), variant="primary")

        with gr.Tab(i18n("style.ui.tab_export"), elem_id="style-export"):
            gr.Markdown(i18n("style.ui.export_intro"))
            with gr.Row():
                e_net = gr.Dropdown(list_networks(ctx), label=i18n("style.ui.network"), allow_custom_value=True)
                e_opset = gr.Slider(11, 21, value=17, step=1, label=i18n("style.ui.opset"))
                e_size = gr.Slider(64, 1024, value=256, step=32, label=i18n("style.ui.check_size"))
                e_bench = gr.Checkbox(True, label=i18n("style.ui.benchmark"))
            e_run = gr.Button(i18n("style.ui.run_export"), variant="primary")

    panel = JobPanel(ctx, kind_prefix="style.", metrics=("loss", "content", "style"))

    def submit_gatys(content, styles, weights, size, steps, scales, opt, colors, space, cw, sw, tv, lr, cl, sl,
                     sscale, init, pool, prev, seed):
        return panel.submit("style.gatys", {
            "content": content or "", "styles": _paths(styles), "style_weights": _csv(weights),
            "size": int(size), "steps": int(steps), "scales": int(scales), "optimizer": opt,
            "original_colors": bool(colors), "color_space": space, "content_weight": cw, "style_weight": sw,
            "tv_weight": tv, "lr": lr or None, "content_layers": _csv(cl) or list(DEFAULT_CONTENT_LAYERS),
            "style_layers": _csv(sl) or list(DEFAULT_STYLE_LAYERS), "style_scale": sscale, "init": init,
            "pool": pool, "preview_every": int(prev or 0), "seed": int(seed or 0)})

    g_run.click(submit_gatys, inputs=[g_content, g_styles, g_weights, g_size, g_steps, g_scales, g_opt, g_colors,
                                      g_space, g_cw, g_sw, g_tv, g_lr, g_cl, g_sl, g_sscale, g_init, g_pool,
                                      g_prev, g_seed], outputs=panel.job_id)

    def submit_apply(net, files, folder, max_side, strength, colors, fmt, codec):
        inputs = _paths(files) + ([folder.strip()] if folder and folder.strip() else [])
        return panel.submit("style.fast_apply", {
            "model": net or "", "inputs": inputs, "max_side": int(max_side) if max_side else None,
            "strength": strength, "original_colors": bool(colors), "image_format": fmt, "codec": codec})

    a_run.click(submit_apply, inputs=[a_net, a_files, a_folder, a_max, a_strength, a_colors, a_fmt, a_codec],
                outputs=panel.job_id)

    def submit_train(style, folder, name, init, steps, size, batch, lr, cw, sw, prev, ckpt):
        return panel.submit("style.fast_train", {
            "style": style or "", "content_dir": (folder or "").strip(), "name": (name or "").strip(),
            "init_from": init or None, "steps": int(steps or 0), "image_size": int(size), "batch_size": int(batch),
            "lr": lr, "content_weight": cw, "style_weight": sw, "preview_every": int(prev or 0),
            "checkpoint_every": int(ckpt or 0)})

    t_run.click(submit_train, inputs=[t_style, t_dir, t_name, t_init, t_steps, t_size, t_batch, t_lr, t_cw, t_sw,
                                      t_prev, t_ckpt], outputs=panel.job_id)
    e_run.click(lambda net, opset, size, bench: panel.submit("style.export_onnx", {
        "model": net or "", "opset": int(opset), "check_size": int(size), "benchmark": bool(bench)}),
        inputs=[e_net, e_opset, e_size, e_bench], outputs=panel.job_id)
    # Refresh (and a page load) rescans the networks folder for every list of the tab
    follow_folders(a_refresh, [(a_net, lambda: list_networks(ctx)), (t_init, lambda: list_networks(ctx), True),
                               (e_net, lambda: list_networks(ctx))])
    # a training that just finished adds a network: keep the lists current
    panel.job_id.change(lambda a, e: (networks_update(a), networks_update(e)), inputs=[a_net, e_net],
                        outputs=[a_net, e_net], show_progress="hidden")
