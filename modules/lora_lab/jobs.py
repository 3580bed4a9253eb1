"""The LoRA Lab job functions: `lab.generate` and `lab.grid` (same code for UI, REST, CLI).

Every LoRA file is read (and checked) before the base is loaded, so a typo fails in a
second, not after a minute of loading. Outputs are PNGs with the A1111 `parameters` text,
written atomically; a Stop keeps what is finished (cells and a partial grid).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core.lora_apply import LoraPatcher
from core.lora_file import LoraFile, file_hash, read_lora
from modules.lora_lab import engine, infotext
from modules.lora_lab.grid import compose
from modules.lora_lab.params import GenerateParams, GridParams


def _read(ctx: Any, refs: list[str]) -> list[tuple[Path, LoraFile, str]]:
    out = []
    for ref in refs:
        path = engine.resolve_lora(ctx, ref)
        out.append((path, read_lora(path), file_hash(path)))
    return out


def _apply(job: Any, patcher: LoraPatcher, items: list[tuple[LoraFile, float]]) -> None:
    report = patcher.apply(items)
    if report.unmatched:
        job.warning(job.t("lab.log.unmatched", count=len(report.unmatched), first=report.unmatched[0]))


def run_generate(job: Any, p: GenerateParams, ctx: Any) -> dict:
    loras = _read(ctx, [c.path for c in p.loras])
    base = engine.load_base(ctx, job, p.base_model, p.precision)
    folder = engine.output_dir(ctx, job, p.output_dir)
    seed = engine.new_seed(p.seed)
    seeds = [seed + i for i in range(p.batch)]
    patcher = LoraPatcher(base.pipe)
    saved: list[str] = []
    try:
        _apply(job, patcher, [(lf, c.strength) for (_, lf, _), c in zip(loras, p.loras)])
        images = engine.render(base, job, p, p.prompt, seeds, done=0, total=p.steps, desc=job.t("lab.progress.image"),
                               on_preview=job.preview)
    finally:
        patcher.restore()
    if images is None:
        return {"images": [], "seed": seed, "stopped": True}
    used = [(path.stem, c.strength, h) for (path, _, h), c in zip(loras, p.loras)]
    for i, (im, s) in enumerate(zip(images, seeds)):
        text = infotext.build(p.prompt, p.negative_prompt, engine.fields(p, base, s), used)
        out = infotext.save_png(im, folder / f"{i:03d}-{s}.png", text)
        job.artifact(out, "image")
        job.preview(out)
        saved.append(str(out))
    job.info(job.t("lab.log.saved", count=len(saved), folder=str(folder)))
    return {"images": saved, "seed": seed, "folder": str(folder)}


def run_grid(job: Any, p: GridParams, ctx: Any) -> dict:
    rows = _read(ctx, p.rows)
    labels = [p.row_labels[i] if i < len(p.row_labels) and p.row_labels[i].strip() else engine.lora_label(path)
              for i, (path, _, _) in enumerate(rows)]
    base = engine.load_base(ctx, job, p.base_model, p.precision)
    folder = engine.output_dir(ctx, job, p.output_dir)
    seed = engine.new_seed(p.seed)
    cols = [job.t("lab.grid.strength", value=f"{s:g}") for s in p.strengths]
    zero_cols = sum(1 for s in p.strengths if s == 0)
    # strength-0 cells are the base image: rendered once per prompt, not once per row
    renders = len(rows) * (len(p.strengths) - zero_cols) + (1 if zero_cols else 0)
    total = len(p.prompts) * renders * p.steps
    done = 0
    patcher = LoraPatcher(base.pipe)
    grids: list[str] = []
    n_cells = 0
    try:
        for pi, prompt in enumerate(p.prompts):
            cells: list[list[Any]] = [[None] * len(p.strengths) for _ in rows]
            plain = None
            for ri, (path, lora, digest) in enumerate(rows):
                for ci, strength in enumerate(p.strengths):
                    if strength == 0 and plain is not None:
                        im = plain
                    else:
                        _apply(job, patcher, [(lora, strength)])
                        desc = job.t("lab.progress.cell", prompt=pi + 1, row=labels[ri], strength=f"{strength:g}")
                        out = engine.render(base, job, p, prompt, [seed], done=done, total=total, desc=desc,
                                            on_preview=job.preview)
                        done += p.steps
                        if out is None:
                            break
                        im = out[0]
                        if strength == 0:
                            plain = im
                    cells[ri][ci] = im
                    text = infotext.build(prompt, p.negative_prompt, engine.fields(p, base, seed),
                                          [(path.stem, strength, digest)])
                    cell = infotext.save_png(im, folder / f"p{pi}_r{ri:02d}_c{ci:02d}.png", text)
                    job.artifact(cell, "cell")
                    n_cells += 1
                if job.should_stop():
                    break
            grid = compose(cells, labels, cols, prompt, p.width, p.height, label=p.label)
            fields = {**engine.fields(p, base, seed), "Grid": f"{len(rows)}x{len(p.strengths)}"}
            path = infotext.save_png(grid, folder / f"grid_p{pi}.png", infotext.build(prompt, p.negative_prompt, fields))
            job.artifact(path, "grid")
            job.preview(path)
            grids.append(str(path))
            if job.should_stop():
                break
    finally:
        patcher.restore()
    job.info(job.t("lab.log.grid_done", grids=len(grids), cells=n_cells, folder=str(folder)))
    return {"grids": grids, "cells": n_cells, "seed": seed, "folder": str(folder), "rows": labels,
            "strengths": p.strengths, "stopped": job.should_stop()}
