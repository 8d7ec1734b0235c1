"""The entities' scheduler on the wall clock.

:class:`RealTimeScheduler` is the virtual :class:`lmaho_entities.Scheduler`
(same ``now``, ``at``, ``after``, ``Timer.cancel``, ``timestamp``) whose
epoch is the moment it was made: ``now`` counts real microseconds since
then, so RFC 5213 Timestamp options carry the real time. An event loop
calls :meth:`run_due` whenever it wakes (a packet arrived, or
:meth:`timeout` ran out), which first moves ``now`` to the present.
"""

from __future__ import annotations

import datetime as dt
import heapq
import time

from lmaho_entities import Scheduler

NANOSECONDS_PER_MICROSECOND = 1_000


class RealTimeScheduler(Scheduler):
    """Timers on the monotonic clock, time stamps on the wall clock of the start."""

    now: int

    def __init__(self) -> None:
        # Both clocks read back to back: the wall clock only names the epoch,
        # intervals come from the monotonic one (immune to clock steps).
        super().__init__(dt.datetime.now(dt.UTC))
        self._start_ns = time.monotonic_ns()

    def elapsed(self) -> int:
        """Microseconds since the epoch, now."""
        return (time.monotonic_ns() - self._start_ns) // NANOSECONDS_PER_MICROSECOND

    def advance(self) -> int:
        """Move ``now`` to the present (it never goes back) and return it."""
        self.now = max(self.now, self.elapsed())
        return self.now

    def next_due(self) -> int | None:
        """When the earliest timer still pending is due (cancelled ones are dropped)."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
            self._cancelled -= 1
        return heap[0][0] if heap else None

    def timeout(self) -> float | None:
        """Seconds until the next timer is due (0 when one is late), None when none is set."""
        due = self.next_due()
        if due is None:
            return None
        return max(0, due - self.elapsed()) / 1_000_000

    def run_due(self) -> int:
        """Run every timer due by now, each with ``now`` at the present; the count run."""
        ran = 0
        heap = self._heap
        while True:
            due = self.next_due()
            if due is None or due > self.advance():
                return ran
            _, _, timer = heapq.heappop(heap)
            timer.callback(*timer.args)
            ran += 1
