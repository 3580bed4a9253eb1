"""Upscaling a .webm (VP9/Opus, issue 12 point 5): the output is a real WebM (VP9 video, the
Opus audio copied), same frame count and rate; the switch from H.264 is in the job log."""
from __future__ import annotations

import av
import numpy as np
import pytest

from core.jobs import ConsoleJob
from core.media import VideoReader, codec_available
from modules.super_resolution.batch import run_upscale
from modules.super_resolution.params import UpscaleParams
from tests.core.media_fixtures import make_test_video, pattern_frame

pytestmark = pytest.mark.skipif(not (codec_available("libvpx-vp9") and codec_available("libopus")),
                                reason="this PyAV build has no VP9/Opus encoder")


def test_webm_upscale_keeps_vp9_and_opus(bare_ctx, tmp_path, nearest4):
    src = make_test_video(tmp_path / "clip.webm", n_frames=8, fps=30, size=(32, 24), codec="libvpx-vp9",
                          audio_codec="libopus")
    job = ConsoleJob("sr.upscale", verbose=False, workdir=tmp_path / "job")
    res = run_upscale(job, UpscaleParams(model=str(nearest4), inputs=[str(src)], output_dir="o"),
                      bare_ctx)
    out = bare_ctx.path("OUTPUTS_DIR") / "o" / "clip.webm"
    assert res["outputs"] == [str(out)] and not res["failed"]
    with av.open(str(out)) as c:
        assert "webm" in c.format.name
        assert {s.type: s.codec_context.name for s in c.streams} == {"video": "vp9", "audio": "opus"}
    with VideoReader(src) as a, VideoReader(out) as b:
        assert b.frame_count == a.frame_count == 8 and b.fps == a.fps == 30
        assert (b.width, b.height) == (128, 96)
        assert abs(b.audio_duration - a.audio_duration) < 0.05
        first = next(iter(b))[0].astype(int)
    ref = pattern_frame(0, (32, 24)).repeat(4, 0).repeat(4, 1).astype(int)
    assert np.abs(first - ref).mean() < 10  # the model's output, up to VP9 loss
    logs = [ev[-1] for ev in job.events if ev[0] == "log"]
    assert any("webm" in m and "libvpx-vp9" in m for m in logs), logs


def test_cli_webm_and_vp9_choice(tmp_path, nearest4, monkeypatch):
    from modules.super_resolution.__main__ import main

    monkeypatch.setenv("CYBERBILL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CYBERBILL_UPSCALERS_DIR", str(nearest4.parent))
    src = make_test_video(tmp_path / "c.webm", n_frames=4, fps=24, size=(16, 16), codec="libvpx-vp9",
                          audio_codec="libopus")
    assert main(["-m", "nearest_x4.pth", str(src), "-o", "cli", "-q"]) == 0
    with av.open(str(tmp_path / "home" / "outputs" / "cli" / "c.webm")) as c:
        assert {s.type: s.codec_context.name for s in c.streams} == {"video": "vp9", "audio": "opus"}
    mp4 = make_test_video(tmp_path / "m.mp4", n_frames=3, fps=24, size=(16, 16))
    assert main(["-m", "nearest_x4.pth", str(mp4), "-o", "cli", "--video-codec", "vp9", "-q"]) == 0
    with av.open(str(tmp_path / "home" / "outputs" / "cli" / "m.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "vp9" and c.streams.audio
