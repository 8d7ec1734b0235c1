"""Fuzzing the exception contract, bounded in time.

``lmaho_wire.decode`` on any byte string returns a Message or raises
MalformedPacket, nothing else; every Message it returns re-encodes to exactly
the Mobility Header octets it was decoded from. ``analyse_frame`` never raises
for any frame of any link type, and what it reports is JSON-printable.

The inputs are random octets and mutations of valid messages (bit flips,
truncations, extensions, lies in the Header Len and option Length octets,
option octets spliced in). The number of examples is bounded here; a longer
run by hand: ``LMAHO_FUZZ_EXAMPLES=200000 pytest tests/test_codec_fuzz.py``.
"""

from __future__ import annotations

import ipaddress
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmaho_wire import Frame, MalformedPacket, Message, build, current_schema, decode
from lmaho_wire.capture import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
)
from lmaho_wire.checksum import upper_layer_checksum
from lmaho_wire.dissect import analyse_frame
from lmaho_wire.packet import ethernet_header, ipv6_header
from support.extension_headers import destination_options, routing_type2
from support.strategies import any_option, raw_mobility_header

SRC = ipaddress.IPv6Address("2001:db8:b::1").packed
DST = ipaddress.IPv6Address("2001:db8:a::1").packed
SCHEMA = current_schema()

EXAMPLES = int(os.environ.get("LMAHO_FUZZ_EXAMPLES", "2000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@st.composite
def valid_mh(draw: st.DrawFn) -> bytes:
    """A valid message: built through the API, or laid out by hand."""
    if draw(st.booleans()):
        return draw(raw_mobility_header(draw(st.sampled_from([*SCHEMA.messages, 0, 1, 7, 16]))))
    mh_type = draw(st.sampled_from(sorted(SCHEMA.messages)))
    opts = draw(st.lists(any_option(include_padding=True), max_size=6))
    return build(mh_type, options=[o.option for o in opts], src=SRC, dst=DST)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "truncate", "extend", "lie", "splice", "byte"]))
        if how == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif how == "byte" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif how == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif how == "extend":
            data += draw(st.binary(max_size=16))
        elif how == "lie" and len(data) > 1:
            # Header Len, or a Length octet anywhere past the fixed part.
            i = 1 if draw(st.booleans()) or len(data) < 14 else draw(st.integers(13, len(data) - 1))
            data[i] = draw(st.sampled_from([0, 1, 2, 3, 0x7F, 0xFF, data[i] + 1 & 0xFF]))
        elif how == "splice" and data:
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


fuzz_input = st.one_of(
    st.binary(max_size=300),
    st.binary(min_size=6, max_size=64).map(
        lambda b: b[:1] + bytes([len(b) // 8 - 1 & 0xFF]) + b[2:]
    ),
    mutated(valid_mh()),
)


def _check_decoded(data: bytes, msg: Message) -> None:
    assert isinstance(msg, Message)
    assert msg.length <= len(data)
    # Decoding then encoding reproduces the input octets of the Mobility Header.
    assert msg.encode() == data[: msg.length]
    json.dumps(msg.to_json())


@FUZZ
@given(data=fuzz_input, strict=st.booleans(), with_addresses=st.booleans())
def test_decode_returns_a_message_or_raises_malformed_packet(
    data: bytes, strict: bool, with_addresses: bool
) -> None:
    src, dst = (SRC, DST) if with_addresses else (None, None)
    try:
        msg = decode(data, src, dst, strict=strict)
    except MalformedPacket as e:
        assert isinstance(e.offset, int) and 0 <= e.offset <= max(len(data), 1)
        assert e.what and str(e)
        return
    _check_decoded(data, msg)


# --- whole frames ---------------------------------------------------------------------


def _ipv6(payload: bytes, nh: int, src: bytes = SRC, dst: bytes = DST) -> bytes:
    return ipv6_header(src, dst, nh, len(payload)) + payload


@st.composite
def ipv6_packet(draw: st.DrawFn) -> bytes:
    """IPv6 carrying a Mobility Header, perhaps behind extension headers or in a tunnel."""
    mh = draw(valid_mh())
    home, care_of = draw(st.booleans()), draw(st.booleans())
    # RFC 6275 6.1.1: the checksum covers the home address (HoA option) as source and the
    # final destination (type 2 routing header) as destination.
    pseudo_src = bytes(range(16)) if home else SRC
    pseudo_dst = bytes(range(16, 32)) if care_of else DST
    checksum = upper_layer_checksum(pseudo_src, pseudo_dst, mh[:4] + b"\0\0" + mh[6:])
    nh, inner = 135, mh[:4] + checksum.to_bytes(2, "big") + mh[6:]
    if home:
        nh, inner = 60, destination_options(nh, pseudo_src) + inner
    if care_of:
        nh, inner = 43, routing_type2(nh, pseudo_dst) + inner
    pkt = _ipv6(inner, nh)
    for _ in range(draw(st.integers(0, 2))):
        pkt = _ipv6(pkt, 41)
    return pkt


def _link(linktype: int, pkt: bytes, vlan: bool) -> bytes:
    if linktype == LINKTYPE_ETHERNET:
        if vlan:
            return b"\x02" * 6 + b"\x04" * 6 + b"\x81\x00\x00\x05\x86\xdd" + pkt
        return ethernet_header(b"\x02" * 6, b"\x04" * 6) + pkt
    if linktype == LINKTYPE_LINUX_SLL:
        return b"\x00\x00\x00\x01\x00\x06" + b"\x02" * 6 + b"\x00\x00\x86\xdd" + pkt
    if linktype == LINKTYPE_LINUX_SLL2:
        return b"\x86\xdd\x00\x00" + b"\x00" * 4 + b"\x00\x01\x00\x00\x06" + b"\x02" * 7 + pkt
    return pkt


LINKTYPES = [
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
]


@pytest.mark.parametrize("linktype", LINKTYPES)
@settings(
    max_examples=max(EXAMPLES // 5, 50),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_analyse_frame_never_raises(linktype: int, data: st.DataObject) -> None:
    good = _link(linktype, data.draw(ipv6_packet()), data.draw(st.booleans()))
    frame_bytes = data.draw(
        st.one_of(st.binary(max_size=200), st.just(good), mutated(st.just(good)))
    )
    strict = data.draw(st.booleans())
    rec = analyse_frame(Frame(1, 0.0, linktype, frame_bytes), strict=strict)
    json.dumps(rec.to_json())
    if rec.message is not None:
        assert rec.payload is not None
        start = rec.payload.offset
        assert rec.message.encode() == frame_bytes[start : start + rec.message.length]
    if frame_bytes == good and linktype in LINKTYPES and not strict:
        # Unmutated frames decode, and their checksum verifies (pseudo-header addresses
        # taken from the HoA option / the routing header where there is one).
        assert rec.message is not None and rec.error is None
        assert rec.message.checksum_ok is True


@settings(max_examples=300, deadline=None, database=None)
@given(linktype=st.integers(0, 0xFFFFFFFF), frame=st.binary(max_size=200))
def test_analyse_frame_on_other_link_types(linktype: int, frame: bytes) -> None:
    rec = analyse_frame(Frame(1, 0.0, linktype, frame))
    json.dumps(rec.to_json())
