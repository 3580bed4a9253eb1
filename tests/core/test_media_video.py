"""Video IO: round trips keep frame count, exact frame rate, timestamps and audio."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from core import media_video
from core.errors import StudioError
from core.i18n import Translator
from core.media import VideoReader, VideoWriter
from tests.core.media_fixtures import make_test_video, pattern_frame

NTSC = Fraction(24000, 1001)


def audio_info(path: Path) -> tuple[float, str]:
    """(seconds of decoded audio samples, codec name) of a file's first audio stream."""
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        n = sum(f.samples for f in c.decode(s))
        return n / s.codec_context.sample_rate, s.codec_context.name


def no_temp_files(folder: Path) -> bool:
    return not [f for f in folder.iterdir() if f.name.startswith(".")]


def test_round_trip_ntsc_with_audio(tmp_path):
    src = make_test_video(tmp_path / "src.mp4", n_frames=24, fps=NTSC, size=(64, 48))
    with VideoReader(src) as r:
        assert r.fps == NTSC and isinstance(r.fps, Fraction)
        assert r.frame_count == 24 and (r.width, r.height) == (64, 48)
        assert r.has_audio and not r.is_vfr
        assert abs(r.duration - 24 * 1001 / 24000) < 1e-3
        frames = list(r)
    assert len(frames) == 24
    # timestamps are exact multiples of 1001/24000 s
    for i, (_, t) in enumerate(frames):
        assert abs(t - i * 1001 / 24000) < 1e-6
    # decoded pixels look like the synthetic pattern (lossy codec: small mean error)
    assert np.abs(frames[7][0].astype(int) - pattern_frame(7, (64, 48))).mean() < 6

    out = tmp_path / "out.mp4"
    with VideoWriter(out, NTSC, codec="h264", crf=18, audio_from=src, preset="ultrafast") as w:
        for f, _ in frames:
            w.write(f)
    assert w.warnings == []
    with VideoReader(out) as r2:
        assert r2.fps == NTSC
        assert r2.frame_count == 24 and r2.codec == "h264" and r2.has_audio
        got = list(r2)
    assert [round(t, 6) for _, t in got] == [round(t, 6) for _, t in frames]
    assert np.abs(got[7][0].astype(int) - frames[7][0]).mean() < 4
    a_src, _ = audio_info(src)
    a_out, codec = audio_info(out)
    assert codec == "aac" and abs(a_out - a_src) < 0.05
    assert no_temp_files(tmp_path)


@pytest.mark.parametrize("ext", ["mkv", "webm"])
def test_container_rounded_rates_snap_back(tmp_path, ext):
    fps = Fraction(60000, 1001)  # MKV/WebM store 1 ms ticks: ffmpeg reads 19001/317
    codec = "libvpx-vp9" if ext == "webm" else "libx264"
    src = make_test_video(tmp_path / f"c.{ext}", n_frames=6, fps=fps, with_audio=False,
                          codec=codec)
    with VideoReader(src) as r:
        assert r.fps == fps and not r.is_vfr
    assert media_video._snap_rate(Fraction(19001, 317)) == fps
    assert media_video._snap_rate(Fraction(25)) == 25
    assert media_video._snap_rate(Fraction(2997, 100)) == Fraction(30000, 1001)  # "29.97"
    assert media_video._snap_rate(Fraction(25, 2)) == Fraction(25, 2)  # not standard: kept
    assert VideoWriter(tmp_path / "w.mp4", 23.976).fps == Fraction(24000, 1001)
    odd = VideoWriter(tmp_path / "w.mp4", Fraction(999983, 1000))  # time base must fit 32 bits
    assert odd.time_base.denominator < 2**31 and (1 / (odd.fps * odd.time_base)).denominator == 1
    assert VideoWriter(tmp_path / "w.mp4", "30000/1001").fps == Fraction(30000, 1001)


def test_vfr_timestamps_preserved(tmp_path):
    ts = [0.0, 0.04, 0.1, 0.13, 0.3, 0.35, 0.5, 0.52]
    src = make_test_video(tmp_path / "vfr.mkv", timestamps=ts, fps=25)
    with VideoReader(src) as r:
        assert r.is_vfr and r.frame_count == 8
        got = list(r)
        assert r.fps == Fraction(7) / Fraction(52, 100)  # (frames - 1) / span, not MKV's nominal 25
    assert [round(t, 4) for _, t in got] == ts
    out = tmp_path / "vfr_out.mp4"
    with VideoWriter(out, 25, audio_from=src, preset="ultrafast") as w:
        w.write_frames_at([f for f, _ in got], [t for _, t in got])
    with VideoReader(out) as r2:
        assert r2.is_vfr
        assert np.allclose(r2.timestamps, ts, atol=1e-4)
        assert np.allclose([t for _, t in r2], ts, atol=1e-4)


def test_cfr_is_not_vfr_and_pts_argument_can_make_slow_motion(tmp_path):
    out = tmp_path / "slow.mp4"
    with VideoWriter(out, 60, preset="ultrafast") as w:
        for i in range(6):
            w.write(pattern_frame(i), pts_seconds=i / 60)
        assert abs(w.video_end - 6 / 60) < 1e-9
    with VideoReader(out) as r:
        assert r.fps == 60 and not r.is_vfr and r.frame_count == 6 and not r.has_audio
    with pytest.raises(ValueError):
        with VideoWriter(tmp_path / "bad.mp4", 30, preset="ultrafast") as w:
            w.write(pattern_frame(0), pts_seconds=0.5)
            w.write(pattern_frame(1), pts_seconds=0.5)  # not after the previous frame


def test_hevc_and_uncopyable_audio_reencoded_to_aac(tmp_path):
    src = make_test_video(tmp_path / "pcm.mkv", n_frames=10, fps=30, audio_codec="pcm_s16le")
    assert audio_info(src)[1] == "pcm_s16le"
    out = tmp_path / "hevc.mp4"
    with VideoWriter(out, 30, codec="hevc", audio_from=src, preset="ultrafast") as w:
        for f, _ in VideoReader(src):
            w.write(f)
    want = "hevc" if media_video.codec_available("libx265") else "mpeg4"
    with VideoReader(out) as r:
        assert r.codec == want and r.frame_count == 10 and r.fps == 30
    seconds, codec = audio_info(out)
    assert codec == "aac" and abs(seconds - 10 / 30) < 0.05


def test_mkv_output_copies_audio_as_is(tmp_path):
    src = make_test_video(tmp_path / "pcm.mkv", n_frames=6, fps=24, audio_codec="pcm_s16le")
    out = tmp_path / "out.mkv"
    with VideoWriter(out, 24, audio_from=src, preset="ultrafast") as w:
        for f, _ in VideoReader(src):
            w.write(f)
    seconds, codec = audio_info(out)
    assert codec == "pcm_s16le" and abs(seconds - 0.25) < 0.01


def test_stop_midway_gives_playable_file_with_audio_cut(tmp_path):
    src = make_test_video(tmp_path / "long.mp4", n_frames=30, fps=30, audio_seconds=1.0)
    out = tmp_path / "partial.mp4"
    w = VideoWriter(out, 30, audio_from=src, preset="ultrafast")
    for i, (f, _) in enumerate(VideoReader(src)):
        if i == 10:  # the user pressed Stop
            break
        w.write(f)
    assert not out.exists()  # nothing at the final name before close
    assert w.close() == out
    with VideoReader(out) as r:
        assert r.frame_count == 10 and len(list(r)) == 10
    seconds, _ = audio_info(out)
    assert 0.3 < seconds < 0.4  # cut at the last frame, not the source's 1 s
    assert no_temp_files(tmp_path)


def test_exception_inside_with_keeps_partial_output_and_abort_discards(tmp_path):
    out = tmp_path / "kept.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 24, preset="ultrafast") as w:
            for i in range(3):
                w.write(pattern_frame(i))
            raise RuntimeError("job failed")
    assert VideoReader(out).frame_count == 3
    w = VideoWriter(tmp_path / "gone.mp4", 24, preset="ultrafast")
    w.write(pattern_frame(0))
    w.abort()
    assert not (tmp_path / "gone.mp4").exists() and no_temp_files(tmp_path)


def test_codec_fallback_to_mpeg4(tmp_path, monkeypatch):
    monkeypatch.setattr(media_video, "codec_available", lambda name: name == "mpeg4")
    out = tmp_path / "fb.mp4"
    with VideoWriter(out, 24, codec="h264") as w:
        for i in range(4):
            w.write(pattern_frame(i))
    assert w.codec == "mpeg4" and w.warnings[0][0] == "media.codec_fallback"
    with VideoReader(out) as r:
        assert r.codec == "mpeg4" and r.frame_count == 4


def test_odd_size_padded_and_bad_frames_rejected(tmp_path):
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 24, preset="ultrafast") as w:
        w.write(np.zeros((33, 47, 3), np.uint8))
        w.write(np.ones((33, 47, 3), np.float32))  # floats in [0,1] accepted
        with pytest.raises(StudioError) as ei:
            w.write(np.zeros((20, 20, 3), np.uint8))
        assert ei.value.key == "media.bad_frame"
    with VideoReader(out) as r:
        assert (r.width, r.height) == (48, 34)
        frames = [f for f, _ in r]
    assert frames[1][:33, :47].mean() > 240


def test_video_without_audio_and_audio_without_video(tmp_path):
    silent = make_test_video(tmp_path / "silent.mp4", n_frames=5, with_audio=False)
    with VideoReader(silent) as r:
        assert not r.has_audio and r.audio_duration is None
        frames = [f for f, _ in r]
    out = tmp_path / "o.mp4"
    with VideoWriter(out, 24, audio_from=silent, preset="ultrafast") as w:
        for f in frames:
            w.write(f)
    assert w.warnings == [] and not VideoReader(out).has_audio
    sound = make_test_video(tmp_path / "sound.m4a", with_video=False, audio_seconds=0.5)
    with pytest.raises(StudioError) as ei:
        VideoReader(sound)
    assert ei.value.key == "media.no_video_stream" and ei.value.params["path"] == "sound.m4a"


@pytest.mark.parametrize("content,key", [(b"", "media.empty"), (b"hello, not a video\n" * 20,
                                                               "media.video_open_failed")])
def test_bad_video_files(tmp_path, content, key):
    p = tmp_path / "clip.mp4"
    p.write_bytes(content)
    with pytest.raises(StudioError) as ei:
        VideoReader(p)
    assert ei.value.key == key
    for lang in ("en", "fr"):
        assert "clip.mp4" in Translator(lang)(ei.value.key, **ei.value.params)
    with pytest.raises(StudioError) as ei:
        VideoReader(tmp_path / "missing.mp4")
    assert ei.value.key == "media.not_found"


def test_missing_audio_source_is_a_warning_not_a_failure(tmp_path):
    out = tmp_path / "o.mp4"
    with VideoWriter(out, 24, audio_from=tmp_path / "gone.mp4", preset="ultrafast") as w:
        w.write(pattern_frame(0))
    assert w.warnings and w.warnings[0][0] == "media.audio_copy_failed"
    assert VideoReader(out).frame_count == 1


def test_frames_from_start_and_second_pass(tmp_path):
    src = make_test_video(tmp_path / "s.mp4", n_frames=20, fps=10, with_audio=False)
    with VideoReader(src) as r:
        first = [t for _, t in r]
        again = [t for _, t in r]
        tail = [t for _, t in r.frames(start=1.5)]
    assert first == again and len(first) == 20
    assert tail == pytest.approx([1.5, 1.6, 1.7, 1.8, 1.9])


def test_display_rotation_applied(tmp_path):
    p = tmp_path / "phone.mp4"
    with av.open(str(p), "w") as out:  # a 64x32 clip tagged "rotate 90 degrees to display"
        s = out.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        s.set_display_rotation(90)
        stored = np.zeros((32, 64, 3), np.uint8)
        stored[:8, :8] = 255  # white block top-left as stored
        for _ in range(2):
            for pkt in s.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")):
                out.mux(pkt)
        for pkt in s.encode(None):
            out.mux(pkt)
    with VideoReader(p) as r:
        assert r.rotation == 90 and (r.width, r.height) == (32, 64)
        frame, _ = next(iter(r))
    # 90 degrees counter-clockwise (what ffmpeg and players show): block ends bottom-left
    assert frame.shape == (64, 32, 3)
    assert frame[60, 3].min() > 200 and frame[3, 3].max() < 60
    with VideoReader(p, autorotate=False) as raw:
        assert (raw.width, raw.height) == (64, 32) and next(iter(raw))[0].shape == (32, 64, 3)


@pytest.mark.parametrize("pix_fmt", ["yuv420p10le", "yuv444p"])
def test_other_pixel_formats(tmp_path, pix_fmt):
    out = tmp_path / "p.mp4"
    with VideoWriter(out, 24, pix_fmt=pix_fmt, preset="ultrafast") as w:
        for i in range(3):
            w.write(pattern_frame(i))
    with VideoReader(out) as r:
        assert r._stream.codec_context.pix_fmt == pix_fmt and r.frame_count == 3
        f, _ = next(iter(r))
    assert np.abs(f.astype(int) - pattern_frame(0)).mean() < 4


def test_outputs_are_faststart_and_sources_protected(tmp_path):
    src = make_test_video(tmp_path / "src.mp4", n_frames=4, fps=24)
    for audio in (None, src):
        out = tmp_path / f"fs_{audio is None}.mp4"
        with VideoWriter(out, 24, audio_from=audio, preset="ultrafast") as w:
            for f, _ in VideoReader(src):
                w.write(f)
        data = out.read_bytes()
        assert data.find(b"moov") < data.find(b"mdat")  # index first: streams in a browser
    before = src.read_bytes()
    for kwargs in ({"audio_from": src}, {"protect": [src]}):
        with pytest.raises(StudioError) as ei:
            VideoWriter(tmp_path / "." / "src.mp4", 24, **kwargs)
        assert ei.value.key == "media.overwrite_source"
    assert src.read_bytes() == before
