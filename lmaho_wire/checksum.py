"""The Internet checksum over an IPv6 pseudo-header (RFC 8200 8.1, RFC 6275 6.1.1)."""

from __future__ import annotations

import ipaddress
import socket

MH_NEXT_HEADER = 135

AddressLike = str | bytes | ipaddress.IPv6Address


def address_bytes(address: AddressLike) -> bytes:
    """16 octets of an IPv6 address given as text, bytes or IPv6Address."""
    if isinstance(address, bytes):
        if len(address) != 16:
            raise ValueError(f"an IPv6 address has 16 octets, got {len(address)}")
        return address
    if type(address) is str:
        # Parsed in C: ten times faster than ipaddress, which decides what this refuses
        # (scope IDs and the like).
        try:
            return socket.inet_pton(socket.AF_INET6, address)
        except OSError:
            pass
    return ipaddress.IPv6Address(address).packed


def ones_complement_sum(data: bytes) -> int:
    """The 16-bit one's-complement sum of ``data`` (odd length padded with a zero)."""
    if len(data) % 2:
        data += b"\x00"
    # 2**16 is 1 modulo 0xFFFF, so the end-around-carry sum of the 16-bit words is
    # the whole octet string, as one big-endian number, modulo 0xFFFF; except
    # that a sum of words that are not all zero is never 0 but 0xFFFF. One
    # division in C instead of a Python-level sum over the words.
    number = int.from_bytes(data, "big")
    total = number % 0xFFFF
    return total if total or not number else 0xFFFF


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
