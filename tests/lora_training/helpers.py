"""Small helpers shared by the training tests: a context, a data folder, a job that stops."""
from __future__ import annotations

from pathlib import Path

from core.jobs import ConsoleJob


def params(tiny: Path, **kw):
    from modules.lora_training.train.config import TrainParams

    base = dict(project="p", base_model=str(tiny), resolution=64, rank=4, alpha=4.0, max_steps=4,
                batch_size=1, lr_unet=1e-3, save_every_epochs=0, min_snr_gamma=0.0)
    base.update(kw)
    return TrainParams(**base)


def data(ctx, project: str = "p", n: int = 2, seed: int = 0) -> Path:
    from tests.lora_training.tiny_sdxl import make_images

    folder = ctx.path("LORA_PROJECTS_DIR") / project / "data" / "concept"
    make_images(folder, n=n, seed=seed)
    return folder


class StopAt(ConsoleJob):
    """A job whose user clicks Stop when step `at` is reported (from inside the run)."""

    def __init__(self, at: int, **kw) -> None:
        super().__init__("lora.train", verbose=False, **kw)
        self.at = at
        self.stop_seen_at: int | None = None

    def metric(self, step: int, **values: float) -> None:
        super().metric(step, **values)
        if step == self.at and not self.should_stop():
            self.request_stop()
            self.stop_seen_at = step


def quiet_job(workdir: Path) -> ConsoleJob:
    return ConsoleJob("lora.train", workdir=workdir, verbose=False)


def adapter(state_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(state_dir) / "adapter.safetensors"))


def smooth_images(folder: Path, n: int = 5, size: tuple[int, int] = (320, 256), seed: int = 0) -> Path:
    """`n` smooth random PNGs (upscaled 4x4 noise): distinct to the importer's dedupe, cheap to caption."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize(size, Image.Resampling.BICUBIC).save(folder / f"img{i}.png")
    return folder
