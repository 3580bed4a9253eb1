"""The timestamp planner: exact frame counts, durations and timesteps for every mode."""
from __future__ import annotations

from fractions import Fraction

import pytest

from modules.frame_interpolation.jobs import plan_output
from modules.frame_interpolation.params import InterpolateVideoParams, parse_fps
from modules.frame_interpolation.timeline import TimelinePlanner, multiplier_steps, output_count, plan_timeline


def _instants_ok(steps, pts, rate):
    """Every output frame shows its exact instant: ta + t * (tb - ta) == k / rate."""
    for s in steps:
        want = pts[0] + Fraction(s.out) / rate
        if s.kind == "interp":
            got = pts[s.a] + Fraction(s.t) * (pts[s.b] - pts[s.a])
            assert abs(float(got - want)) < 1e-9, s
            assert pts[s.a] < want < pts[s.b]
        elif s.kind == "src":
            assert abs(float(pts[s.a] - want)) < 1e-9, s


@pytest.mark.parametrize("multi", [2, 4, 5])
def test_multiplier_counts_and_timesteps(multi):
    steps = multiplier_steps(10, multi)
    assert len(steps) == 10 * multi  # duration kept: n frames at f -> n*multi at multi*f
    assert [s.out for s in steps] == list(range(10 * multi))
    srcs = [s for s in steps if s.kind == "src"]
    assert [s.a for s in srcs] == list(range(10)) and [s.out for s in srcs] == [i * multi for i in range(10)]
    inter = [s for s in steps if s.kind == "interp"]
    assert len(inter) == 9 * (multi - 1)
    assert sorted({round(s.t, 9) for s in inter}) == [round(i / multi, 9) for i in range(1, multi)]
    assert all(s.b == s.a + 1 for s in inter)
    assert [s.kind for s in steps[-(multi - 1):]] == ["dup"] * (multi - 1)  # last frame held to the end


def test_24_to_60_exact():
    pts = [Fraction(i, 24) for i in range(48)]  # 2 s
    steps = plan_timeline([float(p) for p in pts], 60, 2)
    assert len(steps) == 120 and output_count(Fraction(2), Fraction(60)) == 120
    _instants_ok(steps, pts, Fraction(60))
    # 60/24 = 2.5: sources land on every 5th output frame, on even source frames
    assert [s.out for s in steps if s.kind == "src"][:4] == [0, 5, 10, 15]
    assert [round(s.t, 6) for s in steps[:5]] == [0.0, 0.4, 0.8, 0.2, 0.6]


def test_ntsc_rates_and_vfr():
    f = Fraction(24000, 1001)
    pts = [i / f for i in range(48)]
    fps_out = parse_fps("59.94")
    assert fps_out == Fraction(60000, 1001)
    steps = plan_timeline([float(p) for p in pts], fps_out, 48 / f)
    assert len(steps) == 120  # 23.976 -> 59.94 is exactly 2.5x
    _instants_ok(steps, pts, fps_out)
    # variable frame rate: irregular stamps, output on a regular 30 fps grid
    vfr = [Fraction(0), Fraction(1, 30), Fraction(1, 10), Fraction(1, 8), Fraction(1, 3), Fraction(2, 5)]
    steps = plan_timeline(vfr, 30, Fraction(13, 30))
    assert len(steps) == 13
    _instants_ok(steps, vfr, Fraction(30))
    assert steps[7].kind == "interp" and steps[7].a == 3 and steps[7].b == 4


def test_slow_motion_stretches_time():
    p = InterpolateVideoParams(input="x.mp4", mode="slowmo", slowmo=4)
    fps_out, slow, tag = plan_output(p, Fraction(24))
    assert fps_out == 24 and slow == 4 and tag == "slowmo4x"
    steps = plan_timeline([Fraction(i, 24) for i in range(10)], fps_out, Fraction(10, 24), slowmo=slow)
    assert len(steps) == 40  # 4x the frames at the same rate: 4x the duration
    assert sorted({round(s.t, 6) for s in steps if s.kind == "interp"}) == [0.25, 0.5, 0.75]
    p2 = InterpolateVideoParams(input="x.mp4", mode="fps", target_fps="60000/1001")
    assert plan_output(p2, Fraction(24000, 1001))[0] == Fraction(60000, 1001)
    assert plan_output(InterpolateVideoParams(input="x", multiplier=4), Fraction(25))[0] == 100


def test_scene_cut_holds_and_bad_stamps_are_dropped():
    steps = plan_timeline([Fraction(i, 24) for i in range(8)], 96, Fraction(8, 24), cuts=[4])
    across = [s for s in steps if s.a == 3]
    assert [s.kind for s in across] == ["src", "dup", "dup", "dup"]
    assert all(s.b != 4 for s in steps if s.kind == "interp" and s.a == 3)
    assert sum(s.kind == "interp" for s in steps) == 6 * 3
    planner = TimelinePlanner(48)
    planner.feed(0, 0.0)
    assert planner.feed(1, 1 / 24)
    assert not planner.accepts(1 / 48) and planner.feed(2, 1 / 48) == []


def test_fps_parsing_and_validation():
    assert parse_fps("60") == 60 and parse_fps("29.97") == Fraction(30000, 1001)
    assert parse_fps(" 120000/1001 ") == Fraction(120000, 1001)
    for bad in ("0", "-5", "abc", "1/0", "5000"):
        with pytest.raises(ValueError):
            parse_fps(bad)
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="target_fps"):
        InterpolateVideoParams(input="a.mp4", target_fps="fast")
    with pytest.raises(ValidationError, match="multiplier"):
        InterpolateVideoParams(input="a.mp4", multiplier=1)
    with pytest.raises(ValidationError, match="scale"):
        InterpolateVideoParams(input="a.mp4", scale=0.3)
