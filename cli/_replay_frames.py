"""Loading a capture for ``lmaho replay``: frames as Ethernet bytes, plus their timing.

Ethernet captures are replayed as they are. Captures without an Ethernet header
(raw IP, BSD loopback, Linux cooked v1/v2) get one built here, in user space:
source = the interface's MAC, destination = ``--dst-mac`` or, when not given,
the multicast MAC of a multicast destination address, else broadcast, and the
ethertype of the network-layer protocol. That is what the kernel does for an
AF_PACKET SOCK_DGRAM socket, done once before sending so every link type goes
through the same (fast) SOCK_RAW path.
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass
from pathlib import Path

from lmaho_wire.capture import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW_ALIASES,
    read_frames,
)
from lmaho_wire.errors import CaptureError

LINKTYPE_NULL = 0
LINKTYPE_LOOP = 108

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
BROADCAST_MAC = b"\xff" * 6

_LINK_NAMES = {
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_LINUX_SLL: "Linux cooked (SLL)",
    LINKTYPE_LINUX_SLL2: "Linux cooked v2 (SLL2)",
    LINKTYPE_NULL: "BSD loopback",
    LINKTYPE_LOOP: "OpenBSD loopback",
    **{lt: "raw IP" for lt in LINKTYPE_RAW_ALIASES},
}

SUPPORTED_LINKTYPES = frozenset(_LINK_NAMES)


def link_name(linktype: int) -> str:
    """Human name of a pcap link type, e.g. ``"Ethernet"`` or ``"link type 105"``."""
    return _LINK_NAMES.get(linktype, f"link type {linktype}")


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


@dataclass(slots=True)
class LoadedCapture:
    """Every frame of a capture, ready for the wire, and when it was captured.

    ``rel`` holds each frame's time since the first one, in seconds, never less
    than the frame before's: a frame stamped earlier than its predecessor follows it
    with no gap, and later frames keep their own offsets.
    """

    path: Path
    linktypes: tuple[int, ...]  # in order of appearance; a pcapng file may hold several
    frames: list[bytes]
    rel: array[float]

    @property
    def linktype(self) -> int:
        """The first frame's link type."""
        return self.linktypes[0]

    @property
    def framed(self) -> bool:
        """Whether lmaho added an Ethernet header to any frame."""
        return any(t != LINKTYPE_ETHERNET for t in self.linktypes)

    @property
    def link_name(self) -> str:
        return " + ".join(link_name(t) for t in self.linktypes)

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame (0 for a single frame)."""
        return self.rel[-1] if self.rel else 0.0


def _multicast_mac(ethertype: int, l3: bytes) -> bytes | None:
    if ethertype == ETH_P_IPV6 and len(l3) >= 40 and l3[24] == 0xFF:
        return b"\x33\x33" + l3[36:40]
    if ethertype == ETH_P_IP and len(l3) >= 20:
        if l3[16] & 0xF0 == 0xE0:
            return b"\x01\x00\x5e" + bytes((l3[17] & 0x7F, l3[18], l3[19]))
        if l3[16:20] == b"\xff\xff\xff\xff":
            return BROADCAST_MAC
    return None


def _ip_ethertype(l3: bytes) -> int | None:
    if not l3:
        return None
    version = l3[0] >> 4
    return {4: ETH_P_IP, 6: ETH_P_IPV6}.get(version)


def _network_layer(linktype: int, data: bytes) -> tuple[int, bytes] | str:
    """(ethertype, network-layer bytes) of a non-Ethernet frame, or why not."""
    if linktype in LINKTYPE_RAW_ALIASES:
        l3 = data
        et = _ip_ethertype(l3)
        if et is None:
            return "raw-IP frame is neither IPv4 nor IPv6"
        return et, l3
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) < 4:
            return "loopback frame shorter than its 4-byte header"
        l3 = data[4:]
        et = _ip_ethertype(l3)
        if et is None:
            return "loopback frame carries neither IPv4 nor IPv6"
        return et, l3
    if linktype == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            return "Linux cooked frame shorter than its 16-byte header"
        et, l3 = int.from_bytes(data[14:16], "big"), data[16:]
    elif linktype == LINKTYPE_LINUX_SLL2:
        if len(data) < 20:
            return "Linux cooked v2 frame shorter than its 20-byte header"
        et, l3 = int.from_bytes(data[0:2], "big"), data[20:]
    else:  # pragma: no cover - callers check SUPPORTED_LINKTYPES first
        return f"{link_name(linktype)} is not supported"
    if et < 0x0600:
        return f"Linux cooked frame with protocol 0x{et:04x} (not an ethertype)"
    return et, l3


def load_capture(
    path: str | os.PathLike[str], src_mac: bytes, dst_mac: bytes | None = None
) -> LoadedCapture:
    """Read the whole capture into memory, as Ethernet frames for ``src_mac``'s interface.

    Each frame is taken by its own link type: a pcapng file may mix interfaces.

    Raises CaptureError for an unreadable or corrupt capture (nothing is sent from
    a capture that does not read to its end), an empty one, an unsupported link
    type, a frame that cannot be given an Ethernet header, or ``dst_mac`` given
    for a capture whose frames all have one.
    """
    p = Path(path)
    frames: list[bytes] = []
    rel: array[float] = array("d")
    linktypes: dict[int, None] = {}  # in order of appearance
    prev = 0.0
    elapsed = 0.0
    for fr in read_frames(p):
        linktype = fr.linktype
        if linktype not in linktypes:
            if linktype not in SUPPORTED_LINKTYPES:
                raise CaptureError(
                    f"{p}: frame {fr.number}: {link_name(linktype)} frames cannot be replayed; "
                    "replay takes Ethernet, raw IP, BSD loopback and Linux cooked (SLL, SLL2) "
                    "captures"
                )
            if not linktypes:
                prev = fr.time
            linktypes[linktype] = None
        if linktype == LINKTYPE_ETHERNET:
            frames.append(fr.data)
        else:
            got = _network_layer(linktype, fr.data)
            if isinstance(got, str):
                raise CaptureError(f"{p}: frame {fr.number}: {got}; cannot replay it")
            et, l3 = got
            dst = dst_mac or _multicast_mac(et, l3) or BROADCAST_MAC
            frames.append(dst + src_mac + et.to_bytes(2, "big") + l3)
        if fr.time > prev:
            elapsed += fr.time - prev
            prev = fr.time
        rel.append(elapsed)
    if not linktypes:
        raise CaptureError(f"{p}: the capture holds no packets, nothing to replay")
    loaded = LoadedCapture(p, tuple(linktypes), frames, rel)
    if dst_mac is not None and not loaded.framed:
        raise CaptureError(
            f"{p}: --dst-mac only applies to captures without an Ethernet header; "
            "this one is Ethernet and its frames are sent as they are"
        )
    return loaded
