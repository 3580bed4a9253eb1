"""`clf.train`: transfer learning of an image classifier, stoppable and resumable.

Steps: scan the ImageFolder -> stratified split (seeded, saved as split.json) -> decode
every image once into a memory-mapped cache (unreadable files listed and skipped) ->
pretrained backbone with a new head -> AdamW + cosine schedule with warmup, batched
tensor augmentations -> validation each epoch, best checkpoint saved as a complete model
folder, early stopping -> per-class report and confusion matrix of the best model.

Stop is checked at every step: the best checkpoint is kept (or, before the first
validation, the current weights are saved) and the report is still written. The
resumable state (`state/last.pt`: weights, optimiser, schedule, early-stopping counters)
is written after every epoch; `resume=True` continues from it with the saved split.
"""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import StudioError
from core.paths import name_inside
from core.models import load_state_dict_file
from core.tracking import Tracker
from modules.image_classifier.augment import train_batch
from modules.image_classifier.backbone import (freeze_backbone, load_backbone, preprocessing_config, read_meta,
                                               save_classifier, write_json)
from modules.image_classifier.data import ImageCache, load_split, save_split, scan_image_folder, stratified_split
from modules.image_classifier.params import TrainParams
from modules.image_classifier.report import evaluate, format_report, write_reports

MAX_LISTED_BAD = 20  # unreadable files named one by one in the log; all are in bad_images.txt


def _output_folder(ctx, params: TrainParams) -> Path:
    out = name_inside(ctx.path("CLASSIFIERS_DIR"), params.name, "name")
    if params.resume:
        if not (out / "state" / "last.pt").is_file():
            raise StudioError("clf.nothing_to_resume", name=params.name)
    elif out.exists() and any(out.iterdir()):
        if not params.overwrite:
            raise StudioError("clf.exists", name=params.name)
        shutil.rmtree(out)  # the user asked to replace this model
    out.mkdir(parents=True, exist_ok=True)
    return out


def _optimizer(model, lr: float, weight_decay: float) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:  # no weight decay on biases and norm scales (standard AdamW practice)
            (no_decay if p.ndim <= 1 else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def _cosine_with_warmup(opt, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _improved(monitor: str, value: float, best: float | None) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best - 1e-6 if monitor == "val_loss" else value > best + 1e-6


def run_train(job, params: TrainParams, ctx) -> dict:
    try:
        return _run_train(job, params, ctx)
    finally:  # the decoded-image cache is scratch: never leave gigabytes behind
        shutil.rmtree(job.workdir / "cache", ignore_errors=True)


def _run_train(job, params: TrainParams, ctx) -> dict:
    t = job.t
    out = _output_folder(ctx, params)
    preset = params.preset_obj()
    from core.folders import job_reporter

    scan = scan_image_folder(params.data_dir, on_skip=job_reporter(job))
    job.info(t("clf.log.classes", n=len(scan.class_names),
               counts=", ".join(f"{c}: {n}" for c, n in scan.counts.items())))

    # -- model and preprocessing -------------------------------------------------------
    backbone_ref = params.backbone.strip() or preset.backbone
    model, pre_info = load_backbone(backbone_ref, scan.class_names, ctx)
    if pre_info["fixed_size"] and params.image_size and params.image_size != pre_info["native_size"]:
        raise StudioError("clf.fixed_size", backbone=backbone_ref, size=pre_info["native_size"])
    size = params.image_size or (pre_info["native_size"] if pre_info["fixed_size"] else preset.image_size)
    pre = preprocessing_config(size, pre_info["mean"], pre_info["std"])
    trainable = freeze_backbone(model, params.freeze_backbone)
    total_params = sum(p.numel() for p in model.parameters())
    job.info(t("clf.log.model", backbone=backbone_ref, params=f"{total_params / 1e6:.2f}M",
               trainable=f"{trainable / 1e6:.2f}M", size=size))

    # -- decode once into the cache ------------------------------------------------------
    cache = ImageCache(job.workdir / "cache" / "images.npy", len(scan.files), pre["resize"])
    bad = cache.fill(scan.files, job.should_stop, lambda d, n: job.progress(d, n, t("clf.progress.decode")),
                     t=t)
    if bad:
        (out / "bad_images.txt").write_text("\n".join(f"{p}\t{r}" for p, r in bad), encoding="utf-8")
        job.warning(t("clf.log.bad_images", n=len(bad), file=str(out / "bad_images.txt")))
        for p, reason in bad[:MAX_LISTED_BAD]:
            job.warning(f"  {p}: {reason}")
    if job.should_stop():
        return {"stopped": True, "model_dir": None}
    # -- split of the readable images (saved with the run, reused on resume) ------------
    split_file = out / "split.json"
    if params.resume and split_file.is_file():
        split, missing = load_split(split_file, scan)
        if missing:
            job.warning(t("clf.log.split_missing", n=len(missing), first=missing[0]))
    else:
        readable = np.flatnonzero(cache.ok)
        sub = stratified_split([scan.labels[i] for i in readable], params.val_ratio, params.test_ratio, params.seed)
        split = {s: [int(readable[i]) for i in idx] for s, idx in sub.items()}
        save_split(split_file, scan, split, params.seed)
    job.artifact(split_file, "split")

    split = {s: [i for i in idx if cache.ok[i]] for s, idx in split.items()}
    labels = np.asarray(scan.labels, dtype=np.int64)
    for s in ("train", "val"):
        if not split[s]:
            raise StudioError("clf.too_few_images", split=t(f"clf.split.{s}"))
    job.info(t("clf.log.split", train=len(split["train"]), val=len(split["val"]), test=len(split["test"]),
               seed=params.seed))

    device = ctx.models.device
    if device != "cpu":
        ctx.models.unload_others(job.id)  # what other tabs keep cached leaves the GPU first
    amp = ctx.models.dtype() if device.startswith("cuda") else None
    amp = amp if amp == torch.bfloat16 else None  # fp16 would need a grad scaler; bf16 or fp32 only
    model.to(device)
    batch = params.batch_size or preset.batch_size
    lr = params.lr or (preset.lr_head if params.freeze_backbone else preset.lr_full)
    steps_per_epoch = math.ceil(len(split["train"]) / batch)
    total_steps = steps_per_epoch * params.epochs
    opt = _optimizer(model, lr, params.weight_decay)
    sched = _cosine_with_warmup(opt, int(total_steps * params.warmup_ratio), total_steps)
    meta = {"class_names": scan.class_names, "preprocessing": pre, "backbone": backbone_ref,
            "preset": params.preset, "seed": params.seed, "data_dir": str(scan.root), "job_id": job.id,
            "params": params.model_dump(mode="json"), "counts": scan.counts,
            "split_sizes": {s: len(v) for s, v in split.items()}, "created": time.time()}

    # -- resume ------------------------------------------------------------------------------
    epoch0, step, best, best_epoch, bad_epochs = 0, 0, None, -1, 0
    if params.resume:
        state = load_state_dict_file(out / "state" / "last.pt")
        model.load_state_dict(state["model"])
        try:
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
        except (ValueError, KeyError) as exc:  # e.g. freeze changed: fresh optimiser, same weights
            job.warning(t("clf.log.optimizer_reset", error=str(exc)[:200]))
        epoch0, step = int(state["epoch"]) + 1, int(state["step"])
        best, best_epoch, bad_epochs = state.get("best"), int(state.get("best_epoch", -1)), int(state.get("bad_epochs", 0))
        meta["created"] = read_meta(out).get("created", meta["created"]) if (out / "classifier.json").is_file() else meta["created"]
        job.info(t("clf.log.resumed", epoch=epoch0, step=step))

    tracker = Tracker.for_job(job, ctx, params)
    tracker.log_params({"classes": len(scan.class_names), "train_images": len(split["train"]),
                        "val_images": len(split["val"]), "image_size": size, "lr_effective": lr,
                        "batch_effective": batch, "trainable_params": trainable})
    gen = torch.Generator()
    train_idx = np.asarray(split["train"], dtype=np.int64)
    stopped_early, seen, step_seconds = False, 0, 0.0
    try:
        for epoch in range(epoch0, params.epochs):
            gen.manual_seed(params.seed * 1000 + epoch)  # same shuffles/augmentations on resume
            order = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
            model.train()
            run_loss = run_correct = run_n = 0.0
            for b in range(steps_per_epoch):
                if job.should_stop():
                    break
                t_step = time.perf_counter()
                chunk = np.sort(order[b * batch:(b + 1) * batch])
                x = train_batch(torch.from_numpy(cache.array[chunk]).to(device), size, pre["mean"], pre["std"],
                                params.augment, params.crop_scale_min, params.hflip, params.vflip,
                                params.color_jitter, gen)
                y = torch.from_numpy(labels[chunk]).to(device)
                with torch.autocast(device_type=device.split(":")[0], dtype=amp, enabled=amp is not None):
                    logits = model(pixel_values=x).logits.float()
                loss = F.cross_entropy(logits, y, label_smoothing=params.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                seen += len(chunk)
                run_loss += loss.item() * len(chunk)
                run_correct += (logits.argmax(-1) == y).sum().item()
                run_n += len(chunk)
                step_seconds += time.perf_counter() - t_step  # pure training throughput (no eval/saves)
                tracker.metric(step, train_loss=loss.item(), lr=sched.get_last_lr()[0])
                job.progress(epoch * steps_per_epoch + b + 1, total_steps,
                             t("clf.progress.train", epoch=epoch + 1, epochs=params.epochs))
            if job.should_stop():
                break
            val_loss, val_acc, _, _ = evaluate(model, cache.array, split["val"], labels, pre, device, batch, amp,
                                               job.should_stop)
            if job.should_stop():
                break
            tracker.metric(step, epoch=epoch + 1, train_epoch_loss=run_loss / max(run_n, 1),
                           train_acc=run_correct / max(run_n, 1), val_loss=val_loss, val_acc=val_acc)
            job.info(t("clf.log.epoch", epoch=epoch + 1, epochs=params.epochs, loss=f"{run_loss / max(run_n, 1):.4f}",
                       acc=f"{run_correct / max(run_n, 1):.3f}", val_loss=f"{val_loss:.4f}", val_acc=f"{val_acc:.3f}"))
            value = val_loss if params.monitor == "val_loss" else val_acc
            if _improved(params.monitor, value, best):
                best, best_epoch, bad_epochs = value, epoch, 0
                meta.update(best_epoch=epoch + 1, best_val_loss=val_loss, best_val_acc=val_acc)
                save_classifier(model, out, meta)
                job.info(t("clf.log.best", epoch=epoch + 1, monitor=params.monitor, value=f"{value:.4f}"))
            else:
                bad_epochs += 1
            _save_state(out, model, opt, sched, epoch, step, best, best_epoch, bad_epochs)
            if params.patience and bad_epochs >= params.patience:
                stopped_early = True
                job.info(t("clf.log.early_stop", epochs=bad_epochs, best=best_epoch + 1))
                break
        if not (out / "model.safetensors").is_file():
            # Stopped before the first validation: keep what was learned so far.
            meta.update(best_epoch=0, best_val_loss=None, best_val_acc=None)
            save_classifier(model, out, meta)
        if job.should_stop():
            job.info(t("clf.log.stopped_kept", epoch=best_epoch + 1))
        # -- the report is about the best model, not the last one ------------------------------
        model.load_state_dict(load_state_dict_file(out / "model.safetensors"), strict=False)
        reports = write_reports(model, cache.array, split, labels, scan.class_names, pre, device, batch, out, t, amp)
        for name, rep in reports.items():
            job.info(t("clf.log.report", split=t(f"clf.split.{name}"), acc=f"{rep['accuracy']:.3f}") + "\n"
                     + format_report(rep))
            job.preview(out / rep["confusion_png"])  # shows in the JobPanel gallery
            tracker.log_metrics(step, **{f"{name}_final_acc": rep["accuracy"], f"{name}_macro_f1": rep["macro"]["f1"]})
        write_json(out / "metrics.json", reports)
        meta["metrics"] = {k: {"accuracy": v["accuracy"], "macro_f1": v["macro"]["f1"]} for k, v in reports.items()}
        write_json(out / "classifier.json", meta)
        result = {"model_dir": str(out), "model": params.name, "classes": scan.class_names,
                  "best_epoch": best_epoch + 1, "steps": step, "stopped": job.should_stop(),
                  "early_stopped": stopped_early, "bad_images": len(bad),
                  "train_images_per_s": round(seen / step_seconds, 2) if step_seconds > 0 else None,
                  "metrics": meta["metrics"]}
        if params.export_onnx and not job.should_stop():
            from modules.image_classifier.onnx_io import export_classifier_onnx

            result["onnx"] = export_classifier_onnx(out, job=job)
        for f in ("model.safetensors", "config.json", "classifier.json", "metrics.json", "preprocessor_config.json"):
            job.artifact(out / f, "model" if f == "model.safetensors" else "file")
            tracker.log_artifact(out / f)
        for rep in reports.values():
            tracker.log_artifact(out / rep["confusion_png"])
        return result
    except BaseException:
        tracker.close("FAILED")
        raise
    finally:
        tracker.close()  # no-op after FAILED; KILLED when stopped, else FINISHED
        model.to("cpu")


def _save_state(out: Path, model, opt, sched, epoch: int, step: int, best, best_epoch: int, bad_epochs: int) -> None:
    """Resumable state (weights + optimiser + schedule), atomically; loadable with weights_only."""
    folder = out / "state"
    folder.mkdir(exist_ok=True)
    tmp = folder / ".last.pt.tmp"
    torch.save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch, "step": step,
                "best": best, "best_epoch": best_epoch, "bad_epochs": bad_epochs}, tmp)
    tmp.replace(folder / "last.pt")
