"""Bad inputs give one clear message; a failed run keeps its last good checkpoint."""
from __future__ import annotations

import errno

import pytest
import torch

from core.errors import StudioError
from tests.lora_training.helpers import data, params, quiet_job


def _key(exc_info) -> str:
    return exc_info.value.key


def test_missing_base_and_offline_hub_id(ctx, tiny_sdxl, tmp_path):
    from modules.lora_training.train.trainer import train

    data(ctx, n=1)
    with pytest.raises(StudioError) as e:
        train(quiet_job(tmp_path), params(tiny_sdxl, base_model=str(tmp_path / "nope.safetensors")), ctx)
    assert _key(e) == "lora.base_missing"
    msg = ctx.t(e.value.key, **e.value.params)
    assert "nope.safetensors" in msg and str(ctx.path("CHECKPOINTS_DIR")) in msg
    from safetensors.torch import save_file

    single = ctx.path("CHECKPOINTS_DIR") / "my_sdxl.safetensors"  # found by name in models/checkpoints
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(8, 4, 3, 3)}, str(single))
    with pytest.raises(StudioError) as e:  # found, but its keys are no SDXL checkpoint: said so, not "configs"
        train(quiet_job(tmp_path), params(tiny_sdxl, base_model="my_sdxl.safetensors"), ctx)
    assert _key(e) == "lora.base_not_sdxl.unknown" and "my_sdxl" in str(e.value.params)
    with pytest.raises(StudioError) as e:  # HF_HUB_OFFLINE=1 in tests: a hub id not cached
        train(quiet_job(tmp_path), params(tiny_sdxl, base_model="nobody/not-a-model-xyz"), ctx)
    assert _key(e) == "lora.base_missing"


def test_empty_or_missing_data(ctx, tiny_sdxl, tmp_path):
    from modules.lora_training.train.trainer import train

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "broken.png").write_bytes(b"")  # zero-byte image: skipped, so still nothing usable
    with pytest.raises(StudioError) as e:
        train(quiet_job(tmp_path), params(tiny_sdxl, data_dir=str(empty)), ctx)
    assert _key(e) == "lora.no_images" and str(empty) in str(e.value.params)
    with pytest.raises(StudioError) as e:
        train(quiet_job(tmp_path), params(tiny_sdxl, data_dir=str(tmp_path / "missing")), ctx)
    assert _key(e) == "lora.data_missing"
    with pytest.raises(StudioError) as e:
        train(quiet_job(tmp_path), params(tiny_sdxl, resume_from="latest", data_dir=str(data(ctx, n=1))), ctx)
    assert _key(e) == "lora.no_state"


def test_bad_images_skipped_and_reported(ctx, tiny_sdxl, tmp_path):
    import numpy as np
    from PIL import Image

    from modules.lora_training.train import dataset as ds

    folder = data(ctx, n=1)
    (folder / "zero.png").write_bytes(b"")
    (folder / "junk.jpg").write_bytes(b"not an image at all")
    Image.fromarray(np.zeros((40, 80, 3), "uint8")).convert("CMYK").save(folder / "cmyk.jpg")
    (folder / "cmyk.txt").write_bytes("caf\xe9".encode("latin-1"))  # not UTF-8: clear error
    skipped: list = []
    with pytest.raises(StudioError) as e:
        ds.scan(folder, 64, skipped=skipped)
    assert _key(e) == "lora.bad_caption" and "cmyk.txt" in str(e.value.params["path"])
    (folder / "cmyk.txt").write_text("café", encoding="utf-8")
    skipped.clear()
    items = ds.scan(folder, 64, skipped=skipped)
    assert sorted(k.key for _, k in skipped) == ["media.empty", "media.not_image"]
    cmyk = next(i for i in items if i.path.endswith("cmyk.jpg"))
    assert cmyk.caption == "café" and cmyk.original_hw == (40, 80) and cmyk.crop_yx == (0, 32)
    px = ds.load_pixels(cmyk)
    assert px.shape == (3, 64, 64) and px.min() >= -1 and px.max() <= 1


def test_bad_params_and_cpu_8bit(ctx, tiny_sdxl, tmp_path):
    from pydantic import ValidationError

    from modules.lora_training.train.config import TrainParams
    from modules.lora_training.train.trainer import train

    for bad in ({"project": "../evil"}, {"project": "a/b"}, {"rank": 0}, {"resolution": 100}, {"optimizer": "sgd"}):
        with pytest.raises(ValidationError):
            TrainParams(**bad)
    data(ctx, n=1)
    with pytest.raises(StudioError) as e:
        train(quiet_job(tmp_path), params(tiny_sdxl, optimizer="adamw8bit"), ctx)
    assert _key(e) == "lora.adamw8bit_needs_gpu"


def test_failed_save_keeps_last_good_checkpoint(ctx, tiny_sdxl, tmp_path, monkeypatch):
    from modules.lora_training.train import checkpoint as ck
    from modules.lora_training.train.trainer import train

    data(ctx, n=2)
    real_save = torch.save
    calls = {"n": 0}

    def flaky(obj, f, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            real_save(obj, f, *a, **kw)  # half-written file, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", flaky)
    with pytest.raises(StudioError) as e:
        train(quiet_job(tmp_path), params(tiny_sdxl, max_steps=5, save_every_steps=1), ctx)
    assert _key(e) == "lora.disk_full"
    root = ctx.path("LORA_PROJECTS_DIR") / "p" / "checkpoints"
    (run,) = list(root.iterdir())  # the run's own folder
    assert [p.name for p in run.iterdir()] == ["step_0000001"]  # no temp folder left behind
    adapters, state, meta = ck.load_state(run / "step_0000001")
    assert state["step"] == 1 and meta["step"] == 1 and adapters["unet"]
    assert ck.find_state("latest", root) == run / "step_0000001"
