"""Architecture/scale detection from the state dict, and clear refusal of bad files."""
from __future__ import annotations

import pickle
import re

import pytest
import torch

from core.errors import StudioError
from modules.super_resolution.detect import identify, load_model, unwrap
from tests.super_resolution.conftest import compact_sd, new_rrdb_sd, to_old_keys


def test_old_keys_detect_arch_and_scale():
    for n_up, scale in ((0, 1), (1, 2), (2, 4), (3, 8)):
        spec, sd = identify(to_old_keys(new_rrdb_sd(n_up=n_up), n_up))
        assert (spec.arch, spec.scale, spec.dialect, spec.num_feat, spec.depth) == ("rrdb", scale, "old", 8, 1)
        assert "conv_first.weight" in sd and "conv_last.weight" in sd


def test_params_ema_wrapper_and_module_prefix():
    wrapped = {"params_ema": {"module." + k: v for k, v in new_rrdb_sd(unshuffle=2).items()}, "iter": 5}
    spec, _ = identify(unwrap(wrapped))
    assert (spec.arch, spec.scale, spec.unshuffle, spec.dialect) == ("rrdb", 2, 2, "new")


def test_bsrgan_keys():
    sd = new_rrdb_sd()
    ren = {}
    for k, v in sd.items():
        k = re.sub(r"^body\.(\d+)\.rdb(\d)", r"RRDB_trunk.\1.RDB\2", k)
        k = k.replace("conv_body", "trunk_conv").replace("conv_up", "upconv").replace("conv_hr", "HRconv")
        ren[k] = v
    spec, out = identify(ren)
    assert (spec.scale, spec.dialect) == (4, "bsrgan") and set(out) == set(sd)


def test_compact_scale_from_last_conv():
    for scale in (1, 2, 4):
        spec, _ = identify(compact_sd(scale=scale))
        assert (spec.arch, spec.scale, spec.out_ch) == ("compact", scale, 3)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # would create the marker file if unpickled unsafely
        return (open, (str(self.marker), "w"))


def test_bad_files_rejected_and_no_code_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"params": _Evil(marker)}, f)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a checkpoint" * 50)
    trunc = tmp_path / "trunc.pth"
    torch.save(new_rrdb_sd(), trunc)
    trunc.write_bytes(trunc.read_bytes()[:300])
    wrong = tmp_path / "classifier.pth"
    torch.save({"fc.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)}, wrong)
    empty = tmp_path / "notes.pth"
    torch.save({"epoch": 3, "lr": 0.1}, empty)
    mismatched = tmp_path / "half.pth"  # looks like RRDB but a tensor has the wrong shape
    sd = new_rrdb_sd()
    sd["conv_hr.weight"] = torch.zeros(8, 5, 3, 3)
    torch.save(sd, mismatched)

    expect = {evil: "models.bad_weights", garbage: "models.bad_weights", trunc: "models.bad_weights",
              wrong: "sr.unknown_arch", empty: "sr.not_a_model", mismatched: "sr.unknown_arch",
              tmp_path / "absent.pth": "models.missing_file"}
    for path, key in expect.items():
        with pytest.raises(StudioError) as ei:
            load_model(path)
        assert ei.value.key == key, (path.name, ei.value.key)
        if "path" in ei.value.params:
            assert path.name in str(ei.value.params["path"])
    assert not marker.exists()
    with open(evil, "rb") as f:  # the file really carries code: a plain unpickle runs it
        pickle.load(f)["params"].close()
    assert marker.exists()
    from core.i18n import Translator

    msg = StudioError("sr.unknown_arch", path="x.pth", detail="fc.weight").render(Translator("en"))
    assert "x.pth" in msg and "RRDBNet" in msg
