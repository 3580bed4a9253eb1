"""The classifier tab: dataset (folder or uploads, class counts), model and training
settings, the shared JobPanel (live loss/accuracy, log, confusion matrix, Stop), saved
models (per-class report, ONNX export) and prediction (top-k with probabilities)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import gradio as gr

from core.errors import StudioError
from core.ui.job_panel import JobPanel
from core.ui.model_lists import follow_folders
from modules.image_classifier.params import PRESETS, TrainParams

CHART = ("train_loss", "val_loss", "train_acc", "val_acc")


def _err(ctx, exc: StudioError) -> gr.Error:
    return gr.Error(exc.render(ctx.t))


def scan_table(ctx, data_dir: str):
    from modules.image_classifier.data import scan_image_folder

    if not (data_dir or "").strip():
        raise gr.Error(ctx.t("clf.ui.need_folder"))
    try:
        scan = scan_image_folder(data_dir.strip())
    except StudioError as exc:
        raise _err(ctx, exc) from exc
    rows = [[c, n] for c, n in scan.counts.items()]
    total = sum(scan.counts.values())
    low = [c for c, n in scan.counts.items() if n < 10]
    text = ctx.t("clf.ui.scan_summary", classes=len(rows), images=total)
    if low:
        text += "\n\n" + ctx.t("clf.ui.scan_low", classes=", ".join(low))
    return rows, text


def add_uploads(ctx, files, class_name: str, dataset: str):
    from core.media import safe_name
    from modules.image_classifier.data import import_uploads

    if not files:
        raise gr.Error(ctx.t("clf.ui.no_files"))
    root = ctx.path("OUTPUTS_DIR") / "classifier_datasets" / safe_name(dataset or "dataset")
    try:
        copied = import_uploads([getattr(f, "name", f) for f in files], class_name or "", root)
    except StudioError as exc:
        raise _err(ctx, exc) from exc
    gr.Info(ctx.t("clf.ui.added", n=len(copied), cls=class_name, folder=str(root)))
    return str(root)


def model_choices(ctx) -> list[str]:
    from modules.image_classifier.backbone import list_classifiers

    return list_classifiers(ctx.path("CLASSIFIERS_DIR"))


def model_report(ctx, name: str):
    """(markdown summary, per-class rows, confusion matrix path) of a saved model."""
    from modules.image_classifier.backbone import model_folder, read_meta

    if not name:
        return "", [], None
    try:
        folder = model_folder(ctx, name)
    except StudioError as exc:
        raise _err(ctx, exc) from exc
    meta = read_meta(folder)
    rows = []
    metrics_file = folder / "metrics.json"
    if metrics_file.is_file():
        val = json.loads(metrics_file.read_text(encoding="utf-8")).get("val", {})
        rows = [[c, round(r["precision"], 3), round(r["recall"], 3), round(r["f1"], 3), r["support"]]
                for c, r in val.get("per_class", {}).items()]
    acc = meta.get("metrics", {}).get("val", {}).get("accuracy")
    text = ctx.t("clf.ui.model_summary", backbone=meta.get("backbone", "?"), classes=", ".join(meta["class_names"]),
                 epoch=meta.get("best_epoch", "?"), acc="-" if acc is None else f"{acc:.1%}",
                 onnx=ctx.t("clf.ui.yes") if (folder / "model.onnx").is_file() else ctx.t("clf.ui.no"),
                 date=time.strftime("%Y-%m-%d %H:%M", time.localtime(meta.get("created", 0))))
    png = folder / "confusion_matrix.png"
    return text, rows, str(png) if png.is_file() else None


def predict_files(ctx, name: str, files, top_k: int, backend: str):
    from core.media import load_image
    from modules.image_classifier.backbone import model_folder
    from modules.image_classifier.predict import Predictor

    if not name:
        raise gr.Error(ctx.t("clf.ui.pick_model"))
    if not files:
        raise gr.Error(ctx.t("clf.ui.no_files"))
    try:
        predictor = Predictor(model_folder(ctx, name), backend, ctx.models.device)
        paths = [Path(getattr(f, "name", f)) for f in files]
        images, ok_paths, rows = [], [], []
        for p in paths:
            try:
                images.append(load_image(p))
                ok_paths.append(p)
            except StudioError as exc:
                rows.append([p.name, "-", None, exc.render(ctx.t)])
        preds = predictor.predict(images, top_k=int(top_k)) if images else []
    except StudioError as exc:
        raise _err(ctx, exc) from exc
    for p, pred in zip(ok_paths, preds):
        rows.insert(0, [p.name, pred[0]["label"], round(pred[0]["probability"], 4),
                        ", ".join(f"{x['label']} {x['probability']:.1%}" for x in pred)])
    first = {x["label"]: x["probability"] for x in preds[0]} if preds else None
    return first, rows


def build_ui(ctx) -> None:
    i18n, t = ctx.i18n, ctx.t
    gr.Markdown(t("clf.ui.intro"))
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Group():
                data_dir = gr.Textbox(label=i18n("clf.ui.data_dir"),
                                      placeholder=t("core.ui.placeholder_folder"),
                                      info=t("clf.ui.data_dir_info"))
                scan_btn = gr.Button(i18n("clf.ui.scan"), size="sm")
                scan_md = gr.Markdown()
                counts = gr.Dataframe(headers=[t("clf.ui.class"), t("clf.ui.images")], interactive=False,
                                      visible=True, label=i18n("clf.ui.counts"))
            with gr.Accordion(i18n("clf.ui.uploads"), open=False):
                up_files = gr.File(file_count="multiple", file_types=["image"], label=i18n("clf.ui.upload_files"))
                with gr.Row():
                    up_class = gr.Textbox(label=i18n("clf.ui.upload_class"))
                    up_dataset = gr.Textbox(value="my_dataset", label=i18n("clf.ui.upload_dataset"))
                up_btn = gr.Button(i18n("clf.ui.upload_add"), size="sm")
            with gr.Group():
                with gr.Row():
                    name = gr.Textbox(label=i18n("clf.ui.name"), value="my_classifier", scale=2, min_width=160)
                    # wider than the name: "baseline - microsoft/resnet-18 (11.7M)" was cut (issue 18.8)
                    preset = gr.Dropdown([(f"{k} - {p.backbone} ({p.params_m}M)", k) for k, p in PRESETS.items()],
                                         value="baseline", label=i18n("clf.ui.preset"), scale=3, min_width=300)
                backbone = gr.Textbox(label=i18n("clf.ui.backbone"), info=t("clf.ui.backbone_info"))
                with gr.Row():
                    freeze = gr.Checkbox(False, label=i18n("clf.ui.freeze"), info=t("clf.ui.freeze_info"))
                    epochs = gr.Number(10, precision=0, minimum=1, label=i18n("clf.ui.epochs"))
                    image_size = gr.Number(None, precision=0, minimum=0, label=i18n("clf.ui.image_size"))
            with gr.Accordion(i18n("clf.ui.advanced"), open=False):
                with gr.Row():
                    batch = gr.Number(None, precision=0, minimum=0, label=i18n("clf.ui.batch"))
                    lr = gr.Number(None, minimum=0, label=i18n("clf.ui.lr"))
                    wd = gr.Number(0.05, minimum=0, label=i18n("clf.ui.wd"))
                    warmup = gr.Slider(0, 0.5, 0.05, step=0.01, label=i18n("clf.ui.warmup"))
                with gr.Row():
                    val_ratio = gr.Slider(0.05, 0.5, 0.2, step=0.05, label=i18n("clf.ui.val_ratio"))
                    test_ratio = gr.Slider(0, 0.5, 0.0, step=0.05, label=i18n("clf.ui.test_ratio"))
                    seed = gr.Number(42, precision=0, minimum=0, label=i18n("clf.ui.seed"))
                with gr.Row():
                    augment = gr.Checkbox(True, label=i18n("clf.ui.augment"))
                    hflip = gr.Checkbox(True, label=i18n("clf.ui.hflip"))
                    vflip = gr.Checkbox(False, label=i18n("clf.ui.vflip"))
                    crop_min = gr.Slider(0.1, 1.0, 0.6, step=0.05, label=i18n("clf.ui.crop_min"))
                    jitter = gr.Slider(0, 1.0, 0.2, step=0.05, label=i18n("clf.ui.jitter"))
                with gr.Row():
                    monitor = gr.Radio(["val_loss", "val_acc"], value="val_loss", label=i18n("clf.ui.monitor"))
                    patience = gr.Number(5, precision=0, minimum=0, label=i18n("clf.ui.patience"))
                    smoothing = gr.Slider(0, 0.3, 0.0, step=0.05, label=i18n("clf.ui.smoothing"))
                with gr.Row():
                    export_onnx = gr.Checkbox(False, label=i18n("clf.ui.export_onnx"))
                    overwrite = gr.Checkbox(False, label=i18n("clf.ui.overwrite"))
            with gr.Row():
                train_btn = gr.Button(i18n("clf.ui.train"), variant="primary")
                resume_btn = gr.Button(i18n("clf.ui.resume"))
        with gr.Column(scale=2):
            panel = JobPanel(ctx, kind_prefix="clf.", metrics=CHART)

    with gr.Accordion(i18n("clf.ui.models"), open=True):
        with gr.Row():
            model = gr.Dropdown(choices=model_choices(ctx), label=i18n("clf.ui.model"), scale=3)
            refresh = gr.Button(i18n("clf.ui.refresh"), size="sm", scale=0)
            export_btn = gr.Button(i18n("clf.ui.export"), size="sm", scale=0)
        with gr.Row():
            with gr.Column():
                summary = gr.Markdown()
                metric_cols = [t(f"clf.ui.col_{c}") for c in ("precision", "recall", "f1", "support")]
                per_class = gr.Dataframe(headers=[t("clf.ui.class"), *metric_cols],
                                         interactive=False, label=i18n("clf.ui.per_class"))
            cm_img = gr.Image(label=i18n("clf.ui.confusion"), type="filepath", interactive=False, height=360)
        with gr.Row():
            with gr.Column():
                pred_files = gr.File(file_count="multiple", file_types=["image"], label=i18n("clf.ui.predict_files"))
                with gr.Row():
                    top_k = gr.Slider(1, 20, 5, step=1, label=i18n("clf.ui.top_k"))
                    backend = gr.Radio(["auto", "torch", "onnx"], value="auto", label=i18n("clf.ui.backend"))
                pred_btn = gr.Button(i18n("clf.ui.predict"), variant="primary")
            with gr.Column():
                label = gr.Label(label=i18n("clf.ui.first_result"))
                pred_cols = [t("clf.ui.file"), t("clf.ui.col_top1"), t("clf.ui.col_p"), t("clf.ui.col_topk")]
                pred_table = gr.Dataframe(headers=pred_cols, interactive=False,
                                          label=i18n("clf.ui.results"))

    fields = [data_dir, name, preset, backbone, freeze, epochs, image_size, batch, lr, wd, warmup, val_ratio,
              test_ratio, seed, augment, hflip, vflip, crop_min, jitter, monitor, patience, smoothing,
              export_onnx, overwrite]
    keys = ["data_dir", "name", "preset", "backbone", "freeze_backbone", "epochs", "image_size", "batch_size", "lr",
            "weight_decay", "warmup_ratio", "val_ratio", "test_ratio", "seed", "augment", "hflip", "vflip",
            "crop_scale_min", "color_jitter", "monitor", "patience", "label_smoothing", "export_onnx", "overwrite"]

    def params_of(values, resume: bool) -> dict:
        p = {k: v for k, v in zip(keys, values) if v is not None and v != ""}
        for k in ("epochs", "image_size", "batch_size", "seed", "patience"):
            if k in p:
                p[k] = int(p[k])
        # An empty number box reaches us as 0 from the browser: 0 means "the preset's value".
        for k in ("lr", "image_size", "batch_size"):
            if not p.get(k):
                p.pop(k, None)
        p["data_dir"] = str(p.get("data_dir", "")).strip()
        p["resume"] = resume
        if resume:
            p["overwrite"] = False
        return p

    train_btn.click(lambda *v: panel.submit("clf.train", params_of(v, False)), inputs=fields, outputs=panel.job_id)
    resume_btn.click(lambda *v: panel.submit("clf.train", params_of(v, True)), inputs=fields, outputs=panel.job_id)
    scan_btn.click(lambda d: scan_table(ctx, d), inputs=data_dir, outputs=[counts, scan_md])
    up_btn.click(lambda f, c, d: add_uploads(ctx, f, c, d), inputs=[up_files, up_class, up_dataset],
                 outputs=data_dir).then(lambda d: scan_table(ctx, d), inputs=data_dir, outputs=[counts, scan_md])
    follow_folders(refresh, [(model, lambda: model_choices(ctx))])  # Refresh and page load rescan
    model.change(lambda m: model_report(ctx, m), inputs=model, outputs=[summary, per_class, cm_img])
    export_btn.click(lambda m: panel.submit("clf.export_onnx", {"model": m or ""}), inputs=model,
                     outputs=panel.job_id)
    pred_btn.click(lambda m, f, k, b: predict_files(ctx, m, f, k, b), inputs=[model, pred_files, top_k, backend],
                   outputs=[label, pred_table])
    assert len(TrainParams.model_fields.keys() & set(keys)) == len(keys)  # every control maps to a field
