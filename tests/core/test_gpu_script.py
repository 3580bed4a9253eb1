"""bench/gpu_all.sh runs once, when a GPU is lent, with no chance to fix it on the spot: every
bench it names must exist and accept every option it passes, and the time caps must leave
the whole run inside its 10 minutes. Checked statically (no GPU here): each `--option` must
be declared by an `add_argument` of that bench."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_all.sh"


def runs(text: str) -> list[tuple[int, str, list[str]]]:
    """(cap seconds, bench path, arguments) of each `run CAP NAME "$PY" bench/x.py ...` line."""
    out = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if len(words) >= 5 and words[0] == "run" and words[1].isdigit() and words[3] == "$PY":
            out.append((int(words[1]), words[4], words[5:]))
    return out


def undeclared(bench_source: str, args: list[str]) -> list[str]:
    declared = set(re.findall(r"add_argument\(\s*\"(--[a-z0-9-]+)\"", bench_source))
    return [a for a in args if a.startswith("--") and a.split("=")[0] not in declared]


def test_every_bench_and_option_exists_and_caps_fit():
    found = runs(SCRIPT.read_text(encoding="utf-8"))
    names = {Path(b).stem for _, b, _ in found}
    # every device-capable bench of the studio is in it
    assert {"lora_realsize_bench", "lora_memory_bench", "lora_training_bench", "caption_bench",
            "super_resolution_bench", "frame_interpolation_bench", "style_transfer_bench",
            "image_classifier_bench"} <= names
    for _, bench, args in found:
        src = (ROOT / bench).read_text(encoding="utf-8")
        assert "--device" in args and undeclared(src, args) == [], (bench, undeclared(src, args))
    assert sum(cap for cap, _, _ in found) <= 600


def test_the_check_sees_an_unknown_option():
    src = 'ap.add_argument("--device", default="cpu")\nap.add_argument("--steps", type=int)'
    assert undeclared(src, ["--device", "cuda", "--steps", "3"]) == []
    assert undeclared(src, ["--device", "cuda", "--fp16"]) == ["--fp16"]
    assert runs('run 60 x "$PY" bench/a.py --device cuda  # note') == [(60, "bench/a.py", ["--device", "cuda"])]
