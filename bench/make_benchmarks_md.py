"""Concatenate every module's benchmark report (docs/bench/*.md) into docs/BENCHMARKS.md.

Each bench script writes its own JSON (bench/results/) and markdown; this keeps the single
page the README links in step with them: `python bench/make_benchmarks_md.py`.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["lora_training", "lora_step_profile", "lora_realsize", "lora_memory", "lora_lab", "caption", "super_resolution",
         "frame_interpolation", "style_transfer", "image_classifier"]

HEADER = """# Benchmarks

Every figure below was measured by the bench script named in its section, against a reference
implementation **in the same run** on the same machine (results JSON in `bench/results/`).
Machine: 2 shared x86_64 CPU cores, no GPU; other work ran beside some runs, so the CPU-time
ratios are the steadier figures and wall times are noisy. **No GPU was lent to this session**:
there are no GPU figures; every bench accepts `--device cuda` to add them.

Run them all on CPU: `for b in bench/*_bench.py; do .venv/bin/python $b; done; .venv/bin/python bench/make_benchmarks_md.py`.
On a GPU: `bash bench/gpu_all.sh` runs every GPU benchmark (LoRA presets at 1024 px, their peak
memory against the estimate, the levers, captioning, SR, RIFE, style, classifier), each under its
own time cap so the whole stays within 10 minutes on one H100/H200, and rebuilds this page.
It has not run yet (no GPU was lent), so those caps are budgets, not measured durations.
"""


def main() -> None:
    parts = [HEADER]
    files = {p.stem: p for p in (ROOT / "docs" / "bench").glob("*.md")}
    for name in ORDER + sorted(set(files) - set(ORDER)):
        if name in files:
            text = files[name].read_text(encoding="utf-8").strip()
            # one level down: each report's title becomes a section of the page
            parts.append("\n".join("#" + line if line.startswith("#") else line for line in text.splitlines()))
    (ROOT / "docs" / "BENCHMARKS.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
