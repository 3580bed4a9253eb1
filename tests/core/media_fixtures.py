"""Synthetic test media for every module's tests: `make_test_video`, `pattern_frame`.

    from tests.core.media_fixtures import make_test_video
    src = make_test_video(tmp_path / "clip.mp4", n_frames=12, fps=Fraction(24000, 1001))

The video is written with PyAV directly (not with core.media's writer) so that tests of the
writer compare against an independent file. Frames show a smooth gradient with a bright
square moving right by `step` pixels a frame (motion for interpolation tests); the audio
is a sine wave.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

import av
import numpy as np


def pattern_frame(i: int, size: tuple[int, int] = (64, 48), step: int = 3) -> np.ndarray:
    """Frame `i` of the moving pattern, RGB uint8, size = (width, height)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    f = np.empty((h, w, 3), np.uint8)
    f[..., 0] = (x * 255 // max(1, w - 1)).astype(np.uint8)
    f[..., 1] = (y * 255 // max(1, h - 1)).astype(np.uint8)
    f[..., 2] = 96
    s = max(4, min(w, h) // 4)
    x0 = (i * step) % max(1, w - s)
    y0 = (h - s) // 2
    f[y0:y0 + s, x0:x0 + s] = (255, 255, 255)
    return f


def make_test_video(path, n_frames: int = 12, fps=Fraction(24), size: tuple[int, int] = (64, 48),
                    with_audio: bool = True, audio_seconds: Optional[float] = None,
                    timestamps: Optional[Sequence[float]] = None, codec: str = "libx264",
                    audio_codec: str = "aac", sample_rate: int = 48000,
                    with_video: bool = True, step: int = 3) -> Path:
    """Write a short synthetic video (+ a 440 Hz sine track) and return its path.

    fps: a Fraction (24000/1001 for 23.976). timestamps: seconds per frame for a variable
    frame rate file (then fps only sets the nominal rate). audio_seconds: audio length
    (default: the video's length). with_video=False writes an audio-only file.
    """
    path = Path(path)
    if size[0] % 2 or size[1] % 2:
        raise ValueError(f"size {size}: width and height must be even (yuv420p)")
    fps = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(100_000)
    if timestamps is not None:
        n_frames = len(timestamps)
    with av.open(str(path), "w") as out:
        vs = None
        if with_video:
            vs = out.add_stream(codec, rate=fps)
            vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
            tb = Fraction(1, 90000) if timestamps is not None else 1 / fps
            vs.time_base = vs.codec_context.time_base = tb
            if codec == "libx264":
                vs.options = {"crf": "18", "preset": "ultrafast"}
        as_ = None
        if with_audio:
            as_ = out.add_stream(audio_codec, rate=sample_rate)
            as_.layout = "mono" if audio_codec.startswith("pcm") else "stereo"
        if vs is not None:
            for i in range(n_frames):
                frame = av.VideoFrame.from_ndarray(pattern_frame(i, size, step), format="rgb24")
                frame.pts = round(timestamps[i] / tb) if timestamps is not None else i
                frame.time_base = tb
                for pkt in vs.encode(frame):
                    out.mux(pkt)
            for pkt in vs.encode(None):
                out.mux(pkt)
        if as_ is not None:
            if audio_seconds is None:
                last = timestamps[-1] + 1 / float(fps) if timestamps is not None else n_frames / fps
                audio_seconds = float(last)
            _write_sine(out, as_, audio_seconds, sample_rate)
    return path


def _write_sine(out, stream, seconds: float, rate: int) -> None:
    total = int(round(seconds * rate))
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    channels = stream.codec_context.layout.nb_channels
    chunk = stream.codec_context.frame_size or 1024
    done = 0
    while done < total:
        n = min(chunk, total - done)
        t = (np.arange(done, done + n) / rate).astype(np.float32)
        wave = 0.3 * np.sin(2 * np.pi * 440.0 * t)
        if fmt == "s16":
            data = (wave * 32767).astype(np.int16)[None, :].repeat(channels, 0).T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(data, format="s16",
                                               layout=stream.codec_context.layout.name)
        else:
            data = np.repeat(wave[None, :], channels, axis=0).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(data, format="fltp",
                                               layout=stream.codec_context.layout.name)
        frame.sample_rate = rate
        frame.pts = done
        frame.time_base = Fraction(1, rate)
        for pkt in stream.encode(frame):
            out.mux(pkt)
        done += n
    for pkt in stream.encode(None):
        out.mux(pkt)
