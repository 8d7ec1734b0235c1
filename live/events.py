"""An agent's log: one line per event, for people or (``--json``) for machines.

Every JSON line has ``time`` (unix seconds), ``agent``, ``role`` and
``event``; the other keys depend on the event (docs/agent.md, Events).
Drops are reported at most once a second per reason, with how many there
were since the last report, so a flood cannot flood the log too.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any, TextIO

#: Lines held before they are written even without a flush.
MAX_PENDING = 256
#: Seconds between two ``dropped`` lines of the same reason.
DROP_REPORT_INTERVAL = 1.0

Value = str | int | float | bool | None | list[Any] | dict[str, Any]


class EventLog:
    """Writes events to ``stream``; ``clock`` gives unix seconds (swappable in tests).

    A stream that fails (its reader closed the pipe) is dropped: the agent
    goes on without a log rather than die of it. Lines are written by
    :meth:`flush`, which the agent calls before it waits for the next packet:
    a burst of events costs one write, not one per line.
    """

    def __init__(
        self,
        stream: TextIO | None,
        *,
        agent: str,
        role: str,
        as_json: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stream = stream
        self.agent = agent
        self.role = role
        self.as_json = as_json
        self.clock = clock
        self._drops: dict[str, tuple[float, int]] = {}
        self._pending: list[str] = []

    def emit(self, event: str, **fields: Value) -> None:
        now = self.clock()
        if self.as_json:
            record: dict[str, Value] = {
                "time": round(now, 6),
                "agent": self.agent,
                "role": self.role,
                "event": event,
            }
            record.update(fields)
            line = json.dumps(record, separators=(",", ":"))
        else:
            stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%H:%M:%S.%f")
            details = " ".join(f"{k}={_text(v)}" for k, v in fields.items() if v is not None)
            line = f"{stamp} {self.agent} {event} {details}".rstrip()
        if self.stream is not None:
            self._pending.append(line + "\n")
            if len(self._pending) >= MAX_PENDING:
                self.flush()

    def flush(self) -> None:
        """Write the lines emitted since the last flush."""
        lines, self._pending = "".join(self._pending), []
        if self.stream is None or not lines:
            return
        try:
            self.stream.write(lines)
            self.stream.flush()
        except (OSError, ValueError):
            # Whoever read the log went away: the agent keeps serving, silently.
            self.stream = None

    def dropped(self, reason: str, src: str) -> None:
        """Count a dropped packet; report the count at most once a second per reason."""
        now = self.clock()
        last, count = self._drops.get(reason, (0.0, 0))
        count += 1
        if now - last >= DROP_REPORT_INTERVAL:
            self.emit("dropped", reason=reason, src=src, count=count)
            self._drops[reason] = (now, 0)
        else:
            self._drops[reason] = (last, count)


def _text(value: Value) -> str:
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
