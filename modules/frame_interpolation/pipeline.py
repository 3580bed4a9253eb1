"""The streaming video pipeline: decode, inference and encode overlap in three threads.

    decoder thread ──(bounded queue of key frames)──> inference (caller's thread)
    inference ──(bounded queue of output frames)──> encoder thread

* The decoder reads ``(frame, pts)``, runs scene-cut / dedupe detection on a thumbnail
  (`scenes.SceneDetector`) and queues the frames to keep.
* The inference loop feeds key frames to `timeline.TimelinePlanner` and renders its
  steps: a source frame, a held frame at a cut, or RIFE at an exact timestep (all
  timesteps of one pair as a batch, each frame's features encoded once).
* The encoder writes frames, reports progress in frames (ETA from the job) and closes the
  writer in every case, so a Stop or an error leaves a playable (shorter) video.

Queues are bounded, so memory stays flat whatever the clip length; every blocking put/get
polls a stop flag, so a Stop is seen within one frame. The reader and writer are passed in
(anything iterable as ``(frame, pts)`` and anything with ``write``/``close``), which keeps
this file free of container details and lets the bench swap them.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Iterable

import numpy as np

from modules.frame_interpolation.scenes import SceneDetector
from modules.frame_interpolation.timeline import Step, TimelinePlanner, output_count, to_fraction

_END = object()
POLL_S = 0.1


@dataclass
class _Key:
    frame: np.ndarray
    pts: Fraction
    cut_before: bool


@dataclass
class _Failure:
    exc: BaseException


@dataclass
class PipelineStats:
    source_frames: int = 0
    dropped_duplicates: int = 0
    scene_cuts: int = 0
    interpolated: int = 0
    written: int = 0
    expected: int = 0
    stopped: bool = False
    seconds: float = 0.0
    cut_scores: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "cut_scores"}
        d["fps"] = round(self.written / self.seconds, 3) if self.seconds else 0.0
        return d


class _Flag:
    """Stop flag shared by the three threads (job stop, or a failure in any of them)."""

    def __init__(self, outer: Callable[[], bool]) -> None:
        self.event = threading.Event()
        self.outer = outer

    def __call__(self) -> bool:
        if not self.event.is_set() and self.outer():
            self.event.set()
        return self.event.is_set()


def _put(q: queue.Queue, item: Any, stop: _Flag) -> bool:
    while True:
        try:
            q.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            if stop():
                return False


def _get(q: queue.Queue, stop: _Flag) -> Any:
    while True:
        try:
            return q.get(timeout=POLL_S)
        except queue.Empty:
            if stop():
                return _END


class VideoPipeline:
    """Run once: `run(frames, writer)`; parameters of the output are fixed at construction."""

    def __init__(self, interpolator, fps_out: Fraction, slowmo: Fraction = Fraction(1),
                 detector: SceneDetector | None = None, should_stop: Callable[[], bool] = lambda: False,
                 on_progress: Callable[[int, int], None] | None = None,
                 on_frame: Callable[[np.ndarray, int], None] | None = None, queue_size: int = 8,
                 tolerance: Fraction | float = 0) -> None:
        self.interp = interpolator
        self.fps_out = to_fraction(fps_out)
        self.slowmo = to_fraction(slowmo)
        self.tolerance = to_fraction(tolerance)  # seconds: see timeline.time_base_tolerance
        self.detector = detector or SceneDetector("off")
        self.stop = _Flag(should_stop)
        self.on_progress = on_progress
        self.on_frame = on_frame  # called with interpolated frames (previews)
        self.q_in: queue.Queue = queue.Queue(maxsize=queue_size)
        self.q_out: queue.Queue = queue.Queue(maxsize=queue_size * 4)
        self.stats = PipelineStats()
        self.errors: list[BaseException] = []
        self._last_pts: Fraction | None = None
        self.origin = Fraction(0)  # pts of the first source frame (slow motion starts at 0)

    # -- decoder thread -----------------------------------------------------------
    def _decode(self, frames: Iterable[tuple[np.ndarray, Any]]) -> None:
        try:
            for frame, pts in frames:
                if self.stop():
                    break
                self.stats.source_frames += 1
                self._last_pts = to_fraction(pts)
                verdict = self.detector.check(frame)
                if not verdict.keep:
                    self.stats.dropped_duplicates += 1
                    continue
                if not _put(self.q_in, _Key(frame, self._last_pts, verdict.cut_before), self.stop):
                    break
        except BaseException as exc:  # noqa: BLE001 - forwarded to the caller's thread
            self.errors.append(exc)
            self.stop.event.set()
        finally:
            _put(self.q_in, _END, self.stop)  # when stopping, the consumer sees the flag anyway

    # -- encoder thread -------------------------------------------------------------
    def _encode(self, writer) -> None:
        try:
            while True:
                item = _get(self.q_out, _Flag(lambda: False))  # drain everything queued
                if item is _END:
                    break
                frame, k = item
                # exact instant on the output clock, offset like the source's first frame
                writer.write(frame, pts_seconds=float(self.origin + Fraction(k) / self.fps_out))
                self.stats.written += 1
                if self.on_progress is not None:
                    self.on_progress(self.stats.written, max(self.stats.expected, self.stats.written))
        except BaseException as exc:  # noqa: BLE001
            self.errors.append(exc)
            self.stop.event.set()
            while self.q_out.get() is not _END:  # unblock the producer
                pass
        finally:
            try:
                writer.close()  # finalises the container: a partial video stays playable
            except BaseException as exc:  # noqa: BLE001
                self.errors.append(exc)

    # -- inference (caller's thread) --------------------------------------------------
    def _emit(self, frame: np.ndarray, k: int) -> bool:
        return _put(self.q_out, (frame, k), self.stop)

    def _render(self, steps: list[Step], keys: dict[int, dict]) -> bool:
        i = 0
        while i < len(steps):
            if self.stop():
                return False
            s = steps[i]
            if s.kind != "interp":
                if not self._emit(keys[s.a]["frame"], s.out):
                    return False
                i += 1
                continue
            j = i  # all consecutive timesteps of the same pair: one batched call
            while j < len(steps) and steps[j].kind == "interp" and (steps[j].a, steps[j].b) == (s.a, s.b):
                j += 1
            a, b = keys[s.a], keys[s.b]
            for k in (a, b):
                if k.get("prep") is None:
                    k["prep"] = self.interp.prepare(k["frame"])
            for n in range(i, j, self.interp.batch):  # stop is checked between batches
                if self.stop():
                    return False
                chunk = steps[n:min(j, n + self.interp.batch)]
                outs = self.interp.interpolate(a["prep"], b["prep"], [st.t for st in chunk])
                for st, out in zip(chunk, outs):
                    self.stats.interpolated += 1
                    if self.on_frame is not None:
                        self.on_frame(out, self.stats.interpolated)
                    if not self._emit(out, st.out):
                        return False
            i = j
        return True

    def run(self, frames: Iterable[tuple[np.ndarray, Any]], writer, expected_duration: Fraction | float | None,
            nominal_fps: Fraction | float) -> PipelineStats:
        """Interpolate `frames` into `writer`; returns stats (raises the first thread error)."""
        started = time.time()
        if expected_duration:
            self.stats.expected = output_count(to_fraction(expected_duration), self.fps_out, self.slowmo)
        decoder = threading.Thread(target=self._decode, args=(frames,), name="rife-decode", daemon=True)
        encoder = threading.Thread(target=self._encode, args=(writer,), name="rife-encode", daemon=True)
        decoder.start()
        encoder.start()
        planner = TimelinePlanner(self.fps_out, self.slowmo, self.tolerance)
        keys: dict[int, dict] = {}
        index = 0
        ok = True
        try:
            while ok:
                item = _get(self.q_in, self.stop)
                if item is _END:
                    break
                if not planner.accepts(item.pts):
                    continue
                if index == 0 and self.slowmo == 1:
                    self.origin = item.pts
                steps = planner.feed(index, item.pts, item.cut_before)
                keys[index] = {"frame": item.frame, "prep": None}
                keys.pop(index - 2, None)  # only the previous key is still needed
                ok = self._render(steps, keys)
                index += 1
            decoder.join()
            if ok and not self.stop() and not self.errors and self._last_pts is not None:
                end = self._last_pts + 1 / to_fraction(nominal_fps)  # the last frame's own duration
                ok = self._render(planner.finish(end), keys)
        except BaseException:  # inference failed (e.g. out of memory): wind the threads down
            self.stop.event.set()
            raise
        finally:
            self.stats.scene_cuts = planner.cuts
            self.stats.stopped = self.stop() and not self.errors
            if self.errors:
                self.stop.event.set()
            _put(self.q_out, _END, _Flag(lambda: False))
            encoder.join()
            decoder.join()  # never leave it decoding while the caller closes the reader
            self.stats.seconds = time.time() - started
        if self.errors:
            raise self.errors[0]
        return self.stats
