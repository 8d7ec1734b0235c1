"""IPv6 extension headers that change a Mobility Header checksum's pseudo-header."""

from __future__ import annotations

from lmaho_wire.packet import HOME_ADDRESS_OPTION


def destination_options(next_header: int, home: bytes) -> bytes:
    """A Destination Options header: PadN and a Home Address option, ending on 8n."""
    return bytes([next_header, 2, 0x01, 0x00, HOME_ADDRESS_OPTION, 16]) + home + b"\x01\x00"


def routing_type2(next_header: int, address: bytes) -> bytes:
    """A type 2 routing header with one segment left."""
    return bytes([next_header, 2, 2, 1, 0, 0, 0, 0]) + address
