"""From capture frames to decoded Mobility Header messages (shared by decode, check, ladder)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .capture import Frame, read_frames
from .codec import Message, decode
from .errors import MalformedPacket
from .packet import MOBILITY_PROTOCOLS, IPv6Payload, find_ipv6


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One frame: its IPv6 payload if any, and the Mobility Header message or the error."""

    frame: Frame
    payload: IPv6Payload | None
    message: Message | None = None
    error: MalformedPacket | None = None

    @property
    def is_mobility(self) -> bool:
        return self.message is not None or (
            self.error is not None
            and (self.payload is None or self.payload.proto in MOBILITY_PROTOCOLS)
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"frame": self.frame.number, "time": round(self.frame.time, 6)}
        if self.payload is not None:
            out["src"] = str(self.payload.src)
            out["dst"] = str(self.payload.dst)
            if self.payload.tunnelled:
                out["tunnel"] = [
                    {"src": str(h.src), "dst": str(h.dst)} for h in self.payload.hops[:-1]
                ]
        if self.message is not None:
            out.update(self.message.to_json())
        if self.error is not None:
            out["error"] = {"what": self.error.what, "offset": self.error.offset}
        return out


def analyse_frame(frame: Frame, *, strict: bool = False) -> FrameRecord:
    """Locate and decode the Mobility Header of one frame, never raising for bad bytes."""
    try:
        payload = find_ipv6(frame.data, frame.linktype)
    except MalformedPacket as e:
        return FrameRecord(frame, None, error=e)
    if payload is None or payload.proto not in MOBILITY_PROTOCOLS:
        return FrameRecord(frame, payload)
    try:
        message = decode(
            frame.data[payload.offset : payload.end],
            payload.pseudo_src,
            payload.pseudo_dst,
            strict=strict,
        )
    except MalformedPacket as e:
        # Offsets in errors count from the start of the Mobility Header.
        return FrameRecord(frame, payload, error=e)
    return FrameRecord(frame, payload, message)


def analyse_capture(path: str | os.PathLike[str], *, strict: bool = False) -> Iterator[FrameRecord]:
    """Every frame of a capture, analysed; CaptureError if the file cannot be read."""
    for frame in read_frames(path):
        yield analyse_frame(frame, strict=strict)
