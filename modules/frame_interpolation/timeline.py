"""Exact output timestamps: which source frames (and which timestep) make each output frame.

Output frame k is shown at ``k / fps_out`` seconds; in source time that is
``origin + k / (fps_out * slowmo)`` (``slowmo`` = 1 keeps the clip's duration, 4 plays it
four times slower). Everything is `fractions.Fraction`, so 24 -> 48 lands exactly on the
source frames, and 23.976 (24000/1001) or variable-frame-rate sources get frames at the
exact instants, not at "every n-th frame" approximations.

For an output instant T between key frames a (at ta) and b (at tb):
* T == ta                      -> the source frame a itself ("src");
* a scene cut between a and b  -> frame a held ("dup"): nothing is morphed across a cut;
* otherwise                    -> interpolate a->b at t = (T - ta) / (tb - ta) ("interp").
After the last key frame the last frame is held until the clip's end, so the output lasts
exactly as long as the source (audio stays in sync). Output frame count:
``round(duration * fps_out * slowmo)``.

Containers store times on a grid (WebM/MKV: 1 ms ticks), so a 30 fps source frame sits at
0.033 s, not 1/30 s. With ``tolerance`` (seconds, half a tick of the source's time base)
an output instant that close to a source frame counts as that frame, which is then passed
through instead of being synthesised at t = 0.01.

The planner is incremental (`feed` per key frame, then `finish`) so the video pipeline can
stream; `plan_timeline` runs it over a whole list for tests and small inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable

EPS = 1e-6  # relative timestep under which an instant counts as "on" a source frame


def to_fraction(x: float | int | Fraction, max_den: int = 1_000_000) -> Fraction:
    """Seconds as an exact Fraction (floats from containers are snapped to time-base grids)."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, int):
        return Fraction(x)
    return Fraction(x).limit_denominator(max_den)


@dataclass(frozen=True)
class Step:
    kind: str  # "src" | "interp" | "dup"
    out: int  # output frame index
    a: int  # key frame before (or at) the instant
    b: int  # key frame after (== a for src/dup)
    t: float  # timestep between a and b (0 for src/dup)


def output_count(duration: Fraction, fps_out: Fraction, slowmo: Fraction = Fraction(1)) -> int:
    return max(1, round(to_fraction(duration) * to_fraction(fps_out) * to_fraction(slowmo)))


def time_base_tolerance(time_base: Fraction | float | None) -> Fraction:
    """Half a tick of a stream's time base: how far its timestamps may be from the real instant."""
    return to_fraction(time_base) / 2 if time_base else Fraction(0)


class TimelinePlanner:
    def __init__(self, fps_out: Fraction | float, slowmo: Fraction | float = 1,
                 tolerance: Fraction | float = 0) -> None:
        self.fps_out = to_fraction(fps_out)
        self.slowmo = to_fraction(slowmo)
        if self.fps_out <= 0 or self.slowmo <= 0:
            raise ValueError("fps_out and slowmo must be positive")
        # never half an output frame or more: then two instants would snap to one source frame
        self.tol = min(to_fraction(tolerance), 1 / (4 * self.fps_out * self.slowmo))
        self.rate = self.fps_out * self.slowmo  # output frames per source second
        self.origin: Fraction | None = None
        self.next_out = 0
        self.prev: tuple[int, Fraction] | None = None  # (key index, pts)
        self.cuts = 0

    def instant(self, k: int) -> Fraction:
        """Source time of output frame k."""
        return (self.origin or Fraction(0)) + Fraction(k) / self.rate

    def accepts(self, pts: float | Fraction) -> bool:
        """False for a non-increasing timestamp (broken VFR streams): drop that frame."""
        return self.prev is None or to_fraction(pts) > self.prev[1]

    def feed(self, key: int, pts: float | Fraction, cut_before: bool = False) -> list[Step]:
        """Add key frame `key` at `pts`; returns the steps now fully decided (all before pts)."""
        pts = to_fraction(pts)
        if not self.accepts(pts):
            return []
        if self.prev is None:
            self.origin = pts
            self.prev = (key, pts)
            return []
        a, ta = self.prev
        steps: list[Step] = []
        span = pts - ta
        cut = bool(cut_before)
        if cut:
            self.cuts += 1
        near = max(self.tol, EPS * span)  # "on" a source frame: within the time base's rounding
        while self.instant(self.next_out) < pts + self.tol:
            at = self.instant(self.next_out)
            if at - ta <= near:
                steps.append(Step("src", self.next_out, a, a, 0.0))
            elif pts - at <= near:  # on the new frame (checked before the cut: it is past it)
                steps.append(Step("src", self.next_out, key, key, 0.0))
            elif cut:
                steps.append(Step("dup", self.next_out, a, a, 0.0))
            else:
                steps.append(Step("interp", self.next_out, a, key, float((at - ta) / span)))
            self.next_out += 1
        self.prev = (key, pts)
        return steps

    def finish(self, end: float | Fraction) -> list[Step]:
        """Hold the last key frame until `end` (source time); total = round(duration * rate)."""
        if self.prev is None:
            return []
        a, ta = self.prev
        total = output_count(to_fraction(end) - self.origin, self.fps_out, self.slowmo)
        steps: list[Step] = []
        while self.next_out < total:
            off = abs(self.instant(self.next_out) - ta)
            on = off <= self.tol or float(off * self.rate) <= EPS
            steps.append(Step("src" if on else "dup", self.next_out, a, a, 0.0))
            self.next_out += 1
        return steps


def plan_timeline(pts: Iterable[float | Fraction], fps_out: Fraction | float, end: float | Fraction,
                  cuts: Iterable[int] = (), slowmo: Fraction | float = 1,
                  tolerance: Fraction | float = 0) -> list[Step]:
    """Whole-list planner: `cuts` holds key indices i where a cut lies between i-1 and i."""
    planner = TimelinePlanner(fps_out, slowmo, tolerance)
    cut_set = set(cuts)
    steps: list[Step] = []
    for i, p in enumerate(pts):
        steps += planner.feed(i, p, i in cut_set)
    return steps + planner.finish(end)


def multiplier_steps(n_frames: int, multi: int) -> list[Step]:
    """Convenience: the plan of an n-frame CFR clip at `multi` x its rate (frames = n * multi)."""
    return plan_timeline(range(n_frames), multi, n_frames)
