"""Millisecond timestamps (WebM, issue 12 point 5): source frames stored at 0.033 s are the
frames at 1/30 s and are passed through, not synthesised at t = 0.01."""
from __future__ import annotations

from fractions import Fraction

import pytest

from core.media import VideoReader, codec_available
from modules.frame_interpolation.timeline import plan_timeline, time_base_tolerance
from tests.core.media_fixtures import make_test_video
from tests.frame_interpolation.helpers import save_tiny_model

MS = Fraction(1, 1000)


def _ms(n: int, fps: int) -> list[Fraction]:
    return [Fraction(round(Fraction(i, fps) * 1000), 1000) for i in range(n)]  # as WebM stores them


@pytest.mark.parametrize("fps,multi", [(30, 2), (30, 4), (24, 2), (60, 2), (25, 3)])
def test_ms_rounded_sources_pass_through(fps, multi):
    pts = _ms(10, fps)
    plan = plan_timeline(pts, fps * multi, pts[-1] + Fraction(1, fps), tolerance=time_base_tolerance(MS))
    assert len(plan) == 10 * multi
    for step in plan:
        if step.out % multi == 0:  # on a source frame
            assert (step.kind, step.a) == ("src", step.out // multi), step
        elif step.out < 9 * multi:
            assert step.kind == "interp" and 0.05 < step.t < 0.95, step
    # without the tolerance (the old behaviour) most of those become interpolations
    old = plan_timeline(pts, fps * multi, pts[-1] + Fraction(1, fps))
    if fps in (30, 24):
        assert sum(s.kind == "interp" for s in old) > sum(s.kind == "interp" for s in plan)


def test_tolerance_never_merges_two_output_frames():
    pts = [Fraction(i, 30) for i in range(4)]
    plan = plan_timeline(pts, 240, Fraction(4, 30), tolerance=Fraction(1, 50))  # absurd: 20 ms
    assert sum(s.kind == "src" for s in plan[:24]) == 3  # capped to a quarter output frame


@pytest.mark.skipif(not codec_available("libvpx-vp9"), reason="no VP9 encoder in this PyAV build")
def test_webm_job_interpolates_only_the_in_between_frames(ctx, tmp_path):
    save_tiny_model(ctx.path("RIFE_DIR"))
    src = make_test_video(tmp_path / "clip.webm", n_frames=8, fps=30, size=(64, 48), codec="libvpx-vp9",
                          audio_codec="libopus")
    with VideoReader(src) as r:
        assert r.time_base == MS and r.timestamps[1] == 0.033  # really millisecond ticks
    out = ctx.path("OUTPUTS_DIR") / "out.webm"
    jid = ctx.jobs.submit("rife.interpolate_video", {"input": str(src), "output": "out.webm", "multiplier": 2,
                                                     "scene_detect": "off"})
    row = ctx.jobs.wait(jid, timeout=120)
    assert row["status"] == "completed", row.get("error")
    res = row["result"]
    assert res["written"] == 16 and res["interpolated"] == 7  # 8 sources passed through, the last held
    with VideoReader(out) as r:
        assert r.codec == "vp9" and r.frame_count == 16 and r.fps == 60 and r.has_audio
