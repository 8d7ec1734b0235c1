"""The Internet checksum over an IPv6 pseudo-header (RFC 8200 8.1, RFC 6275 6.1.1)."""

from __future__ import annotations

import ipaddress
import sys

MH_NEXT_HEADER = 135

AddressLike = str | bytes | ipaddress.IPv6Address


def address_bytes(address: AddressLike) -> bytes:
    """16 octets of an IPv6 address given as text, bytes or IPv6Address."""
    if isinstance(address, bytes):
        if len(address) != 16:
            raise ValueError(f"an IPv6 address has 16 octets, got {len(address)}")
        return address
    return ipaddress.IPv6Address(address).packed


def ones_complement_sum(data: bytes) -> int:
    """The 16-bit one's-complement sum of ``data`` (odd length padded with a zero)."""
    if len(data) % 2:
        data += b"\x00"
    # Summing native-order words in C and swapping once beats unpacking big-endian words.
    total = sum(memoryview(data).cast("H"))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    # The one's-complement sum is byte-order independent: swap once at the end.
    if sys.byteorder == "little":
        total = ((total & 0xFF) << 8) | (total >> 8)
    return total


def upper_layer_checksum(
    src: AddressLike, dst: AddressLike, payload: bytes, next_header: int = MH_NEXT_HEADER
) -> int:
    """Checksum of ``payload`` (with its checksum field zeroed) under an IPv6 pseudo-header."""
    pseudo = (
        address_bytes(src)
        + address_bytes(dst)
        + len(payload).to_bytes(4, "big")
        + b"\x00\x00\x00"
        + bytes([next_header])
    )
    s = ones_complement_sum(pseudo + payload)
    return (~s) & 0xFFFF
