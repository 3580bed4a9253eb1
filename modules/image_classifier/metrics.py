"""Classification metrics and the confusion-matrix picture (PIL only, no matplotlib)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """cm[true, predicted] counts."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def classification_report(cm: np.ndarray, class_names: list[str]) -> dict:
    """Per-class precision/recall/F1/support, accuracy, macro and weighted averages."""
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    actual = cm.sum(axis=1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    per_class = {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                        "support": int(actual[i])} for i, name in enumerate(class_names)}
    total = actual.sum()
    weights = actual / total if total else np.zeros_like(actual)
    present = actual > 0
    macro = {k: float(v[present].mean()) if present.any() else 0.0
             for k, v in (("precision", precision), ("recall", recall), ("f1", f1))}
    weighted = {k: float((v * weights).sum()) for k, v in (("precision", precision), ("recall", recall), ("f1", f1))}
    return {"accuracy": float(tp.sum() / total) if total else 0.0, "per_class": per_class,
            "macro": macro, "weighted": weighted, "support": int(total), "confusion_matrix": cm.tolist()}


_FONT_NAMES = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf", "arial.ttf", "Helvetica.ttc")


def _font(size: int):
    """A system TrueType font with accents (class names and French labels), else Pillow's own."""
    for name in _FONT_NAMES:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation", "/Library/Fonts",
                   "C:/Windows/Fonts"):
        for name in _FONT_NAMES:
            try:
                return ImageFont.truetype(str(Path(folder) / name), size)
            except OSError:
                continue
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # very old Pillow: fixed-size bitmap font
        return ImageFont.load_default()


def draw_confusion_matrix(cm: np.ndarray, class_names: list[str], path: Path, title: str = "",
                          axis_labels: tuple[str, str] = ("predicted", "true")) -> Path:
    """A readable confusion-matrix PNG: rows = true class, columns = predicted, cells shaded
    by the row-normalised rate, with counts (and % of the row) written in."""
    n = len(class_names)
    cell = int(np.clip(560 // max(n, 1), 22, 96))
    font, small = _font(max(10, min(18, cell // 4))), _font(max(9, min(14, cell // 5)))
    names = [c if len(c) <= 18 else c[:17] + "…" for c in class_names]
    label_w = max(int(font.getlength(s)) for s in names) + 16
    top = 40 + label_w  # rotated column labels above the grid
    left = label_w + 30
    w, h = left + n * cell + 20, top + n * cell + 40
    w = max(w, int(font.getlength(title)) + 16, left + int(small.getlength(axis_labels[0])) + 16)
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    rows = cm.sum(axis=1, keepdims=True).astype(float)
    rate = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    for i in range(n):
        for j in range(n):
            v = rate[i, j]
            # white -> blue for the diagonal, white -> red off the diagonal: mistakes stand out
            col = (int(255 - 200 * v), int(255 - 140 * v), 255) if i == j else (255, int(255 - 190 * v), int(255 - 190 * v))
            x0, y0 = left + j * cell, top + i * cell
            d.rectangle([x0, y0, x0 + cell, y0 + cell], fill=col, outline=(200, 200, 200))
            text = str(int(cm[i, j]))
            ink = "white" if v > 0.6 else "black"
            tw = font.getlength(text)
            d.text((x0 + (cell - tw) / 2, y0 + cell / 2 - cell / 5), text, fill=ink, font=font)
            if cell >= 40 and rows[i, 0] > 0:
                pct = f"{100 * v:.0f}%"
                d.text((x0 + (cell - small.getlength(pct)) / 2, y0 + cell / 2 + 2), pct, fill=ink, font=small)
    for i, s in enumerate(names):  # row labels (true class)
        d.text((left - 8 - font.getlength(s), top + i * cell + cell / 2 - 8), s, fill="black", font=font)
    for j, s in enumerate(names):  # column labels (predicted), rotated
        tw = int(font.getlength(s)) + 4
        lab = Image.new("RGBA", (tw, 24), (255, 255, 255, 0))
        ImageDraw.Draw(lab).text((2, 2), s, fill="black", font=font)
        lab = lab.rotate(90, expand=True)
        img.paste(lab, (int(left + j * cell + cell / 2 - 12), top - 6 - lab.height), lab)
    d.text((8, 8), title, fill="black", font=font)
    d.text((left, h - 28), axis_labels[0], fill=(90, 90, 90), font=small)
    d.text((8, top - 20), axis_labels[1], fill=(90, 90, 90), font=small)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp.png")
    img.save(tmp)
    tmp.replace(path)
    return path
