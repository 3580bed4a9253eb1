"""The LoRA Lab CLI: generate with a LoRA, a grid from files, `info` prints the PNG's parameters."""
from __future__ import annotations

import json

import pytest

from modules.lora_lab.__main__ import main
from tests.lora_lab.helpers import strong_lora

SMALL = ["--steps", "2", "-W", "64", "-H", "64", "--sampler", "Euler a", "--seed", "3"]


@pytest.mark.slow
def test_cli_generate_grid_and_info(tmp_path, tiny_sdxl, capsys):
    home = tmp_path / "home"
    lora = strong_lora(home / "models" / "loras", "mine")
    out = tmp_path / "out"
    rc = main(["--home", str(home), "generate", "-b", str(tiny_sdxl), "-p", "sks, a cat", "-l", "mine:0.5",
               "-o", str(out), "-q", *SMALL])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(res["images"]) == 1 and res["seed"] == 3
    assert main(["info", res["images"][0]]) == 0
    text = capsys.readouterr().out
    assert text.startswith("sks, a cat <lora:mine:0.5>\nSteps: 2, Sampler: Euler a, CFG scale: 6, Seed: 3, Size: 64x64")
    rc = main(["--home", str(home), "grid", "-b", str(tiny_sdxl), "-p", "sks", "-r", str(lora), "-r", "mine",
               "-s", "0,1", "-o", str(tmp_path / "grid"), "-q", *SMALL])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and res["cells"] == 4 and len(res["grids"]) == 1
    # a bad LoRA name: one clear line, exit 1, nothing written
    rc = main(["--home", str(home), "generate", "-b", str(tiny_sdxl), "-p", "x", "-l", "nope", "-q",
               "-o", str(tmp_path / "bad"), *SMALL])
    assert rc == 1 and "LoRA file not found: nope" in capsys.readouterr().err
