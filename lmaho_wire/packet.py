"""Link layer and IPv6 framing around Mobility Headers: finding them and building frames.

Finding walks Ethernet (with VLAN tags), raw IPv6 and Linux cooked (SLL,
SLL2) frames, the IPv6 extension headers and any depth of IPv6-in-IPv6
tunnel; every step reads inside the frame, so the work is bounded by its size.
An atomic fragment (RFC 6946: offset 0, M clear) is walked through like any
extension header; a real fragment stops the walk (``IPv6Payload.proto`` is
44) and :mod:`lmaho_wire.fragments` reassembles it.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

from .capture import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW_ALIASES,
)
from .checksum import MH_NEXT_HEADER
from .errors import MalformedPacket, Truncated
from .values import _addresses, ipv6_address

ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = (0x8100, 0x88A8, 0x9100)
IPPROTO_HOPOPTS = 0
IPPROTO_IPV6 = 41
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_AH = 51
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPPROTO_MH = MH_NEXT_HEADER
# The Mobility Header's number in the MIPv6 drafts before RFC 3775; Wireshark and
# tcpdump still dissect it as a Mobility Header, and so does lmaho.
IPPROTO_MH_OLD = 62
MOBILITY_PROTOCOLS = frozenset({IPPROTO_MH, IPPROTO_MH_OLD})
HOME_ADDRESS_OPTION = 201
IPV6_HEADER_LENGTH = 40
FRAGMENT_HEADER_LENGTH = 8

_EXTENSION_HEADERS = {
    IPPROTO_HOPOPTS,
    IPPROTO_ROUTING,
    IPPROTO_FRAGMENT,
    IPPROTO_DSTOPTS,
    IPPROTO_AH,
}
# What the walk goes on through: extension headers and IPv6-in-IPv6.
_WALKED_ON = frozenset({*_EXTENSION_HEADERS, IPPROTO_IPV6})


class IPv6Hop(NamedTuple):
    """One IPv6 header on the way in: its addresses and where it starts in the frame.

    Named tuples rather than frozen dataclasses, here and below: made for every
    frame read, and twice as fast to make.
    """

    src: ipaddress.IPv6Address
    dst: ipaddress.IPv6Address
    offset: int
    hop_limit: int


class IPv6Payload(NamedTuple):
    """What an IPv6 frame carries once all tunnels and extension headers are peeled.

    ``hops`` lists the IPv6 headers, outermost first; ``proto`` is the final
    upper-layer protocol, found at ``frame[offset:end]``. ``pseudo_src`` and
    ``pseudo_dst`` are the innermost header's checksum addresses, after a Home
    Address option or a type 2 routing header.
    """

    hops: tuple[IPv6Hop, ...]
    proto: int
    offset: int
    end: int
    pseudo_src: bytes
    pseudo_dst: bytes
    # Where the octet naming ``proto`` is (an IPv6 header's or extension header's Next
    # Header): reassembly rewrites it, as RFC 8200 4.5 says.
    next_header_at: int = -1

    @property
    def src(self) -> ipaddress.IPv6Address:
        return self.hops[-1].src

    @property
    def dst(self) -> ipaddress.IPv6Address:
        return self.hops[-1].dst

    @property
    def tunnelled(self) -> bool:
        return len(self.hops) > 1


def network_offset(frame: bytes, linktype: int) -> int | None:
    """Offset of the IPv6 header in a frame, or None when the frame carries no IPv6.

    ``linktype`` is a plain link type: read_frames has masked pcap's FCS bits off.
    """
    if linktype == LINKTYPE_ETHERNET:
        pos, ethertype_at = 14, 12
        if len(frame) < 14:
            return None
        ethertype = int.from_bytes(frame[12:14], "big")
        while ethertype in ETHERTYPE_VLAN and len(frame) >= pos + 4:
            ethertype_at = pos + 2
            ethertype = int.from_bytes(frame[ethertype_at : ethertype_at + 2], "big")
            pos += 4
        return pos if ethertype == ETHERTYPE_IPV6 else None
    if linktype in LINKTYPE_RAW_ALIASES:
        return 0 if frame[:1] and frame[0] >> 4 == 6 else None
    if linktype == LINKTYPE_LINUX_SLL:
        return 16 if frame[14:16] == b"\x86\xdd" else None
    if linktype == LINKTYPE_LINUX_SLL2:
        return 20 if frame[0:2] == b"\x86\xdd" else None
    return None


_IPV6_FIELDS = struct.Struct("!B3xHBB16s16s").unpack_from
_new_tuple = tuple.__new__  # a named tuple made without its Python-level __new__


def peel_ipv6(frame: bytes, start: int) -> IPv6Payload:
    """Walk the IPv6 header at ``start``, its extension headers and inner IPv6 headers."""
    hops: list[IPv6Hop] = []
    end = len(frame)
    pos = start
    addresses = _addresses
    while True:
        if pos + IPV6_HEADER_LENGTH > end:
            raise Truncated(f"truncated IPv6 header: {end - pos} of 40 octets", pos)
        first, payload_length, next_header, hop_limit, src, dst = _IPV6_FIELDS(frame, pos)
        if first >> 4 != 6:
            raise MalformedPacket(f"IP version {first >> 4} where IPv6 was expected", pos)
        hop = _new_tuple(
            IPv6Hop,
            (
                addresses.get(src) or ipv6_address(src),
                addresses.get(dst) or ipv6_address(dst),
                pos,
                hop_limit,
            ),
        )
        # A payload length of 0 is a jumbogram or a lie; either way the frame bounds it.
        if payload_length and pos + IPV6_HEADER_LENGTH + payload_length < end:
            end = pos + IPV6_HEADER_LENGTH + payload_length
        next_header_at = pos + 6
        pos += IPV6_HEADER_LENGTH
        if not hops and next_header not in _WALKED_ON:
            # The common packet: one IPv6 header, then the upper layer.
            return _new_tuple(
                IPv6Payload, ((hop,), next_header, pos, end, src, dst, next_header_at)
            )
        hops.append(hop)
        pseudo_src, pseudo_dst = src, dst
        while next_header in _EXTENSION_HEADERS:
            if pos + 8 > end:
                raise Truncated("truncated IPv6 extension header", pos)
            following = frame[pos]
            if next_header == IPPROTO_FRAGMENT:
                if frame[pos + 2] or frame[pos + 3] & 0xF9:
                    break  # a real fragment: the caller reassembles it
                next_header, next_header_at = following, pos  # atomic: just the packet
                pos += FRAGMENT_HEADER_LENGTH
                continue
            if next_header == IPPROTO_AH:
                size = (frame[pos + 1] + 2) * 4
            else:
                size = (frame[pos + 1] + 1) * 8
            if pos + size > end:
                raise Truncated(
                    f"IPv6 extension header of {size} octets runs past the packet", pos + 1
                )
            if next_header == IPPROTO_DSTOPTS:
                home = _home_address(frame, pos + 2, pos + size)
                if home is not None:
                    pseudo_src = home
            elif next_header == IPPROTO_ROUTING and frame[pos + 2] == 2 and size >= 24:
                pseudo_dst = frame[pos + 8 : pos + 24]
            next_header, next_header_at = following, pos
            pos += size
        if next_header != IPPROTO_IPV6:
            return _new_tuple(
                IPv6Payload,
                (tuple(hops), next_header, pos, end, pseudo_src, pseudo_dst, next_header_at),
            )


def _home_address(frame: bytes, pos: int, end: int) -> bytes | None:
    while pos < end:
        opt = frame[pos]
        if opt == 0:  # Pad1
            pos += 1
            continue
        if pos + 2 > end:
            return None
        length = frame[pos + 1]
        if opt == HOME_ADDRESS_OPTION and length == 16 and pos + 18 <= end:
            return frame[pos + 2 : pos + 18]
        pos += 2 + length
    return None


def find_ipv6(frame: bytes, linktype: int) -> IPv6Payload | None:
    """The innermost IPv6 payload of a frame; None when the frame carries no IPv6."""
    if linktype == LINKTYPE_ETHERNET and frame[12:14] == _ETHERTYPE_IPV6_OCTETS:
        return peel_ipv6(frame, 14)  # the common frame, without the general look at its link
    start = network_offset(frame, linktype)
    if start is None:
        return None
    return peel_ipv6(frame, start)


_ETHERTYPE_IPV6_OCTETS = ETHERTYPE_IPV6.to_bytes(2, "big")


# --- building frames -------------------------------------------------------------

_IPV6_HEADER = struct.Struct("!IHBB16s16s")


def ipv6_header(
    src: bytes,
    dst: bytes,
    next_header: int,
    payload_length: int,
    hop_limit: int = 64,
    flow_label: int = 0,
) -> bytes:
    """A 40-octet IPv6 header (addresses as 16 octets each)."""
    return _IPV6_HEADER.pack(
        (6 << 28) | (flow_label & 0xFFFFF), payload_length, next_header, hop_limit, src, dst
    )


def ethernet_header(dst_mac: bytes, src_mac: bytes, ethertype: int = ETHERTYPE_IPV6) -> bytes:
    return dst_mac + src_mac + ethertype.to_bytes(2, "big")


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def mac_bytes(mac: str | bytes) -> bytes:
    """6 octets of a MAC address (or already 6 octets); ValueError when malformed.

    Written as six hex octets of one or two digits, separated by ":" or "-",
    as tcpreplay and ip(8) take them: "02:00:5e:00:00:01", "2-0-5e-0-0-1".
    """
    if isinstance(mac, bytes):
        if len(mac) != 6:
            raise ValueError(f"a MAC address has 6 octets, got {len(mac)}")
        return mac
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6 or not all(0 < len(p) <= 2 and _HEX_DIGITS.issuperset(p) for p in parts):
        raise ValueError(
            f"not a MAC address: {mac!r} (expected six hex octets, like 02:00:5e:00:00:01)"
        )
    return bytes(int(p, 16) for p in parts)
