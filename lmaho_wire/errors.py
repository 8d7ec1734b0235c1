"""The exceptions of the wire layer: one for malformed packets, one for unusable captures."""

from __future__ import annotations


class LmahoError(Exception):
    """Base of every error lmaho raises on purpose; anything else is a bug."""


class MalformedPacket(LmahoError):
    """Input bytes do not form what they claim to be.

    ``offset`` is where the problem is, counted from the first octet handed to
    the decoder (the Mobility Header, or the frame for link-layer decoding).
    """

    def __init__(self, what: str, offset: int) -> None:
        super().__init__(f"{what} (at offset {offset})")
        self.what = what
        self.offset = offset


class Truncated(MalformedPacket):
    """What is needed lies past the octets there: in a frame's IPv6 headers, or in the
    octets a capture did not keep (``Codec.decode``'s ``partial``). In a frame the
    capture cut, :func:`lmaho_wire.dissect.analyse_frame` makes it a :class:`SnapshotCut`."""


class SnapshotCut(MalformedPacket):
    """Not malformed: the capture kept only the first octets of the packet (its snapshot
    length, ``tcpdump -s``), and what is needed lies past them.

    ``kept`` and ``length`` are the frame's octets captured and on the wire.
    """

    def __init__(self, what: str, offset: int, kept: int, length: int) -> None:
        super().__init__(what, offset)
        self.kept = kept
        self.length = length


class ChecksumError(MalformedPacket):
    """The Mobility Header checksum does not match (raised in strict mode only)."""


class IncompleteDatagram(MalformedPacket):
    """Fragments of an IPv6 datagram that never made a whole one (timed out, overlapping).

    ``offset`` is the Fragment header's in the first fragment's frame;
    ``next_header`` what the datagram would have carried (the Fragment header's).
    """

    def __init__(self, what: str, offset: int, next_header: int) -> None:
        super().__init__(what, offset)
        self.next_header = next_header


class CaptureError(LmahoError):
    """A capture file cannot be read or written."""
