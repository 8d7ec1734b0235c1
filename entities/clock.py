"""A discrete-event scheduler on a virtual clock.

Time is an integer count of microseconds since the run's epoch: integers keep
event order exact and reproducible, and a microsecond is what a pcap
timestamp resolves. Events wait in a heap of ``(time, seq, timer)``; ``seq``
breaks ties in the order events were scheduled, so equal times never compare
timers and the run is deterministic.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Callable
from typing import Any

from lmaho_wire.values import Timestamp

MICROSECONDS_PER_SECOND = 1_000_000

#: The virtual clock's default epoch: the date of draft-lim-netext-lma-handover-01.
DEFAULT_EPOCH = dt.datetime(2009, 10, 26, tzinfo=dt.UTC)


def microseconds(seconds: float) -> int:
    """Seconds as whole microseconds (rounded to the nearest)."""
    return round(seconds * MICROSECONDS_PER_SECOND)


def seconds(us: int) -> float:
    return us / MICROSECONDS_PER_SECOND


def epoch_microseconds(epoch: dt.datetime) -> int:
    """Microseconds from 1970-01-01T00:00:00Z to ``epoch`` (naive datetimes are UTC)."""
    if epoch.tzinfo is None:
        epoch = epoch.replace(tzinfo=dt.UTC)
    delta = epoch - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * MICROSECONDS_PER_SECOND + delta.microseconds


def _cancelled_call(*_: Any) -> None:
    """What a cancelled timer holds instead of its callback (never called)."""


class Timer:
    """A scheduled call; :meth:`cancel` makes the scheduler skip it."""

    __slots__ = ("args", "callback", "cancelled", "scheduler", "when")

    def __init__(
        self,
        when: int,
        callback: Callable[..., Any],
        args: tuple[Any, ...],
        scheduler: Scheduler | None = None,
    ) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False
        self.scheduler = scheduler

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        # A far timer (a binding refresh an hour ahead) may wait long in the heap: what it
        # would have called is let go now, and the scheduler drops such timers in bulk.
        self.callback = _cancelled_call
        self.args = ()
        if self.scheduler is not None:
            self.scheduler.note_cancelled()

    def __repr__(self) -> str:
        state = " cancelled" if self.cancelled else ""
        return f"<Timer at {self.when} us {getattr(self.callback, '__qualname__', '?')}{state}>"


class Scheduler:
    """The event loop of a run: a virtual clock and the heap of pending timers.

    ``now`` is virtual time in microseconds since ``epoch`` (a UTC datetime);
    :meth:`wall_microseconds` and :meth:`timestamp` turn it into absolute time
    for capture records and RFC 5213 Timestamp options.
    """

    def __init__(self, epoch: dt.datetime = DEFAULT_EPOCH) -> None:
        self.epoch = epoch
        self.epoch_us = epoch_microseconds(epoch)
        self.now = 0
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = 0
        self._cancelled = 0

    def at(self, when: int, callback: Callable[..., Any], *args: Any) -> Timer:
        """Call ``callback(*args)`` at virtual time ``when`` (never in the past)."""
        if when < self.now:
            raise ValueError(f"cannot schedule at {when} us, the clock is at {self.now} us")
        timer = Timer(when, callback, args, self)
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, timer))
        return timer

    def after(self, delay: int, callback: Callable[..., Any], *args: Any) -> Timer:
        """Call ``callback(*args)`` ``delay`` (>= 0) microseconds from now."""
        # The hottest call of a run (every packet is a delivery): no detour through at().
        when = self.now + delay
        timer = Timer(when, callback, args, self)
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, timer))
        return timer

    def note_cancelled(self) -> None:
        """A timer of this heap was cancelled: rebuild the heap once they are half of it."""
        self._cancelled += 1
        heap = self._heap
        if self._cancelled > 64 and 2 * self._cancelled > len(heap):
            heap[:] = [entry for entry in heap if not entry[2].cancelled]
            heapq.heapify(heap)
            self._cancelled = 0

    @property
    def pending(self) -> int:
        """Timers in the heap, cancelled ones included until they come due."""
        return len(self._heap)

    def run(self, until: int | None = None) -> int:
        """Run events in time order until none is left (or the next is after ``until``).

        Returns the number of callbacks run.
        """
        heap = self._heap
        pop = heapq.heappop
        ran = 0
        while heap:
            when = heap[0][0]
            if until is not None and when > until:
                self.now = until
                break
            _, _, timer = pop(heap)
            if timer.cancelled:
                self._cancelled -= 1
                continue
            self.now = when
            timer.callback(*timer.args)
            ran += 1
        return ran

    def wall_microseconds(self, us: int | None = None) -> int:
        """Absolute time (microseconds since 1970) of virtual time ``us`` (default: now)."""
        return self.epoch_us + (self.now if us is None else us)

    def timestamp(self) -> Timestamp:
        """Now as an RFC 5213 Timestamp (seconds, 1/65536 fractions), rounded down."""
        wall = self.epoch_us + self.now
        whole, part = divmod(wall, MICROSECONDS_PER_SECOND)
        return Timestamp(whole, part * 65536 // MICROSECONDS_PER_SECOND)
