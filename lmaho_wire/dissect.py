"""From capture frames to decoded Mobility Header messages (shared by decode, check, ladder)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from .capture import Frame, read_frames
from .codec import Message, default_codec
from .errors import IncompleteDatagram, MalformedPacket, SnapshotCut, Truncated
from .fragments import Abandoned, Reassembled, Reassembler
from .packet import (
    IPPROTO_FRAGMENT,
    IPV6_HEADER_LENGTH,
    MOBILITY_PROTOCOLS,
    IPv6Payload,
    find_ipv6,
)


class FrameRecord(NamedTuple):
    """One frame: its IPv6 payload if any, and the Mobility Header message or the error.

    ``fragments`` lists the frames of a reassembled datagram (the record's own
    frame is the fragment that completed it), or of a datagram given up (then
    ``error`` is an :class:`IncompleteDatagram` and the frame is its first
    fragment's, reported once more). A named tuple: one is made per frame.
    """

    frame: Frame
    payload: IPv6Payload | None
    message: Message | None = None
    error: MalformedPacket | None = None
    fragments: tuple[int, ...] = ()

    @property
    def is_mobility(self) -> bool:
        if isinstance(self.error, IncompleteDatagram):
            return self.error.next_header in MOBILITY_PROTOCOLS
        return self.message is not None or (
            self.error is not None
            and (self.payload is None or self.payload.proto in MOBILITY_PROTOCOLS)
        )

    @property
    def is_fragment(self) -> bool:
        """A fragment held for reassembly (or dropped): a piece of another record."""
        return self.payload is not None and self.payload.proto == IPPROTO_FRAGMENT

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"frame": self.frame.number, "time": round(self.frame.time, 6)}
        if self.payload is not None:
            out["src"] = str(self.payload.src)
            out["dst"] = str(self.payload.dst)
            if self.payload.tunnelled:
                out["tunnel"] = [
                    {"src": str(h.src), "dst": str(h.dst)} for h in self.payload.hops[:-1]
                ]
        if self.fragments:
            out["fragments"] = list(self.fragments)
        if self.message is not None:
            out.update(self.message.to_json())
        if self.error is not None:
            out["error"] = {"what": self.error.what, "offset": self.error.offset}
            if isinstance(self.error, SnapshotCut):
                out["error"]["snapshot"] = {"kept": self.error.kept, "length": self.error.length}
        return out


def analyse_frame(frame: Frame, *, strict: bool = False) -> FrameRecord:
    """Locate and decode the Mobility Header of one frame, never raising for bad bytes.

    A fragment comes back as it is (``is_fragment``); :func:`analyse_frames`
    reassembles them. Of a frame the capture did not keep whole, a message is
    decoded as far as it was kept, and what the cut takes away is a
    :class:`SnapshotCut`, not a malformation.
    """
    data = frame.data
    cut = frame.uncaptured
    try:
        payload = find_ipv6(data, frame.linktype)
    except MalformedPacket as e:
        if cut and isinstance(e, Truncated):
            e = snapshot_cut(frame, e)
        return _new_tuple(FrameRecord, (frame, None, None, e, ()))
    if payload is None or payload.proto not in MOBILITY_PROTOCOLS:
        return _new_tuple(FrameRecord, (frame, payload, None, None, ()))
    room = _uncaptured_room(frame, payload) if cut else 0
    try:
        message = default_codec().decode(
            data[payload.offset : payload.end],
            payload.pseudo_src,
            payload.pseudo_dst,
            strict=strict,
            partial=room,
        )
    except MalformedPacket as e:
        # Offsets in errors count from the start of the Mobility Header.
        if room and isinstance(e, Truncated):
            e = snapshot_cut(frame, e)
        return _new_tuple(FrameRecord, (frame, payload, None, e, ()))
    return _new_tuple(FrameRecord, (frame, payload, message, None, ()))


# Records made without the named tuple's Python-level __new__: one is made per frame.
_new_tuple = tuple.__new__


def _uncaptured_room(frame: Frame, payload: IPv6Payload) -> int:
    """Octets the wire had for ``payload`` past those the capture kept: none when the
    IPv6 Payload Length ends it within them; else up to that length or the frame's end."""
    data = frame.data
    if payload.end != len(data):
        return 0
    inner = payload.hops[-1].offset
    declared = int.from_bytes(data[inner + 4 : inner + 6], "big")
    wire_end = len(data) + frame.uncaptured
    if declared:
        wire_end = min(wire_end, inner + IPV6_HEADER_LENGTH + declared)
    return max(wire_end - len(data), 0)


def snapshot_cut(frame: Frame, error: MalformedPacket) -> SnapshotCut:
    """``error`` of a frame the capture cut, said as what it is: a capture's limit."""
    kept = len(frame.data)
    length = kept + frame.uncaptured
    return SnapshotCut(
        f"{error.what}: the capture kept {kept} of the frame's {length} octets "
        "(its snapshot length)",
        error.offset,
        kept,
        length,
    )


def analyse_frames(
    frames: Iterable[Frame], *, strict: bool = False, reassembler: Reassembler | None = None
) -> Iterator[FrameRecord]:
    """Every frame analysed, fragments reassembled (see :mod:`lmaho_wire.fragments`).

    One record per frame: a fragment that completes a datagram stands for the
    whole of it, the others are records with ``is_fragment``. A datagram given
    up adds a record of its own (an :class:`IncompleteDatagram` error) when it
    is given up, and at the end.
    """
    if reassembler is None:
        reassembler = Reassembler()
    for frame in frames:
        record = analyse_frame(frame, strict=strict)
        payload = record.payload
        if payload is None or payload.proto != IPPROTO_FRAGMENT:
            if reassembler.holding:
                reassembler.expire(frame.time)
        elif frame.uncaptured:
            # A piece missing from a fragment would corrupt the datagram: not reassembled.
            cut = Truncated("fragment of an IPv6 datagram, not reassembled", payload.offset)
            record = FrameRecord(frame, payload, error=snapshot_cut(frame, cut))
        else:
            outcome = reassembler.add(frame, payload)
            if isinstance(outcome, Reassembled):
                whole = analyse_frame(outcome.frame, strict=strict)
                record = FrameRecord(
                    outcome.frame, whole.payload, whole.message, whole.error, outcome.frames
                )
            elif outcome is not None:
                error = IncompleteDatagram(outcome, payload.offset, frame.data[payload.offset])
                record = FrameRecord(frame, payload, error=error, fragments=(frame.number,))
        if reassembler.abandoned:
            for abandoned in reassembler.take_abandoned():
                yield _abandoned_record(abandoned)
        yield record
    reassembler.finish()
    for abandoned in reassembler.take_abandoned():
        yield _abandoned_record(abandoned)


def _abandoned_record(abandoned: Abandoned) -> FrameRecord:
    frames = ", ".join(map(str, abandoned.frames))
    error = IncompleteDatagram(
        f"fragmented IPv6 datagram (frames {frames}): {abandoned.reason}",
        abandoned.payload.offset,
        abandoned.next_header,
    )
    return FrameRecord(abandoned.frame, abandoned.payload, error=error, fragments=abandoned.frames)


def analyse_capture(
    path: str | os.PathLike[str],
    *,
    strict: bool = False,
    on_read: Callable[[int], None] | None = None,
) -> Iterator[FrameRecord]:
    """Every frame of a capture, analysed; CaptureError if the file cannot be read.

    ``on_read``: see :func:`~lmaho_wire.capture.read_frames`.
    """
    return analyse_frames(read_frames(path, on_read=on_read), strict=strict)
