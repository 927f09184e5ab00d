"""When each recorded line is due (`Schedule`), and what time its ticks carry (`Retimer`).

A line is due at its recorded time scaled by ``--speed``, on a monotonic clock.

The schedule is anchored once, at the first line that has a recorded time:
a line recorded ``d`` seconds after that one is due ``d / speed`` seconds
after it was sent. Every due time is computed from that anchor, never from
the previous send, so an oversleep (or a slow broker) delays one line and is
made up on the next: the error does not add up over a long replay.

Pure: the caller passes the monotonic clock's reading and sleeps.
"""

from __future__ import annotations

import math


class Schedule:
    """The replay's schedule. ``speed``: 1 = as recorded, 2 = twice as fast, 0 = no waiting."""

    def __init__(self, speed: float) -> None:
        if not (speed >= 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a finite number >= 0, got {speed!r}")
        self.speed = speed
        self.anchor: tuple[float, float] | None = None  # (recorded time, clock reading) of line 1

    def due(self, recorded: float) -> float | None:
        """Clock reading at which a line recorded at ``recorded`` is due (None before the anchor)."""
        if self.anchor is None:
            return None
        first, start = self.anchor
        return start + (recorded - first) / self.speed

    def wait(self, recorded: float | None, now: float) -> float:
        """Seconds to wait before sending a line recorded at ``recorded``, the clock reading ``now``.

        0 for a line without recorded time, at speed 0, for the first recorded
        line (which anchors the schedule), and for a line already late
        (recorded earlier than one sent before it, or behind schedule).
        """
        if recorded is None or self.speed == 0:
            return 0.0
        due = self.due(recorded)
        if due is None:
            self.anchor = (recorded, now)
            return 0.0
        return max(0.0, due - now)


class Retimer:
    """``--shift-to-now``: recorded times moved onto the replay's wall clock, as a live feed's.

    Anchored, like the `Schedule`, at the first line with a recorded time,
    recorded time ``r`` becomes ``wall0 + (r - r0) / speed``: the wall-clock
    time the schedule sends it at (at speed 0, ``wall0 + (r - r0)``: shifted,
    not scaled). Why: a worker closes a candle window by the wall clock once
    it is ``grace`` seconds past its end, and a recording's windows are all
    long past, so in a paced replay of recorded times every window would close
    before its later ticks arrive (they would be late, in no candle).
    """

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.anchor: tuple[float, float] | None = None  # (recorded time, wall clock) of line 1

    def start(self, recorded: float, wall: float) -> None:
        """Anchor at the first recorded line (later calls change nothing)."""
        if self.anchor is None:
            self.anchor = (recorded, wall)

    def shift(self, recorded: float) -> float:
        """The time a tick recorded at ``recorded`` carries (call `start` first)."""
        assert self.anchor is not None, "Retimer.start was not called"
        first, wall = self.anchor
        return wall + (recorded - first) / (self.speed or 1.0)
