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


def checksum_matches(
    src: AddressLike,
    dst: AddressLike,
    packet: bytes,
    at: int,
    checksum: int,
    next_header: int = MH_NEXT_HEADER,
) -> bool:
    """Whether ``checksum``, read from the 16-bit field at offset ``at`` of ``packet``, is
    :func:`upper_layer_checksum` of ``packet`` with that field zeroed.

    Without building the pseudo-header or zeroing a copy when the field is
    word-aligned: 2**16 is 1 modulo 0xFFFF, so modulo 0xFFFF the even-length
    parts of the summed string add up as numbers, and the field adds ``checksum``.
    """
    if at % 2 or len(packet) % 2 or not next_header:
        zeroed = packet[:at] + b"\x00\x00" + packet[at + 2 :]
        return upper_layer_checksum(src, dst, zeroed, next_header) == checksum
    if type(src) is not bytes or len(src) != 16:
        src = address_bytes(src)
    if type(dst) is not bytes or len(dst) != 16:
        dst = address_bytes(dst)
    number = (
        int.from_bytes(src, "big")
        + int.from_bytes(dst, "big")
        + len(packet)
        + next_header
        + int.from_bytes(packet, "big")
        - checksum
    )
    # The zeroed string is never all zeros (next_header is not), so its sum is never 0.
    total = number % 0xFFFF or 0xFFFF
    return (~total) & 0xFFFF == checksum
