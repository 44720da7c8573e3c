"""Clocks for simulated time: the replay provider asks one what time it is.

``SimClock`` runs sim time faster than real time (a whole round in minutes); tests use
``ManualClock`` and move time by hand, so nothing waits on a wall clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SimClock", "SystemClock", "as_utc"]


class Clock(Protocol):
    """Where simulated time stands now."""

    def now(self) -> datetime:
        """The current time: timezone-aware, in UTC."""
        ...


def as_utc(when: datetime) -> datetime:
    """``when`` in UTC; ValueError for a naive datetime."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware: {when!r}")
    return when.astimezone(UTC)


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimClock:
    """Sim time = ``start`` + real time elapsed since creation × ``speed``.

    Real time is read from ``time.monotonic`` (never jumps with the wall clock); pass
    ``monotonic`` to drive it from elsewhere.
    """

    def __init__(
        self,
        start: datetime,
        speed: float = 1.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0: {speed!r}")
        self._start = as_utc(start)
        self._speed = speed
        self._monotonic = monotonic
        self._origin = monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        elapsed = (self._monotonic() - self._origin) * self._speed
        return self._start + timedelta(seconds=elapsed)


class ManualClock:
    """A clock that moves only when told to; safe to move from another thread."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` (never backwards); returns the new time."""
        if delta < timedelta(0):
            raise ValueError(f"a clock does not go backwards: {delta}")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (any direction, for tests that revisit a moment)."""
        with self._lock:
            self._now = as_utc(when)
            return self._now
