"""Video IO with PyAV: exact timestamps and frame rates in, H.264/H.265 with the source audio out.

`VideoReader(path)` iterates `(rgb_uint8 HxWx3, pts_seconds)`; timestamps are the truth
(`pts * time_base`), so variable-frame-rate sources keep their timing. `.fps` is the
average rate as an exact Fraction (23.976 is 24000/1001), `.frame_count`, `.timestamps`
and `.is_vfr` come from one demux pass (no decoding).

`VideoWriter(path, fps, codec="h264"|"hevc", crf=18, audio_from=src)` encodes frames to a
hidden temp file, then on `close()` muxes the video with the audio of `audio_from`
(copied as is when the container accepts the codec, else re-encoded to AAC) into a second
temp file and renames it onto `path`. A writer closed early (the user pressed Stop) still
gives a playable file, its audio cut at the last frame. `write(frame, pts_seconds=...)`
places a frame at an exact time (frame interpolation, VFR output).
"""
from __future__ import annotations

import heapq
import logging
import math
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Union

import av
import numpy as np

from core.errors import StudioError

log = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]

CODECS = {"h264": "libx264", "hevc": "libx265", "h265": "libx265", "vp9": "libvpx-vp9",
          "mpeg4": "mpeg4"}
FALLBACK_CODEC = "mpeg4"
# audio codecs copied as is into MP4/MOV: the ones browsers and common players decode;
# anything else (PCM, Vorbis, WMA...) is re-encoded to AAC so the file plays everywhere
MP4_AUDIO_COPY = frozenset({"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"})


def codec_available(name: str) -> bool:
    """True when PyAV's bundled ffmpeg has this encoder."""
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:  # noqa: BLE001 - UnknownCodecError and friends
        return False


def _open_input(path: PathLike):
    p = Path(path)
    if not p.is_file():
        raise StudioError("media.not_found", path=p.name)
    if p.stat().st_size == 0:
        raise StudioError("media.empty", path=p.name)
    try:
        return av.open(str(p))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise StudioError("media.video_open_failed", path=p.name, error=str(exc)) from exc


def _seconds(value: Optional[int], time_base) -> Optional[float]:
    return None if value is None or time_base is None else float(value * time_base)


class VideoReader:
    """Decode a video's first video stream: frames as RGB uint8 with exact timestamps."""

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self._container = _open_input(self.path)
        if not self._container.streams.video:
            self._container.close()
            raise StudioError("media.no_video_stream", path=self.path.name)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"  # frame + slice threads: several x faster
        cc = self._stream.codec_context
        self.width: int = cc.width
        self.height: int = cc.height
        self.time_base: Fraction = self._stream.time_base
        self.codec: str = cc.name
        audio = self._container.streams.audio
        self.has_audio: bool = bool(audio)
        self.audio_codec: Optional[str] = audio[0].codec_context.name if audio else None
        self.start_time: float = _seconds(self._stream.start_time, self.time_base) or 0.0
        self._scan_cache: Optional[list[int]] = None
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        self._meta_fps = Fraction(rate) if rate else None

    # -- metadata from one demux pass (packets only, no decoding) ---------------------
    def _scan(self) -> list[int]:
        if self._scan_cache is None:
            pts: list[int] = []
            with av.open(str(self.path)) as c:
                s = c.streams.video[0]
                for pkt in c.demux(s):
                    if pkt.size and pkt.pts is not None:
                        pts.append(pkt.pts)
            self._scan_cache = sorted(pts)
        return self._scan_cache

    @property
    def timestamps(self) -> list[float]:
        """Presentation time of every frame, seconds, in display order."""
        return [float(p * self.time_base) for p in self._scan()]

    @property
    def frame_count(self) -> int:
        n = self._stream.frames
        return int(n) if n and n > 0 else len(self._scan())

    @property
    def fps(self) -> Fraction:
        """Average frame rate as an exact fraction (24000/1001, not 23.976)."""
        # containers' own rate is exact for CFR; for VFR some (MKV) report a nominal rate,
        # so the average comes from the timestamps: (frames - 1) / (last - first)
        if self._meta_fps and not self.is_vfr:
            return self._meta_fps
        ts = self._scan()
        if len(ts) > 1 and ts[-1] > ts[0]:
            return Fraction(len(ts) - 1) / ((ts[-1] - ts[0]) * self.time_base)
        return self._meta_fps or Fraction(25)

    @property
    def duration(self) -> float:
        """Seconds of video: stream duration, else container duration, else frames / fps."""
        d = _seconds(self._stream.duration, self.time_base)
        if d:
            return d
        if self._container.duration:
            return self._container.duration / 1_000_000
        return float(self.frame_count / self.fps) if self.fps else 0.0

    @property
    def audio_duration(self) -> Optional[float]:
        if not self.has_audio:
            return None
        a = self._container.streams.audio[0]
        return _seconds(a.duration, a.time_base) or self.duration

    @property
    def is_vfr(self) -> bool:
        """True when frame intervals vary by more than one tick and 1% (not CFR)."""
        ts = self._scan()
        if len(ts) < 3:
            return False
        d = np.diff(np.asarray(ts, dtype=np.int64))
        return bool(d.max() - d.min() > max(1, 0.01 * float(np.median(d))))

    # -- decoding --------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        return self.frames()

    def frames(self, start: float = 0.0) -> Iterator[tuple[np.ndarray, float]]:
        """Yield (rgb uint8 HxWx3, pts seconds) from `start` seconds on."""
        c = self._container
        if start > 0 or self._decoded_once:  # a second pass starts over from the top
            c.seek(int(start / self.time_base) + (self._stream.start_time or 0),
                   stream=self._stream, backward=True)
        self._decoded_once = True
        index = 0
        try:
            for frame in c.decode(self._stream):
                t = float(frame.pts * self.time_base) if frame.pts is not None else \
                    self.start_time + float(index / self.fps)
                index += 1
                if t + 1e-9 < start:
                    continue
                yield frame.to_ndarray(format="rgb24"), t
        except av.FFmpegError as exc:
            raise StudioError("media.video_decode_failed", path=self.path.name, frame=index,
                              error=str(exc)) from exc

    _decoded_once = False

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _temp_name(final: Path, tag: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{final.stem[:60]}.", suffix=f".{tag}{final.suffix}",
                                dir=final.parent)
    os.close(fd)
    return Path(name)


class VideoWriter:
    """Encode RGB frames to H.264/H.265 and mux the audio of `audio_from`; atomic on close."""

    def __init__(self, path: PathLike, fps: Union[Fraction, int, float, str], codec: str = "h264",
                 crf: int = 18, audio_from: Optional[PathLike] = None, pix_fmt: str = "yuv420p",
                 preset: str = "medium", trim_audio: bool = True) -> None:
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1_000_000) if not isinstance(fps, Fraction) else fps
        if self.fps <= 0:
            raise ValueError("fps must be > 0")
        self.crf, self.pix_fmt, self.preset, self.trim_audio = int(crf), pix_fmt, preset, trim_audio
        self.audio_from = Path(audio_from) if audio_from else None
        self.warnings: list[tuple[str, dict]] = []  # (locale key, params) for the job log
        wanted = CODECS.get(codec, codec)
        if not codec_available(wanted):
            self._warn("media.codec_fallback", codec=wanted, fallback=FALLBACK_CODEC)
            wanted = FALLBACK_CODEC
        self.codec = wanted
        # a tick that divides one frame exactly and is fine enough for arbitrary times
        # (MPEG-4 part 2 only takes time bases up to 1/65535)
        den = math.lcm(self.fps.numerator, 90000)
        if wanted == FALLBACK_CODEC:
            den = self.fps.numerator * max(1, 65535 // self.fps.numerator)
        self.time_base = Fraction(1, den)
        self._frame_ticks = int(1 / (self.fps * self.time_base))
        self._container = None
        self._stream = None
        self._vtmp: Optional[Path] = None
        self._last_ticks: Optional[int] = None
        self._size: Optional[tuple[int, int]] = None
        self.frames_written = 0
        self.closed = False

    def _warn(self, key: str, **params) -> None:
        params.setdefault("path", self.path.name)
        self.warnings.append((key, params))
        log.warning("%s %s", key, params)

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._vtmp = _temp_name(self.path, "video")
        try:
            self._container = av.open(str(self._vtmp), "w")
            s = self._container.add_stream(self.codec, rate=self.fps)
            s.width, s.height, s.pix_fmt = width, height, self.pix_fmt
            s.time_base = self.time_base
            s.codec_context.time_base = self.time_base
            s.codec_context.framerate = self.fps
            if self.codec in ("libx264", "libx265"):
                s.options = {"crf": str(self.crf), "preset": self.preset}
                if self.codec == "libx265":
                    s.options["x265-params"] = "log-level=error"
                    s.codec_tag = "hvc1"  # so Apple players accept H.265 in MP4
            elif self.codec == "libvpx-vp9":
                s.options = {"crf": str(self.crf), "b": "0"}
            else:  # mpeg4 fallback has no CRF: a generous bit rate (~0.25 bit a pixel)
                s.bit_rate = int(width * height * float(self.fps) * 0.25 * (18 / max(self.crf, 1)))
            # tag BT.709 so decoders convert back with the matrix we used
            s.codec_context.colorspace = av.video.reformatter.Colorspace.ITU709
            s.codec_context.color_range = av.video.reformatter.ColorRange.MPEG
            self._stream = s
        except (av.FFmpegError, ValueError) as exc:
            self._cleanup()
            raise StudioError("media.video_write_failed", path=self.path.name, error=str(exc)) from exc
        self._size = (width, height)

    def write(self, frame: np.ndarray, pts_seconds: Optional[float] = None) -> None:
        """Add one RGB frame (uint8 HxWx3, or float in [0,1]); pts_seconds places it exactly."""
        if self.closed:
            raise RuntimeError("VideoWriter is closed")
        a = np.asarray(frame)
        if a.dtype != np.uint8:
            a = np.round(np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise StudioError("media.bad_frame", path=self.path.name, index=self.frames_written,
                              shape=tuple(a.shape), expected="HxWx3")
        a = a[..., :3]
        if self.pix_fmt.startswith(("yuv420", "yuv422", "nv12")) and (a.shape[0] % 2 or a.shape[1] % 2):
            # 4:2:0 needs even sizes: repeat the last row/column rather than fail
            a = np.pad(a, ((0, a.shape[0] % 2), (0, a.shape[1] % 2), (0, 0)), mode="edge")
        if self._container is None:
            self._open(a.shape[1], a.shape[0])
        if (a.shape[1], a.shape[0]) != self._size:
            raise StudioError("media.bad_frame", path=self.path.name, index=self.frames_written,
                              shape=tuple(a.shape), expected=f"{self._size[1]}x{self._size[0]}x3")
        if pts_seconds is None:
            ticks = 0 if self._last_ticks is None else self._last_ticks + self._frame_ticks
        else:
            ticks = round(Fraction(pts_seconds).limit_denominator(10**9) / self.time_base)
            if self._last_ticks is not None and ticks <= self._last_ticks:
                raise ValueError(f"pts {pts_seconds} s is not after the previous frame")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")
        vf = vf.reformat(format=self.pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG")
        vf.pts, vf.time_base = ticks, self.time_base
        try:
            for pkt in self._stream.encode(vf):
                self._container.mux(pkt)
        except av.FFmpegError as exc:
            raise StudioError("media.video_write_failed", path=self.path.name, error=str(exc)) from exc
        self._last_ticks = ticks
        self.frames_written += 1

    def write_frames_at(self, frames, timestamps) -> None:
        """Write frames at the given times (seconds), e.g. interpolated frames."""
        for f, t in zip(frames, timestamps, strict=True):
            self.write(f, pts_seconds=t)

    @property
    def video_end(self) -> float:
        """End time of the last written frame, seconds."""
        if self._last_ticks is None:
            return 0.0
        return float((self._last_ticks + self._frame_ticks) * self.time_base)

    def close(self) -> Optional[Path]:
        """Flush, mux the audio, rename onto `path`. Returns the path (None if no frame)."""
        if self.closed:
            return self.path if self.path.exists() else None
        self.closed = True
        if self._container is None:
            return None
        try:
            for pkt in self._stream.encode(None):
                self._container.mux(pkt)
            self._container.close()
            self._container = None
            if self.audio_from is None:
                os.replace(self._vtmp, self.path)
                self._vtmp = None
                return self.path
            return _mux_audio(self)
        except av.FFmpegError as exc:
            raise StudioError("media.video_write_failed", path=self.path.name, error=str(exc)) from exc
        finally:
            self._cleanup()

    def abort(self) -> None:
        """Discard everything written; `path` is left as it was."""
        self.closed = True
        self._cleanup()

    def _cleanup(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - already failing; the temp file goes anyway
                pass
            self._container = None
        if self._vtmp is not None:
            self._vtmp.unlink(missing_ok=True)
            self._vtmp = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # keep what was written even when the job stopped or failed: partial outputs are kept
        self.close()


def _packets(container, stream, end: Optional[float]):
    """(time, packet) of one stream in decode order, stopping at `end` seconds."""
    for pkt in container.demux(stream):
        if pkt.dts is None:
            continue
        t = float(pkt.dts * pkt.time_base)
        if end is not None and pkt.pts is not None and float(pkt.pts * pkt.time_base) >= end:
            break
        yield t, pkt


def _aac_packets(container, stream, out_stream, end: Optional[float]):
    """Decode the source audio and re-encode it to AAC (when it cannot be copied)."""
    rate = out_stream.codec_context.sample_rate
    samples = None
    for frame in container.decode(stream):
        if end is not None and frame.time is not None and frame.time >= end:
            break
        if samples is None:  # keep the source's start offset, in samples
            samples = round((frame.time or 0.0) * rate)
        frame.pts, frame.time_base = samples, Fraction(1, rate)
        samples += frame.samples
        for pkt in out_stream.encode(frame):
            yield float(pkt.dts * pkt.time_base), pkt
    for pkt in out_stream.encode(None):
        yield float(pkt.dts * pkt.time_base), pkt


def _remux(video: Path, audio: Path, out: Path, copy: bool, end: Optional[float]) -> None:
    with av.open(str(video)) as vin, av.open(str(audio)) as ain, av.open(str(out), "w") as oc:
        vs = vin.streams.video[0]
        a_in = ain.streams.audio[0]
        v_out = oc.add_stream_from_template(vs)
        if copy:
            name = a_in.codec_context.name
            mp4 = out.suffix.lower() in (".mp4", ".m4v", ".mov")
            if name not in oc.supported_codecs or (mp4 and name not in MP4_AUDIO_COPY):
                raise ValueError(f"{a_in.codec_context.name} cannot go in {out.suffix}")
            a_out = oc.add_stream_from_template(a_in)
            audio_pk = _packets(ain, a_in, end)
        else:
            cc = a_in.codec_context
            a_out = oc.add_stream("aac", rate=cc.sample_rate or 48000)
            n = cc.layout.nb_channels if cc.layout else 2
            # a plain default layout per channel count (sources may say "1 channels")
            a_out.layout = {1: "mono", 2: "stereo"}.get(n) or (av.AudioLayout(n).name
                                                                if n <= 8 else "stereo")
            a_out.bit_rate = 192_000
            audio_pk = _aac_packets(ain, a_in, a_out, end)
        # interleave by time so players read both streams smoothly
        merged = heapq.merge(((t, 0, p) for t, p in _packets(vin, vs, None)),
                             ((t, 1, p) for t, p in audio_pk), key=lambda x: (x[0], x[1]))
        for _, which, pkt in merged:
            pkt.stream = v_out if which == 0 else a_out
            oc.mux(pkt)


def _mux_audio(w: VideoWriter) -> Path:
    """Put `w.audio_from`'s audio next to the encoded video; no sound is a warning, not a failure."""
    src = w.audio_from
    try:
        with av.open(str(src)) as probe:
            has_audio = bool(probe.streams.audio)
    except (av.FFmpegError, OSError) as exc:
        w._warn("media.audio_copy_failed", error=str(exc))
        has_audio = False
    if not has_audio:
        os.replace(w._vtmp, w.path)
        w._vtmp = None
        return w.path
    end = w.video_end if w.trim_audio else None
    out = _temp_name(w.path, "mux")
    try:
        try:
            _remux(w._vtmp, src, out, copy=True, end=end)
        except (av.FFmpegError, ValueError) as exc:
            log.info("audio copy into %s impossible (%s); re-encoding to AAC", w.path.name, exc)
            _remux(w._vtmp, src, out, copy=False, end=end)
        os.replace(out, w.path)
    except (av.FFmpegError, ValueError, OSError) as exc:
        w._warn("media.audio_copy_failed", error=str(exc))
        os.replace(w._vtmp, w.path)
        w._vtmp = None
    finally:
        out.unlink(missing_ok=True)
    return w.path
