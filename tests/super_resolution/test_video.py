"""Video through the model: frame count, frame rate, audio and size kept; Stop keeps a partial file."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from core.jobs import ConsoleJob
from core.media import VideoReader
from modules.super_resolution.batch import run_upscale
from modules.super_resolution.params import UpscaleParams
from tests.core.media_fixtures import make_test_video, pattern_frame


def test_video_frames_fps_audio_kept(bare_ctx, tmp_path, nearest4):
    src = make_test_video(tmp_path / "clip.mp4", n_frames=10, fps=Fraction(24000, 1001), size=(32, 24))
    job = ConsoleJob("sr.upscale", verbose=False, workdir=tmp_path / "job")
    res = run_upscale(job, UpscaleParams(model=str(nearest4), inputs=[str(src)], output_dir="o"),
                      bare_ctx)
    out = bare_ctx.path("OUTPUTS_DIR") / "o" / "clip.mp4"
    assert res["outputs"] == [str(out)] and not res["stopped"]
    with VideoReader(src) as a, VideoReader(out) as b:
        assert b.frame_count == a.frame_count == 10
        assert b.fps == a.fps == Fraction(24000, 1001)
        assert (b.width, b.height) == (128, 96)
        assert b.has_audio
        assert abs(b.audio_duration - a.audio_duration) < 0.1
        first = next(iter(b))[0].astype(int)
    # content really went through the model (nearest x4 of frame 0, up to codec loss)
    ref = pattern_frame(0, (32, 24)).repeat(4, 0).repeat(4, 1).astype(int)
    assert np.abs(first - ref).mean() < 8
    prog = [ev for ev in job.events if ev[0] == "progress"]
    assert prog[-1][2] == prog[-1][3] == 10  # progress counted in frames


class _StopAtFrame(ConsoleJob):
    def progress(self, done, total, desc=""):
        super().progress(done, total, desc)
        if done >= 4:
            self.request_stop()


def test_video_stop_keeps_partial(bare_ctx, tmp_path, nearest4):
    src = make_test_video(tmp_path / "c.mp4", n_frames=12, size=(32, 24))
    job = _StopAtFrame("sr.upscale", verbose=False, workdir=tmp_path / "job")
    res = run_upscale(job, UpscaleParams(model=str(nearest4), inputs=[str(src)], output_dir="o"),
                      bare_ctx)
    assert res["stopped"]
    assert not (bare_ctx.path("OUTPUTS_DIR") / "o" / "c.mp4").exists()
    part = bare_ctx.path("OUTPUTS_DIR") / "o" / "c_partial.mp4"
    with VideoReader(part) as r:
        assert r.frame_count == 4
    assert sorted(p.name for p in (bare_ctx.path("OUTPUTS_DIR") / "o").iterdir()) == ["c_partial.mp4"]  # no temp files left


def test_variable_frame_rate_keeps_timestamps(bare_ctx, tmp_path, nearest4):
    times = [0.0, 0.04, 0.12, 0.16, 0.30, 0.34]
    src = make_test_video(tmp_path / "vfr.mp4", size=(16, 16), timestamps=times, with_audio=False)
    run_upscale(ConsoleJob("sr.upscale", verbose=False, workdir=tmp_path / "job"),
                UpscaleParams(model=str(nearest4), inputs=[str(src)], output_dir="o"), bare_ctx)
    with VideoReader(src) as a, VideoReader(bare_ctx.path("OUTPUTS_DIR") / "o" / "vfr.mp4") as b:
        assert a.is_vfr
        np.testing.assert_allclose(b.timestamps, a.timestamps, atol=1e-3)
