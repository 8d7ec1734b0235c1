"""Reassembling fragmented IPv6 packets of a capture (RFC 8200 4.5, RFC 5722).

Fragments are grouped by the link type and outer (tunnel) headers they were
found in, and the source, destination and Identification of the header they
fragment. When the last piece arrives the datagram is rebuilt as RFC 8200 4.5
says: the first fragment's unfragmentable part, its Next Header set to the
Fragment header's, followed by the fragmentable parts in order; the result is
a frame like any other, walked again from its link layer.

Bounds, so that a flood of fragments costs time and memory in proportion to
the input and never more than the limits below:

* a datagram incomplete after ``timeout`` seconds of capture time (60 s, RFC
  8200's reassembly time) is given up;
* at most ``max_datagrams`` datagrams and ``max_octets`` octets are held;
  beyond either, the oldest datagram is given up;
* overlapping fragments give up their whole datagram (RFC 5722), and later
  fragments of it are dropped until it would have timed out; exact duplicates
  (a capture taken at two points) are ignored.

Every datagram given up is handed back as a :class:`Abandoned` so that the
tools can report it.
"""

from __future__ import annotations

import bisect
import struct
from collections import OrderedDict
from dataclasses import dataclass, field

from .capture import Frame
from .packet import FRAGMENT_HEADER_LENGTH, IPV6_HEADER_LENGTH, IPv6Payload

REASSEMBLY_TIMEOUT = 60.0  # seconds, RFC 8200 4.5
MAX_DATAGRAMS = 4096  # datagrams in reassembly at once
MAX_OCTETS = 16 * 1024 * 1024  # octets of fragments held at once
MAX_DATAGRAM = 65_535  # the largest Payload Length a reassembled packet may have

# (link type, outer headers' addresses, source, destination, Identification)
DatagramKey = tuple[int, bytes, bytes, bytes, int]


@dataclass(slots=True)
class _Datagram:
    first_seen: float
    first_frame: Frame
    first_payload: IPv6Payload
    next_header: int  # the Fragment header's: what the fragmentable part starts with
    frames: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # sorted fragment offsets, in octets
    pieces: dict[int, bytes] = field(default_factory=dict)  # offset -> fragmentable octets
    head: bytes | None = None  # the unfragmentable part, from the fragment at offset 0
    head_payload: IPv6Payload | None = None
    total: int | None = None  # fragmentable length, known from the last fragment
    received: int = 0  # fragmentable octets held; no overlaps, so == total means whole
    held: int = 0  # octets held, for the memory bound
    overlapped: bool = False


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A datagram given up: why, its fragments' frames, and the first fragment seen."""

    reason: str
    frames: tuple[int, ...]
    frame: Frame
    payload: IPv6Payload
    next_header: int


@dataclass(frozen=True, slots=True)
class Reassembled:
    """A complete datagram: the rebuilt frame (numbered as the fragment that completed it)."""

    frame: Frame
    frames: tuple[int, ...]


class Reassembler:
    """Feed it the fragments of a capture in order; it hands back complete datagrams."""

    def __init__(
        self,
        *,
        timeout: float = REASSEMBLY_TIMEOUT,
        max_datagrams: int = MAX_DATAGRAMS,
        max_octets: int = MAX_OCTETS,
    ) -> None:
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self.max_octets = max_octets
        self._datagrams: OrderedDict[DatagramKey, _Datagram] = OrderedDict()
        # Datagrams given up for overlaps: their later fragments are dropped too.
        self._discarded: OrderedDict[DatagramKey, float] = OrderedDict()
        self._octets = 0
        self.abandoned: list[Abandoned] = []  # given up since the caller last took them
        # Whether anything is held (a datagram, or an overlapped one's key): when not,
        # expire has nothing to do, and the caller of every frame may skip it.
        self.holding = False

    @property
    def held_octets(self) -> int:
        return self._octets

    @property
    def held_datagrams(self) -> int:
        return len(self._datagrams)

    def expire(self, now: float) -> None:
        """Give up the datagrams older than the timeout at capture time ``now``."""
        while self._datagrams:
            key, datagram = next(iter(self._datagrams.items()))
            if now - datagram.first_seen < self.timeout:
                break
            self._abandon(key, f"incomplete after {self.timeout:g} s (RFC 8200 4.5)")
        while self._discarded:
            key, since = next(iter(self._discarded.items()))
            if now - since < self.timeout:
                break
            del self._discarded[key]
        self.holding = bool(self._datagrams or self._discarded)

    def finish(self) -> None:
        """The capture is over: give up every datagram still incomplete."""
        while self._datagrams:
            self._abandon(next(iter(self._datagrams)), "incomplete at the end of the capture")
        self._discarded.clear()
        self.holding = False

    def take_abandoned(self) -> list[Abandoned]:
        abandoned, self.abandoned = self.abandoned, []
        return abandoned

    def add(self, frame: Frame, payload: IPv6Payload) -> Reassembled | str | None:
        """One fragment (``payload.proto`` is 44, at ``payload.offset``).

        Returns the reassembled datagram when this fragment completes it, a
        reason when the fragment itself is unusable, else None (held or dropped).
        """
        try:
            return self._add(frame, payload)
        finally:
            self.holding = bool(self._datagrams or self._discarded)

    def _add(self, frame: Frame, payload: IPv6Payload) -> Reassembled | str | None:
        self.expire(frame.time)
        data = frame.data
        pos = payload.offset
        next_header, _, offset_flags, identification = struct.unpack_from("!BBHI", data, pos)
        start = offset_flags & 0xFFF8
        more = bool(offset_flags & 1)
        piece = data[pos + FRAGMENT_HEADER_LENGTH : payload.end]
        if more and len(piece) % 8:
            return f"fragment of {len(piece)} octets, not a multiple of 8, with M set (RFC 8200)"
        if not piece and more:
            return "empty fragment with M set"
        # The Fragment header's own IPv6 header: its position tells the enclosing hops.
        inner = payload.hops[-1]
        header_bytes = data[inner.offset + 8 : inner.offset + 40]
        unfragmentable = pos - inner.offset - IPV6_HEADER_LENGTH
        if unfragmentable + start + len(piece) > MAX_DATAGRAM:
            return f"fragment ends at {start + len(piece)} octets, past a packet's 65535 (RFC 8200)"
        outer = b"".join(data[h.offset + 8 : h.offset + 40] for h in payload.hops[:-1])
        key: DatagramKey = (
            frame.linktype,
            outer,
            header_bytes[:16],
            header_bytes[16:],
            identification,
        )
        if key in self._discarded:
            return None
        datagram = self._datagrams.get(key)
        if datagram is None:
            # Held for the report if it never completes: its octets count too.
            datagram = _Datagram(frame.time, frame, payload, next_header, held=len(data))
            self._datagrams[key] = datagram
            self._octets += len(data)
        # RFC 5722: any overlap discards the datagram; an exact duplicate is a copy.
        at = bisect.bisect_left(datagram.starts, start)
        if at < len(datagram.starts) and datagram.starts[at] == start:
            if datagram.pieces[start] == piece and (more or datagram.total == start + len(piece)):
                datagram.frames.append(frame.number)
                return None
            self._overlap(key, datagram, frame)
            return None
        before = datagram.starts[at - 1] if at else None
        if before is not None and before + len(datagram.pieces[before]) > start:
            self._overlap(key, datagram, frame)
            return None
        if at < len(datagram.starts) and start + len(piece) > datagram.starts[at]:
            self._overlap(key, datagram, frame)
            return None
        if not more:
            if at < len(datagram.starts) or (
                datagram.total is not None and datagram.total != start + len(piece)
            ):
                self._overlap(key, datagram, frame)
                return None
            datagram.total = start + len(piece)
        elif datagram.total is not None and start + len(piece) > datagram.total:
            self._overlap(key, datagram, frame)
            return None
        datagram.starts.insert(at, start)
        datagram.pieces[start] = piece
        datagram.frames.append(frame.number)
        held = len(piece) + (pos if start == 0 else 0)
        if start == 0:
            datagram.head = data[:pos]
            datagram.head_payload = payload
        datagram.held += held
        datagram.received += len(piece)
        self._octets += held
        complete = self._complete(key, datagram, frame)
        if complete is not None:
            return complete
        while len(self._datagrams) > self.max_datagrams or self._octets > self.max_octets:
            oldest = next(iter(self._datagrams))
            self._abandon(oldest, "given up: too many fragments held (the reassembly limit)")
        return None

    def _complete(self, key: DatagramKey, datagram: _Datagram, frame: Frame) -> Reassembled | None:
        if datagram.received != datagram.total or datagram.head_payload is None:
            return None
        self._forget(key, datagram)
        assert datagram.head is not None
        head = bytearray(datagram.head)
        head_payload = datagram.head_payload
        # The last unfragmentable header names what follows the Fragment header instead.
        head[head_payload.next_header_at] = datagram.next_header
        body = b"".join(datagram.pieces[start] for start in datagram.starts)
        end = len(head) + len(body)
        for hop in head_payload.hops:
            struct.pack_into("!H", head, hop.offset + 4, end - hop.offset - IPV6_HEADER_LENGTH)
        rebuilt = Frame(frame.number, frame.time, frame.linktype, bytes(head) + body)
        return Reassembled(rebuilt, tuple(datagram.frames))

    def _overlap(self, key: DatagramKey, datagram: _Datagram, frame: Frame) -> None:
        datagram.frames.append(frame.number)
        self._abandon(key, "overlapping fragments, the whole datagram discarded (RFC 5722)")
        self._discarded[key] = frame.time
        while len(self._discarded) > self.max_datagrams:
            self._discarded.popitem(last=False)

    def _forget(self, key: DatagramKey, datagram: _Datagram) -> None:
        del self._datagrams[key]
        self._octets -= datagram.held

    def _abandon(self, key: DatagramKey, reason: str) -> None:
        datagram = self._datagrams[key]
        self._forget(key, datagram)
        self.abandoned.append(
            Abandoned(
                reason,
                tuple(datagram.frames),
                datagram.first_frame,
                datagram.first_payload,
                datagram.next_header,
            )
        )
