"""The CLI runs the same jobs: model listing, a pair, clear errors and exit codes."""
from __future__ import annotations

import json

from PIL import Image

from modules.frame_interpolation.__main__ import main
from tests.frame_interpolation.helpers import save_tiny_model, scene


def test_cli_models_pair_and_errors(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("CYBERBILL_HOME", str(home))
    assert main(["models"]) == 0
    assert "No RIFE weights" in capsys.readouterr().out
    save_tiny_model(home / "models" / "rife")
    (home / "models" / "rife" / "junk.pkl").write_text("junk")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "4.25/flownet.pkl\tRIFE 4.25" in out and "junk.pkl is not a usable weights file" in out

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(scene(0)).save(a)
    Image.fromarray(scene(3)).save(b)
    assert main(["pair", str(a), str(b), "--frames", "2", "--no-mp4", "-q", "-m", "4.25",
                 "-o", "out"]) == 0  # under OUTPUTS_DIR, not the shell's folder
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 6 and all((home / "outputs" / "out" / p).exists() for p in map(str, result["outputs"]))
    assert main(["pair", str(a), str(b), "-q", "-m", "4.25", "-o", str(tmp_path / "escape")]) == 2
    assert "absolute path" in capsys.readouterr().err and not (tmp_path / "escape").exists()

    assert main(["video", str(tmp_path / "missing.mp4"), "-q"]) == 1
    assert "Input file not found" in capsys.readouterr().err
    assert main(["video", "x.mp4", "--fps", "fast"]) == 2
    assert "target_fps" in capsys.readouterr().err
