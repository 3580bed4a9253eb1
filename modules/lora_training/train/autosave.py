"""Time-based training-state saves: a SIGKILL (OOM killer, power cut) loses at most
`save_every_minutes` of training, whatever the epoch length.

Periodic saves by step or epoch depend on the data set: once per epoch was every few steps
on a 10-image set and every few hours on a large one. A clock (monotonic, so a system
clock change cannot trigger or delay it) starts when training starts and restarts at every
state saved for any reason (step, epoch, timed, stop); the trainer asks `due()` after each
optimizer step, so a state is always at a step boundary.

`now` is module-level so tests replace it with a fake clock instead of sleeping.
"""
from __future__ import annotations

import time
from datetime import datetime

now = time.monotonic


class SaveClock:
    """Says when the next timed state is due; `minutes` <= 0 turns timed saves off."""

    def __init__(self, minutes: float) -> None:
        self.seconds = max(0.0, float(minutes)) * 60.0
        self.last = now()
        self.last_step: int | None = None
        self.last_wall: float | None = None  # time.time() of the last save, for the UI

    def due(self) -> bool:
        return self.seconds > 0 and now() - self.last >= self.seconds

    def minutes_since(self) -> float:
        return (now() - self.last) / 60.0

    def saved(self, step: int) -> None:
        self.last, self.last_step, self.last_wall = now(), step, time.time()


def clock_time(wall: float) -> str:
    """A wall-clock time as the user reads it in the log (local time, seconds)."""
    return datetime.fromtimestamp(wall).strftime("%H:%M:%S")
