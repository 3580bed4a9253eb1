"""Containers and codecs (issue 12 point 5): a .webm output gets VP9 (never H.264) and keeps
its Opus audio; an audio that must be re-encoded goes to Opus in WebM, AAC in MP4."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from core.media import VideoReader, VideoWriter, codec_available
from core.media_mux import video_encoder_for
from tests.core.media_fixtures import make_test_video

pytestmark = pytest.mark.skipif(not (codec_available("libvpx-vp9") and codec_available("libopus")),
                                reason="this PyAV build has no VP9/Opus encoder")


def _streams(path):
    with av.open(str(path)) as c:
        return c.format.name, {s.type: s.codec_context.name for s in c.streams}


def _audio_seconds(path) -> float:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return sum(f.samples for f in c.decode(s)) / s.codec_context.sample_rate


def test_encoder_choice_follows_the_container():
    webm = {"vp8", "vp9", "av1", "opus", "vorbis"}
    assert video_encoder_for(webm, "libx264", codec_available) == "libvpx-vp9"
    assert video_encoder_for(webm, "libx265", codec_available) == "libvpx-vp9"
    assert video_encoder_for(webm, "libvpx-vp9", codec_available) == "libvpx-vp9"
    assert video_encoder_for({"h264", "hevc", "aac"}, "libx264", codec_available) == "libx264"
    assert video_encoder_for({"h264", "mpeg4"}, "libx265", codec_available) == "libx264"  # avi: no hevc
    assert video_encoder_for(set(), "libx264", codec_available) == "libx264"  # muxer does not say: trusted


def test_h264_asked_into_webm_writes_vp9_and_copies_opus(tmp_path):
    src = make_test_video(tmp_path / "s.webm", n_frames=10, fps=30, codec="libvpx-vp9", audio_codec="libopus")
    assert _streams(src)[1] == {"video": "vp9", "audio": "opus"}
    out = tmp_path / "o.webm"
    with VideoReader(src) as r:
        w = VideoWriter(out, r.fps, codec="h264", audio_from=src)
        for frame, _ in r:
            w.write(frame)
        w.close()
    fmt, streams = _streams(out)
    assert "webm" in fmt and streams == {"video": "vp9", "audio": "opus"}
    assert [k for k, _ in w.warnings] == ["media.codec_for_container"]
    assert w.warnings[0][1]["chosen"] == "libvpx-vp9"
    with VideoReader(out) as r:
        assert r.frame_count == 10 and r.fps == 30
        frames = [f for f, _ in r]
    assert np.abs(frames[3].astype(int) - np.asarray(list(VideoReader(src))[3][0], int)).mean() < 6
    assert abs(_audio_seconds(out) - _audio_seconds(src)) < 0.03


def test_audio_that_cannot_be_copied_is_opus_in_webm_and_aac_in_mp4(tmp_path):
    src = make_test_video(tmp_path / "s.mkv", n_frames=6, fps=25, audio_codec="pcm_s16le", sample_rate=44100)
    for ext, want in (("webm", ("vp9", "opus")), ("mp4", ("h264", "aac"))):
        out = tmp_path / f"o.{ext}"
        with VideoReader(src) as r:
            with VideoWriter(out, r.fps, audio_from=src) as w:
                for frame, _ in r:
                    w.write(frame)
        _, streams = _streams(out)
        assert (streams["video"], streams["audio"]) == want
        assert abs(_audio_seconds(out) - 6 / 25) < 0.03


def test_vp9_can_be_asked_for_mp4(tmp_path):
    out = tmp_path / "v.mp4"
    with VideoWriter(out, Fraction(24), codec="vp9") as w:
        for i in range(4):
            w.write(np.full((32, 48, 3), 40 * i, np.uint8))
    assert _streams(out)[1] == {"video": "vp9"} and not w.warnings
