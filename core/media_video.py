"""Video IO with PyAV: exact timestamps and frame rates in, H.264/H.265/VP9 with the source audio out.

`VideoReader(path)` iterates `(rgb_uint8 HxWx3, pts_seconds)`; timestamps are the truth
(`pts * time_base`), so variable-frame-rate sources keep their timing; phone clips' display
rotation is applied. `.fps` is the average rate as an exact Fraction (23.976 is 24000/1001);
`.frame_count`, `.timestamps` and `.is_vfr` come from one demux pass (no decoding).

`VideoWriter(path, fps, codec="h264"|"hevc"|"vp9", crf=18, audio_from=src)` encodes frames to a
hidden temp file, then on `close()` muxes the video with the audio of `audio_from`
(copied as is when the container accepts the codec, else re-encoded to AAC, or Opus for
WebM; see `core.media_mux`) into a second
temp file and renames it onto `path`. A writer closed early (the user pressed Stop) still
gives a playable file, its audio cut at the last frame. `write(frame, pts_seconds=...)`
places a frame at an exact time (frame interpolation, VFR output).
"""
from __future__ import annotations

import contextlib
import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Union

import av
import numpy as np

from core.errors import StudioError
from core.files import PathLike, commit_file, refuse_overwrite, require_file, temp_sibling
from core.media_mux import open_output, remux, video_encoder_for

log = logging.getLogger(__name__)

CODECS = {"h264": "libx264", "hevc": "libx265", "h265": "libx265", "vp9": "libvpx-vp9",
          "mpeg4": "mpeg4"}
FALLBACK_CODEC = "mpeg4"


def codec_available(name: str) -> bool:
    """True when PyAV's bundled ffmpeg has this encoder."""
    with contextlib.suppress(Exception):  # UnknownCodecError and friends
        return av.codec.Codec(name, "w").is_encoder
    return False


def _snap_rate(rate: Fraction) -> Fraction:
    """Undo a container's rounding (MKV's 1 ms ticks read 60000/1001 as 19001/317)."""
    for std in (Fraction(round(rate)), Fraction(round(rate * Fraction(1001, 1000)) * 1000, 1001)):
        if std > 0 and abs(rate - std) / std < Fraction(1, 10000):  # n, or NTSC n * 1000/1001
            return std
    return rate


def _seconds(value: Optional[int], time_base) -> Optional[float]:
    return None if value is None or time_base is None else float(value * time_base)


class VideoReader(contextlib.AbstractContextManager):
    """Decode a video's first video stream: frames as RGB uint8 with exact timestamps."""

    def __init__(self, path: PathLike, autorotate: bool = True) -> None:
        self.path = require_file(path)
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise StudioError("media.video_open_failed", path=self.path.name, error=str(exc)) from exc
        if not self._container.streams.video:
            self._container.close()
            raise StudioError("media.no_video_stream", path=self.path.name)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"  # frame + slice threads: several x faster
        cc = self._stream.codec_context
        self.width, self.height, self.codec = int(cc.width), int(cc.height), str(cc.name)
        self.time_base: Fraction = self._stream.time_base
        audio = self._container.streams.audio
        self.has_audio, self.audio_codec = bool(audio), audio[0].codec_context.name if audio else None
        self.start_time: float = _seconds(self._stream.start_time, self.time_base) or 0.0
        # phone clips store a display rotation; frames come out upright, as players show them
        self.rotation = self._peek_rotation() if autorotate else 0
        if self.rotation in (90, 270):
            self.width, self.height = self.height, self.width
        self._scan_cache: Optional[list[int]] = None
        self._decoded_once = False
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        self._meta_fps = Fraction(rate) if rate else None  # header rate, trusted for CFR only

    def _peek_rotation(self) -> int:
        """Display rotation (counter-clockwise degrees, 0/90/180/270) of the first frame."""
        try:
            with av.open(str(self.path)) as c:
                frame = next(c.decode(c.streams.video[0]), None)
        except av.FFmpegError as exc:  # not even one frame decodes: say so now, not mid-job
            self._container.close()
            raise StudioError("media.video_decode_failed", path=self.path.name, frame=0,
                              error=str(exc)) from exc
        return int(round((frame.rotation or 0) / 90)) % 4 * 90 if frame is not None else 0

    # -- metadata from one demux pass (packets only, no decoding) ---------------------
    def _scan(self) -> list[int]:
        if self._scan_cache is None:
            with av.open(str(self.path)) as c:
                self._scan_cache = sorted(p.pts for p in c.demux(c.streams.video[0])
                                          if p.size and p.pts is not None)
        return self._scan_cache

    @property
    def timestamps(self) -> list[float]:
        """Presentation time of every frame, seconds, in display order."""
        return [float(p * self.time_base) for p in self._scan()]

    @property
    def frame_count(self) -> int:
        return int(self._stream.frames or 0) or len(self._scan())

    @property
    def fps(self) -> Fraction:
        """Average frame rate as an exact fraction (24000/1001, not 23.976)."""
        # VFR: some containers (MKV) report a nominal rate; use (frames - 1) / (last - first)
        if self._meta_fps and not self.is_vfr:
            return _snap_rate(self._meta_fps)
        ts = self._scan()
        if len(ts) > 1 and ts[-1] > ts[0]:
            return Fraction(len(ts) - 1) / ((ts[-1] - ts[0]) * self.time_base)
        return self._meta_fps or Fraction(25)

    @property
    def duration(self) -> float:
        """Seconds of video: stream duration, else container duration, else frames / fps."""
        d, c = _seconds(self._stream.duration, self.time_base), self._container.duration
        return d or (c / 1_000_000 if c else float(self.frame_count / self.fps))

    @property
    def audio_duration(self) -> Optional[float]:
        """Seconds of audio from the stream header (None without audio)."""
        a = self._container.streams.audio[0] if self.has_audio else None
        return None if a is None else (_seconds(a.duration, a.time_base) or self.duration)

    @property
    def is_vfr(self) -> bool:
        """True when frame intervals vary by more than one tick and 1% (not CFR)."""
        d = np.diff(np.asarray(self._scan(), dtype=np.int64))
        return len(d) >= 2 and bool(d.max() - d.min() > max(1, 0.01 * float(np.median(d))))

    # -- decoding --------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        return self.frames()

    def frames(self, start: float = 0.0) -> Iterator[tuple[np.ndarray, float]]:
        """Yield (rgb uint8 HxWx3, pts seconds) from `start` seconds on."""
        c = self._container
        if start > 0 or self._decoded_once:  # `start` is on the pts clock, like the yields
            c.seek(int(max(start, self.start_time) / self.time_base), stream=self._stream,
                   backward=True)
        self._decoded_once = True
        index = 0
        try:
            for index, frame in enumerate(c.decode(self._stream)):
                t = (float(frame.pts * self.time_base) if frame.pts is not None
                     else self.start_time + float(index / self.fps))
                if t + 1e-9 >= start:
                    rgb = frame.to_ndarray(format="rgb24")
                    if self.rotation:
                        rgb = np.ascontiguousarray(np.rot90(rgb, self.rotation // 90))
                    yield rgb, t
        except av.FFmpegError as exc:
            raise StudioError("media.video_decode_failed", path=self.path.name, frame=index,
                              error=str(exc)) from exc

    def close(self) -> None:
        self._container.close()

    def __exit__(self, *exc) -> None:
        self.close()


class VideoWriter(contextlib.AbstractContextManager):
    """Encode RGB frames to H.264/H.265 and mux the audio of `audio_from`; atomic on close.

    Leaving the `with` block or `close()` keeps what was written, even after an exception
    (a stopped job keeps its partial output); `abort()` discards. `warnings`: (locale key,
    params) pairs for the job log (codec fallback, audio not copied)."""

    def __init__(self, path: PathLike, fps: Union[Fraction, int, float, str], codec: str = "h264",
                 crf: int = 18, audio_from: Optional[PathLike] = None, pix_fmt: str = "yuv420p",
                 preset: str = "medium", trim_audio: bool = True, protect=None) -> None:
        self.path = Path(path)
        refuse_overwrite(self.path, audio_from, protect)  # sources are never replaced
        # a typed 23.976 or 29.97 means NTSC (snaps to 24000/1001...); odd rates to 1/1000
        self.fps = fps if isinstance(fps, Fraction) and fps.numerator <= 10**6 else \
            _snap_rate(Fraction(fps).limit_denominator(1000))
        if self.fps <= 0:
            raise ValueError("fps must be > 0")
        self.crf, self.pix_fmt, self.preset, self.trim_audio = int(crf), pix_fmt, preset, trim_audio
        self.audio_from, self.warnings = (Path(audio_from) if audio_from else None), []
        self.codec = CODECS.get(codec, codec)
        if not codec_available(self.codec):
            self._warn("media.codec_fallback", codec=self.codec, fallback=FALLBACK_CODEC)
            self.codec = FALLBACK_CODEC
        self._set_time_base()
        self._container = self._stream = self._vtmp = self._last_ticks = self._size = None
        self.frames_written, self.closed = 0, False

    def _set_time_base(self) -> None:
        # a tick dividing one frame exactly, fine enough for any time, in the codec's range
        n, cap = self.fps.numerator, (65535 if self.codec == FALLBACK_CODEC else 2**31 - 1)
        den = math.lcm(n, 90000)
        self.time_base = Fraction(1, den if den <= cap else n * max(1, cap // n))
        self._frame_ticks = int(1 / (self.fps * self.time_base))

    def _fit_container(self) -> None:
        """Switch to an encoder the container takes (H.264 cannot go into .webm: VP9 does)."""
        fitted = video_encoder_for(self._container.supported_codecs, self.codec, codec_available)
        if fitted != self.codec:
            self._warn("media.codec_for_container", codec=self.codec, container=self.path.suffix, chosen=fitted)
            self.codec = fitted
            self._set_time_base()

    def _warn(self, key: str, **params) -> None:
        self.warnings.append((key, {"path": self.path.name, **params}))
        log.warning("%s %s", key, params)

    def _fail(self, exc: Exception) -> StudioError:
        return StudioError("media.video_write_failed", path=self.path.name, error=str(exc))

    def _open(self, width: int, height: int) -> None:
        self._vtmp = temp_sibling(self.path, "video")
        try:
            self._container = open_output(self._vtmp, faststart=self.audio_from is None)
            self._fit_container()
            s = self._container.add_stream(self.codec, rate=self.fps)
            s.width, s.height, s.pix_fmt = width, height, self.pix_fmt
            s.time_base = s.codec_context.time_base = self.time_base
            s.codec_context.framerate = self.fps
            if self.codec in ("libx264", "libx265"):
                s.options = {"crf": str(self.crf), "preset": self.preset}
                if self.codec == "libx265":
                    s.options["x265-params"] = "log-level=error"
                    s.codec_tag = "hvc1"  # so Apple players accept H.265 in MP4
            elif self.codec == "libvpx-vp9":
                # constant quality; row threads and speed 4 keep CPU encodes usable
                s.options = {"crf": str(min(self.crf, 63)), "b": "0", "row-mt": "1", "cpu-used": "4"}
            else:  # mpeg4 fallback has no CRF: a generous bit rate (~0.25 bit a pixel)
                s.bit_rate = int(width * height * float(self.fps) * 0.25 * 18 / max(self.crf, 1))
            # tag BT.709 so decoders convert back with the matrix write() used
            s.codec_context.colorspace = av.video.reformatter.Colorspace.ITU709
            s.codec_context.color_range = av.video.reformatter.ColorRange.MPEG
            self._stream, self._size = s, (width, height)
        except (av.FFmpegError, ValueError) as exc:
            self._cleanup()
            raise self._fail(exc) from exc

    def write(self, frame: np.ndarray, pts_seconds: Optional[float] = None) -> None:
        """Add one RGB frame (uint8 HxWx3, or float in [0,1]); pts_seconds places it exactly."""
        if self.closed:
            raise RuntimeError("VideoWriter is closed")
        a = np.asarray(frame)
        if a.dtype != np.uint8:
            a = np.round(np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
        if a.ndim == 3 and a.shape[2] in (3, 4) and self.pix_fmt.startswith(("yuv420", "nv12")):
            # 4:2:0 needs even sizes: repeat the last row/column rather than fail
            a = np.pad(a, ((0, a.shape[0] % 2), (0, a.shape[1] % 2), (0, 0)), mode="edge")
        if self._container is None and a.ndim == 3 and a.shape[2] in (3, 4):
            self._open(a.shape[1], a.shape[0])
        if a.ndim != 3 or a.shape[2] not in (3, 4) or (a.shape[1], a.shape[0]) != self._size:
            want = f"{self._size[1]}x{self._size[0]}x3" if self._size else "HxWx3"
            raise StudioError("media.bad_frame", path=self.path.name, index=self.frames_written,
                              shape=tuple(a.shape), expected=want)
        if pts_seconds is None:
            ticks = 0 if self._last_ticks is None else self._last_ticks + self._frame_ticks
        else:
            ticks = round(Fraction(pts_seconds).limit_denominator(10**9) / self.time_base)
            if self._last_ticks is not None and ticks <= self._last_ticks:
                raise ValueError(f"pts {pts_seconds} s is not after the previous frame")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(a[..., :3]), format="rgb24")
        vf = vf.reformat(format=self.pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG")
        vf.pts, vf.time_base = ticks, self.time_base
        try:
            self._container.mux(self._stream.encode(vf))
        except av.FFmpegError as exc:
            raise self._fail(exc) from exc
        self._last_ticks = ticks
        self.frames_written += 1

    def write_frames_at(self, frames, timestamps) -> None:
        """Write frames at the given times (seconds), e.g. interpolated frames."""
        for f, t in zip(frames, timestamps, strict=True):
            self.write(f, pts_seconds=t)

    @property
    def video_end(self) -> float:
        """End time of the last written frame, seconds."""
        ticks = -self._frame_ticks if self._last_ticks is None else self._last_ticks
        return float((ticks + self._frame_ticks) * self.time_base)

    def close(self) -> Optional[Path]:
        """Flush, mux the audio, rename onto `path`. Returns the path (None if no frame)."""
        was_closed, self.closed = self.closed, True
        if was_closed or self._container is None:
            return self.path if self.path.exists() and self.frames_written else None
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._container = None
            if self.audio_from is None or not self._mux_audio():
                commit_file(self._vtmp, self.path)
                self._vtmp = None
            return self.path
        except av.FFmpegError as exc:
            raise self._fail(exc) from exc
        finally:
            self._cleanup()

    def _mux_audio(self) -> bool:
        """Video + `audio_from`'s audio into `path`; False when there is no audio to add."""
        end, out = (self.video_end if self.trim_audio else None), temp_sibling(self.path, "mux")
        try:
            for copy in (True, False):  # copy the packets; if the container refuses, AAC
                try:
                    if not remux(self._vtmp, self.audio_from, out, copy, end, self.fps):
                        return False  # the source has no sound: the video alone is the result
                    commit_file(out, self.path)
                    return True
                except (av.FFmpegError, ValueError, OSError) as exc:
                    if not copy:
                        self._warn("media.audio_copy_failed", error=str(exc))
                    log.info("audio into %s (copy=%s) failed: %s", self.path.name, copy, exc)
            return False
        finally:
            out.unlink(missing_ok=True)

    def abort(self) -> None:
        """Discard everything written; `path` is left as it was."""
        self.closed = True
        self._cleanup()

    def _cleanup(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):  # already failing; the temp file goes anyway
                self._container.close()
            self._container = None
        if self._vtmp is not None:
            self._vtmp.unlink(missing_ok=True)
            self._vtmp = None

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()  # partial outputs are kept, even when the block raised
