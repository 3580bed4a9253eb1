"""The threaded pipeline with a tiny real RIFE: cuts held, repeated frames dropped, Stop."""
from __future__ import annotations

import threading
from fractions import Fraction

import numpy as np
import pytest

from modules.frame_interpolation.engine import Interpolator
from modules.frame_interpolation.pipeline import VideoPipeline
from modules.frame_interpolation.scenes import SceneDetector, cut_score, thumbnail
from tests.frame_interpolation.helpers import TINY, TINY46, ListWriter, scene, tiny_net


def _clip():
    """6 frames of scene A then 6 of scene B, 24 fps."""
    frames = [scene(i) for i in range(6)] + [scene(i, kind=1) for i in range(6)]
    return [(f, i / 24) for i, f in enumerate(frames)], frames


def test_hard_cut_produces_no_blended_frame():
    clip, frames = _clip()
    assert cut_score(thumbnail(frames[5]), thumbnail(frames[6]), "hist") > 0.3
    assert cut_score(thumbnail(frames[1]), thumbnail(frames[2]), "hist") < 0.3
    writer = ListWriter()
    pipe = VideoPipeline(Interpolator(tiny_net()), Fraction(96), detector=SceneDetector("hist", 0.3))
    stats = pipe.run(iter(clip), writer, Fraction(12, 24), Fraction(24))
    out = writer.frames
    assert writer.closed and len(out) == 48 == stats.written == stats.expected
    assert stats.scene_cuts == 1 and stats.interpolated == 10 * 3
    # outputs 20..23 lie between source 5 (scene A) and 6 (scene B): frame 5 held, exactly
    for k in range(20, 24):
        assert np.array_equal(out[k], frames[5])
    assert np.array_equal(out[24], frames[6])
    # inside a scene the frames are new images (interpolated), not copies
    assert not any(np.array_equal(out[1], f) for f in frames)
    # without detection the same pair is morphed: the check above can fail
    writer2 = ListWriter()
    VideoPipeline(Interpolator(tiny_net()), Fraction(96)).run(iter(clip), writer2, Fraction(12, 24), Fraction(24))
    assert not np.array_equal(writer2.frames[22], frames[5])


@pytest.mark.parametrize("config", [TINY, TINY46], ids=["4.25", "4.6"])
def test_dedupe_interpolates_over_repeated_frames(config):
    # an animation "on twos": every frame shown twice
    frames = [scene(i // 2 * 2) for i in range(8)]
    writer = ListWriter()
    interp = Interpolator(tiny_net(config=config))
    assert interp.multiple == (64 if config.variant == "4.25" else 32)
    pipe = VideoPipeline(interp, Fraction(48), detector=SceneDetector("off", dedupe=True))
    stats = pipe.run(iter([(f, i / 24) for i, f in enumerate(frames)]), writer, Fraction(8, 24), Fraction(24))
    assert stats.dropped_duplicates == 4 and stats.written == 16
    # key frames now 2 source frames apart: 3 new frames per pair instead of one, no stutter
    assert stats.interpolated == 3 * 3
    assert np.array_equal(writer.frames[4], frames[2])


def test_stop_mid_video_closes_writer_with_fewer_frames():
    frames = [(scene(i), i / 24) for i in range(40)]
    writer = ListWriter()
    stop = threading.Event()

    def progress(done, total):
        if done >= 10:
            stop.set()

    pipe = VideoPipeline(Interpolator(tiny_net()), Fraction(48), should_stop=stop.is_set, on_progress=progress)
    stats = pipe.run(iter(frames), writer, Fraction(40, 24), Fraction(24))
    assert stats.stopped and writer.closed
    assert 10 <= len(writer.frames) < stats.expected == 80
    # the stop was seen within a frame: at most the queued frames were still written
    assert len(writer.frames) <= 10 + pipe.q_out.maxsize + 2


def test_thread_errors_reach_the_caller_and_still_close():
    class Boom(Exception):
        pass

    def frames():
        yield scene(0), 0.0
        yield scene(1), 1 / 24
        raise Boom("decoder failed")

    writer = ListWriter()
    pipe = VideoPipeline(Interpolator(tiny_net()), Fraction(48))
    try:
        pipe.run(frames(), writer, Fraction(3, 24), Fraction(24))
    except Boom:
        pass
    else:
        raise AssertionError("decoder error swallowed")
    assert writer.closed


def test_inference_error_stops_the_decoder_and_closes():
    class Failing:
        batch = 1

        def prepare(self, frame):
            return frame

        def interpolate(self, a, b, ts):
            raise MemoryError("out of memory")

    frames = [(scene(i), i / 24) for i in range(100)]  # far more than the queues hold
    writer = ListWriter()
    pipe = VideoPipeline(Failing(), Fraction(48), queue_size=2)
    try:
        pipe.run(iter(frames), writer, Fraction(100, 24), Fraction(24))
    except MemoryError:
        pass
    else:
        raise AssertionError("inference error swallowed")
    assert writer.closed and writer.frames and pipe.stats.source_frames < 100
    assert not any(t.name.startswith("rife-") and t.is_alive() for t in threading.enumerate())


def test_decode_inference_and_encode_overlap():
    """Event order, not timing: frames are written while decoding is still going on, and
    decoding runs ahead of inference (bounded by the queue)."""
    events: list[tuple[str, int]] = []
    lock = threading.Lock()

    def frames():
        for i in range(30):
            with lock:
                events.append(("read", i))
            yield scene(i), i / 24

    class Recorder(ListWriter):
        def write(self, frame, pts_seconds=None):
            with lock:
                events.append(("write", len(self.frames)))
            super().write(frame, pts_seconds)

    interp = Interpolator(tiny_net())
    original = interp.interpolate

    def interpolate(a, b, ts):
        with lock:
            events.append(("infer", 0))
        return original(a, b, ts)

    interp.interpolate = interpolate
    VideoPipeline(interp, Fraction(48), queue_size=4).run(frames(), Recorder(), Fraction(30, 24), Fraction(24))
    kinds = [k for k, _ in events]
    last_read = max(i for i, k in enumerate(kinds) if k == "read")
    first_write = kinds.index("write")
    first_infer = kinds.index("infer")
    assert first_write < last_read  # encoding started long before decoding ended
    assert sum(k == "read" for k in kinds[:first_infer]) >= 2  # the decoder ran ahead
    assert kinds.count("write") == 60 and kinds.count("infer") == 29


@pytest.mark.parametrize("method,threshold", [("hist", 0.3), ("ssim", 0.6)])
def test_fades_and_motion_are_not_cuts(method, threshold):
    base = scene(0, 96, 128).astype(np.float32)
    fade = [np.clip(base * k / 12, 0, 255).astype(np.uint8) for k in range(13)]
    fade += [np.clip(base * (1 - k / 12), 0, 255).astype(np.uint8) for k in range(13)]
    moving = [scene(i, 96, 128) for i in range(12)]
    for clip in (fade, moving):
        d = SceneDetector(method, threshold)
        assert not any(d.check(f).cut_before for f in clip)
    d = SceneDetector(method, threshold)
    assert [d.check(f).cut_before for f in (scene(0, 96, 128), scene(0, 96, 128, kind=1))] == [False, True]
