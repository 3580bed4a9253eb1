"""Evaluation of a classifier on a cached split, and the end-of-run report files."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from modules.image_classifier.augment import eval_batch
from modules.image_classifier.metrics import classification_report, confusion_matrix, draw_confusion_matrix


@torch.no_grad()
def evaluate(model, array: np.ndarray, idx: list[int], labels: np.ndarray, pre: dict, device: str,
             batch_size: int, autocast_dtype=None, should_stop: Callable[[], bool] = lambda: False
             ) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(mean loss, accuracy, predictions, probabilities) over `idx` of the cached images."""
    model.eval()
    order = np.asarray(sorted(idx), dtype=np.int64)
    losses, preds, probs = [], [], []
    for start in range(0, len(order), batch_size):
        if should_stop():
            break
        chunk = order[start:start + batch_size]
        x = eval_batch(torch.from_numpy(array[chunk]).to(device), pre["size"], pre["mean"], pre["std"])
        y = torch.from_numpy(labels[chunk]).to(device)
        with torch.autocast(device_type=device.split(":")[0], dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(pixel_values=x).logits.float()
        losses.append(F.cross_entropy(logits, y, reduction="sum").item())
        p = logits.softmax(-1)
        probs.append(p.cpu().numpy())
        preds.append(p.argmax(-1).cpu().numpy())
    done = sum(len(p) for p in preds)
    if done == 0:
        return float("nan"), 0.0, np.zeros(0, dtype=np.int64), np.zeros((0, 0))
    pred = np.concatenate(preds)
    acc = float((pred == labels[order[:done]]).mean())
    return sum(losses) / done, acc, pred, np.concatenate(probs)


def write_reports(model, array: np.ndarray, split: dict[str, list[int]], labels: np.ndarray, class_names: list[str],
                  pre: dict, device: str, batch_size: int, out: Path, t: Callable[..., str],
                  autocast_dtype=None) -> dict:
    """Per-split report (precision/recall/F1, confusion matrix PNG) for val and test.

    Returns {split: report}; writes `confusion_matrix.png` (val) and
    `confusion_matrix_test.png` when there is a test split.
    """
    reports: dict[str, dict] = {}
    for name in ("val", "test"):
        idx = split.get(name) or []
        if not idx:
            continue
        loss, acc, pred, _ = evaluate(model, array, idx, labels, pre, device, batch_size, autocast_dtype)
        truth = labels[np.asarray(sorted(idx), dtype=np.int64)]
        cm = confusion_matrix(truth, pred, len(class_names))
        report = classification_report(cm, class_names)
        report["loss"] = loss
        png = out / ("confusion_matrix.png" if name == "val" else f"confusion_matrix_{name}.png")
        draw_confusion_matrix(cm, class_names, png, title=t("clf.cm.title", split=t(f"clf.split.{name}"), acc=f"{acc:.1%}"),
                              axis_labels=(t("clf.cm.predicted"), t("clf.cm.true")))
        report["confusion_png"] = png.name
        reports[name] = report
    return reports


def format_report(report: dict) -> str:
    """A plain-text per-class table for the job log."""
    width = max([len(c) for c in report["per_class"]] + [9])
    lines = [f"{'class':<{width}}  precision  recall  f1     support"]
    for name, r in report["per_class"].items():
        lines.append(f"{name:<{width}}  {r['precision']:.3f}      {r['recall']:.3f}   {r['f1']:.3f}  {r['support']}")
    m = report["macro"]
    lines.append(f"{'macro':<{width}}  {m['precision']:.3f}      {m['recall']:.3f}   {m['f1']:.3f}  {report['support']}")
    return "\n".join(lines)
