"""A labelled comparison grid: rows = LoRA files, columns = strengths, one picture per prompt.

Drawn with PIL: a title band with the prompt, a header row with each column's strength,
a left column with each row's label (file name, or `name @ step` for a run's checkpoints).
A missing cell (a grid stopped part-way) is left grey, so a partial grid still reads right.
"""
from __future__ import annotations

import textwrap
from typing import Any


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _fitting(draw, texts: list[str], size: int, max_width: int):
    """The largest font (<= size, >= 6 px) in which every text fits `max_width`: column
    labels of small cells must not run into each other."""
    while size > 6 and max(draw.textlength(t, font=_font(size)) for t in texts) > max_width:
        size -= 1
    return _font(size)


def compose(cells: list[list[Any]], row_labels: list[str], col_labels: list[str], title: str,
            width: int, height: int, label: bool = True) -> Any:
    """One image from `cells[row][col]` (PIL images or None)."""
    from PIL import Image, ImageDraw

    n_rows, n_cols = len(cells), len(col_labels)
    size = max(12, min(width, height) // 14)
    font = _font(size)
    pad = size // 2
    left = 0
    top = 0
    title_lines: list[str] = []
    if label:
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        left = int(max([probe.textlength(s, font=font) for s in row_labels] + [size])) + 2 * pad
        left = min(left, width * 2)
        chars = max(20, int((left + n_cols * width) / (size * 0.55)))
        title_lines = textwrap.wrap(title, chars)[:4]
        top = (len(title_lines) + 1) * (size + pad) + pad
    grid = Image.new("RGB", (left + n_cols * width, top + n_rows * height), "white")
    draw = ImageDraw.Draw(grid)
    for r, row in enumerate(cells):
        for c in range(n_cols):
            x, y = left + c * width, top + r * height
            im = row[c] if c < len(row) else None
            if im is None:
                draw.rectangle([x, y, x + width - 1, y + height - 1], fill=(200, 200, 200))
            else:
                grid.paste(im.convert("RGB").resize((width, height)) if im.size != (width, height) else
                           im.convert("RGB"), (x, y))
    if label:
        y = pad
        for line in title_lines:
            draw.text((pad, y), line, fill="black", font=font)
            y += size + pad
        col_font = _fitting(draw, col_labels, size, width - 4)
        for c, text in enumerate(col_labels):
            cx = left + c * width + width // 2
            draw.text((cx, top - pad), text, fill="black", font=col_font, anchor="md")
        for r, text in enumerate(row_labels):
            cy = top + r * height + height // 2
            draw.text((left - pad, cy), text, fill="black", font=font, anchor="rm")
    return grid
