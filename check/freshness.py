"""Freshness of requests: Sequence Numbers advance, Timestamps move forward, nothing is replayed.

docs/wire-format.md 3.1: a sender numbers its requests to a receiver
increasing modulo 2^16 (RFC 6275 9.5.1), and a retransmission keeps its
number (section 9). Each kind of request is numbered on its own: an
implementation may well keep its PBUs' numbers apart from its LMA_HO_Reqs'
(one counter for both passes too). RFC 5213 5.5: the Timestamp option is the freshness
check, so a new request with a Timestamp not later than the previous one's
is stale. A request whose number does not advance outside the
retransmission window is a replay (or a sender that started its numbering
again).
"""

from __future__ import annotations

from dataclasses import dataclass

from lmaho_procedure import GIVE_UP_AFTER, INITIAL_TIMEOUT, Rule
from lmaho_wire.values import Timestamp

from .report import Address, Issue, Sighting

# A copy of a request may come up to GIVE_UP_AFTER after its first (1 + 2 + 4 + 8 s),
# and a live network's timers run a little late.
RESEND_WINDOW = GIVE_UP_AFTER + INITIAL_TIMEOUT


def seq_after(a: int, b: int) -> bool:
    """RFC 6275 9.5.1: a is after b modulo 2^16."""
    return a != b and (a - b) % 65536 < 32768


@dataclass(slots=True)
class _Request:
    sequence: int
    time: float  # of the first copy with this number
    frame: int
    timestamp: Timestamp | None


@dataclass(slots=True)
class _Pair:
    """One kind of request from one sender to one receiver: the last, and those still resendable."""

    last: _Request
    # Requests of the last RESEND_WINDOW seconds by number, oldest first: another request
    # may come between a request and its retransmission.
    recent: dict[int, _Request]


class FreshnessBook:
    """The requests from each sender to each receiver, and what the next one must show.

    Memory: per sender, receiver and kind of request, the last request and
    those of the last RESEND_WINDOW seconds.
    """

    def __init__(self) -> None:
        self._pairs: dict[tuple[Address, Address, str], _Pair] = {}

    def __len__(self) -> int:
        return len(self._pairs)

    def check(self, seen: Sighting) -> Issue | None:
        """``seen`` is a request: an issue if it is stale; the book moves on to it."""
        if seen.sequence is None:
            return None
        request = _Request(seen.sequence, seen.time, seen.frame, seen.timestamp)
        key = (seen.src, seen.dst, seen.message)
        pair = self._pairs.get(key)
        if pair is None:
            self._pairs[key] = _Pair(request, {seen.sequence: request})
            return None
        recent = pair.recent
        while recent:
            oldest = next(iter(recent.values()))
            if seen.time - oldest.time <= RESEND_WINDOW:
                break
            del recent[oldest.sequence]
        if seen.sequence in recent:
            return None  # a retransmission
        last = pair.last
        issue: Issue | None = None
        if seen.sequence == last.sequence:
            issue = self._issue(
                Rule.REPLAY,
                f"{_what(seen)} repeats the Sequence Number of frame {last.frame}, "
                f"{seen.time - last.time:.3f} s later, after its retransmissions were over: "
                "a replayed request",
                seen,
                last,
            )
        elif not seq_after(seen.sequence, last.sequence):
            issue = self._issue(
                Rule.REPLAY,
                f"{_what(seen)} does not advance past seq {last.sequence} (frame {last.frame}): "
                "a replayed request, or a sender that started its numbering again",
                seen,
                last,
            )
        elif (
            seen.timestamp is not None
            and last.timestamp is not None
            and seen.timestamp <= last.timestamp
        ):
            went = "repeats" if seen.timestamp == last.timestamp else "goes back from"
            issue = self._issue(
                Rule.TIMESTAMP,
                f"{_what(seen)}: its Timestamp {seen.timestamp} {went} {last.timestamp} of "
                f"seq {last.sequence} (frame {last.frame}); a new request needs a later one",
                seen,
                last,
            )
        # Move on even from a stale request: a sender that restarted is reported once.
        pair.last = recent[seen.sequence] = request
        return issue

    @staticmethod
    def _issue(rule: Rule, what: str, seen: Sighting, last: _Request) -> Issue:
        return Issue("violation", rule, what, (last.frame, seen.frame), None, seen.mn_id)


def _what(seen: Sighting) -> str:
    """The request an issue is about (formatted only then: addresses are slow to format)."""
    return f"{seen.message} seq={seen.sequence} from {seen.src} to {seen.dst}"
