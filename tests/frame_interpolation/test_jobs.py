"""The two job kinds end to end on real files: counts, durations, audio, cuts, Stop, errors."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from core.errors import StudioError
from core.jobs import ConsoleJob
from core.media import VideoReader
from modules.frame_interpolation.jobs import run_interpolate_video
from modules.frame_interpolation.params import InterpolateVideoParams
from tests.core.media_fixtures import make_test_video
from tests.frame_interpolation.helpers import save_tiny_model, scene

NTSC = Fraction(24000, 1001)


def _audio_seconds(path) -> float:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return sum(f.samples for f in c.decode(s)) / s.codec_context.sample_rate


def _submit(ctx, kind, **params):
    job_id = ctx.jobs.submit(kind, params)
    row = ctx.jobs.wait(job_id, timeout=60)
    assert row["status"] == "completed", (row["status"], row.get("error"))
    return row


@pytest.mark.parametrize("mode,extra,want_frames,want_fps,want_interp", [
    ("multiply", {"multiplier": 2}, 24, NTSC * 2, 11),  # the last frame is held once
    ("multiply", {"multiplier": 4}, 48, NTSC * 4, 33),
    ("fps", {"target_fps": "59.94"}, 30, Fraction(60000, 1001), 22),  # 6 sources land exactly
])
def test_video_counts_duration_and_audio(ctx, tmp_path, mode, extra, want_frames, want_fps, want_interp):
    save_tiny_model(ctx.path("RIFE_DIR"))
    src = make_test_video(tmp_path / "clip.mp4", n_frames=12, fps=NTSC, size=(64, 48))
    out = ctx.path("OUTPUTS_DIR") / f"out_{mode}.mp4"  # typed outputs lie there
    row = _submit(ctx, "rife.interpolate_video", input=str(src), output=out.name, mode=mode,
                     preset="ultrafast", **extra)
    with VideoReader(src) as r:
        src_duration = r.duration
    with VideoReader(out) as r:
        assert r.fps == want_fps and r.frame_count == want_frames
        stamps = r.timestamps
        assert r.has_audio
    assert abs(want_frames / want_fps - 12 / NTSC) < 1e-9  # exact by construction
    assert [round(t, 6) for t in stamps] == [round(float(k / want_fps), 6) for k in range(want_frames)]
    assert abs(float(stamps[-1] + 1 / want_fps) - src_duration) < 1e-3
    assert abs(_audio_seconds(out) - _audio_seconds(src)) < 0.05
    assert row["result"]["written"] == want_frames and row["result"]["interpolated"] == want_interp


def test_vfr_source_and_slow_motion(ctx, tmp_path):
    save_tiny_model(ctx.path("RIFE_DIR"))
    stamps = [0, 1 / 30, 2 / 30, 0.125, 0.2, 0.25, 1 / 3, 0.4]
    src = make_test_video(tmp_path / "vfr.mp4", fps=Fraction(30), timestamps=stamps, size=(64, 48))
    out = ctx.path("OUTPUTS_DIR") / "vfr_30.mp4"
    _submit(ctx, "rife.interpolate_video", input=str(src), output=out.name, mode="fps", target_fps="30",
            preset="ultrafast", scene_detect="off")
    with VideoReader(src) as r:
        assert r.is_vfr
        end = r.timestamps[-1] + 1 / float(r.fps)
    with VideoReader(out) as r:
        assert r.fps == 30 and not r.is_vfr and r.frame_count == round(end * 30)
    slow = ctx.path("OUTPUTS_DIR") / "slow.mp4"
    _submit(ctx, "rife.interpolate_video", input=str(make_test_video(tmp_path / "c.mp4", n_frames=6)),
            output=slow.name, mode="slowmo", slowmo=3, preset="ultrafast")
    with VideoReader(slow) as r:
        assert r.fps == 24 and r.frame_count == 18 and not r.has_audio  # 3x longer: audio dropped


def test_stop_mid_video_leaves_playable_shorter_file(ctx, tmp_path):
    save_tiny_model(ctx.path("RIFE_DIR"))
    src = make_test_video(tmp_path / "long.mp4", n_frames=48, size=(64, 48))

    class StopAfter(ConsoleJob):
        def progress(self, done, total, desc=""):
            super().progress(done, total, desc)
            if done >= 12:
                self.request_stop()

    p = InterpolateVideoParams(input=str(src), output="partial.mp4", preset="ultrafast")
    job = StopAfter("rife.interpolate_video", p, workdir=tmp_path / "job", verbose=False)
    result = run_interpolate_video(job, p, ctx)
    assert result["stopped"] and 12 <= result["written"] < 96
    with VideoReader(ctx.path("OUTPUTS_DIR") / "partial.mp4") as r:
        frames = list(r)
        assert r.has_audio
    assert len(frames) == result["written"] and frames[0][0].shape == (48, 64, 3)
    assert _audio_seconds(ctx.path("OUTPUTS_DIR") / "partial.mp4") < 1.0  # audio cut at the last frame (2 s source)


def test_cut_in_a_real_video_is_held(ctx, tmp_path):
    save_tiny_model(ctx.path("RIFE_DIR"))
    src = tmp_path / "cut.mp4"
    with av.open(str(src), "w") as c:  # lossless so the held frame can be compared exactly
        s = c.add_stream("libx264rgb", rate=24)
        s.width, s.height, s.pix_fmt, s.options = 64, 48, "rgb24", {"qp": "0", "preset": "ultrafast"}
        for i in range(8):
            f = av.VideoFrame.from_ndarray(scene(i, kind=int(i >= 4)), format="rgb24")
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)
    out = ctx.path("OUTPUTS_DIR") / "cut_4x.mp4"
    _submit(ctx, "rife.interpolate_video", input=str(src), output=out.name, multiplier=4, preset="ultrafast",
            crf=0)
    with VideoReader(out) as r:
        got = [f for f, _ in r]
    assert len(got) == 32
    held = [np.abs(got[k].astype(int) - got[12].astype(int)).mean() for k in (13, 14, 15)]
    assert max(held) < 1.0  # 13..15 repeat source frame 3; no morph towards scene B
    assert np.abs(got[16].astype(int) - scene(4, kind=1)).mean() < 12  # 4:2:0 chroma on a checkerboard
    assert np.abs(got[13].astype(int) - scene(4, kind=1)).mean() > 40


def test_bad_inputs_are_rejected_clearly(ctx, tmp_path):
    p = InterpolateVideoParams(input=str(tmp_path / "missing.mp4"))
    with pytest.raises(StudioError) as e:
        run_interpolate_video(ConsoleJob("x", p, workdir=tmp_path, verbose=False), p, ctx)
    assert e.value.key == "rife.input_missing"
    bad = tmp_path / "notavideo.mp4"
    bad.write_bytes(b"\x00garbage" * 100)
    p = InterpolateVideoParams(input=str(bad))
    with pytest.raises(StudioError) as e:
        run_interpolate_video(ConsoleJob("x", p, workdir=tmp_path, verbose=False), p, ctx)
    assert e.value.key.startswith("media.")
    src = make_test_video(tmp_path / "ok.mp4", n_frames=3)
    p = InterpolateVideoParams(input=str(src))
    with pytest.raises(StudioError) as e:  # no weights in RIFE_DIR yet
        run_interpolate_video(ConsoleJob("x", p, workdir=tmp_path, verbose=False), p, ctx)
    assert e.value.key == "rife.no_models" and str(ctx.path("RIFE_DIR")) in e.value.render(ctx.t)
    # via the runner, an unknown weights file fails the job with the readable message
    import torch

    torch.save({"conv.weight": torch.zeros(1)}, ctx.path("RIFE_DIR") / "other.pth")
    job_id = ctx.jobs.submit("rife.interpolate_video", {"input": str(src), "model": "other.pth"})
    row = ctx.jobs.wait(job_id, timeout=30)
    assert row["status"] == "failed" and "not a supported RIFE model" in row["error"]


def test_pair_job_outputs(ctx, tmp_path):
    save_tiny_model(ctx.path("RIFE_DIR"))
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(scene(0, 47, 63)).save(a)
    Image.fromarray(scene(4, 47, 63)).save(b)
    row = _submit(ctx, "rife.interpolate_pair", image_a=str(a), image_b=str(b), timestep=0.25, frames=3,
                     fps=10, output_dir="out")
    res = row["result"]
    png, gif, mp4 = res["outputs"]
    assert png.endswith("_t0.250.png") and Image.open(png).size == (63, 47)
    with Image.open(gif) as g:
        assert g.n_frames == res["frames"] == 5 + 3  # a, 3 mids, b, then back without the ends
    with VideoReader(mp4) as r:
        assert r.frame_count == 8 and r.fps == 10 and (r.width, r.height) == (64, 48)
