"""The typed API a user holds: Message, Option, build/decode/option, errors, numbers.

Also: every other MH type decodes generically under its IANA name, and the
public functions carry annotations that resolve (what a type checker reads).
"""

from __future__ import annotations

import inspect
import ipaddress
import json
import typing

import pytest

import lmaho_wire
from lmaho_wire import (
    ChecksumError,
    FlagBits,
    MalformedPacket,
    Message,
    Named,
    Numbers,
    Option,
    Timestamp,
    build,
    current_schema,
    decode,
    option,
    padding,
    use_numbers,
)
from lmaho_wire.schema import IANA_MH_TYPES

SRC = "2001:db8:b::1"
DST = "2001:db8:a::1"


def test_public_api_is_annotated_and_the_annotations_resolve() -> None:
    for name in lmaho_wire.__all__:
        obj = getattr(lmaho_wire, name)
        targets = [obj] if inspect.isfunction(obj) else []
        if inspect.isclass(obj):
            targets += [
                m for _, m in inspect.getmembers(obj, inspect.isfunction)
                if m.__module__.startswith("lmaho_wire") and not m.__name__.startswith("__")
            ]  # fmt: skip
        for fn in targets:
            hints = typing.get_type_hints(fn)
            params = [
                p for p in inspect.signature(fn).parameters.values()
                if p.name not in ("self", "cls")
            ]  # fmt: skip
            missing = [p.name for p in params if p.name not in hints]
            assert not missing, f"{name}.{fn.__name__} lacks annotations for {missing}"
            assert "return" in hints, f"{name}.{fn.__name__} lacks a return annotation"


def test_message_and_option_are_plain_typed_values() -> None:
    mh = build(
        "PBU",
        sequence=9,
        flags={"A", "H"},
        lifetime=3600,
        options=[
            option("mn_identifier", subtype="NAI", identifier="mn@x"),
            option("home_network_prefix", prefix_length=64, prefix="2001:db8:1::"),
            option("home_network_prefix", prefix_length=56, prefix="2001:db8:2::"),
            option("timestamp", timestamp=Timestamp(1700000000)),
        ],
        src=SRC,
        dst=DST,
    )
    msg = decode(mh, SRC, DST)
    assert isinstance(msg, Message)
    assert (msg.name, msg.key, msg.mh_type) == ("PBU", "binding_update", 5)
    assert msg.sequence == 9 and msg.lifetime == 3600 and msg.status is None
    assert isinstance(msg.flags, FlagBits) and msg.flags.names == ("A", "H", "P")
    assert "P" in msg.flags and "L" not in msg.flags and msg.flags.reserved == 0
    assert msg.length == len(mh) and msg.checksum_ok is True
    assert msg.mn_identifier == "mn@x"
    assert msg.home_network_prefixes == [
        ipaddress.IPv6Network("2001:db8:1::/64"),
        ipaddress.IPv6Network("2001:db8:2::/56"),
    ]
    assert len(msg.options_of("home_network_prefix")) == 2
    assert msg.option("handoff_indicator") is None
    hnp = msg.option("home_network_prefix")
    assert isinstance(hnp, Option) and hnp.prefix_length == 64 and hnp.length == 18
    assert isinstance(hnp.prefix, ipaddress.IPv6Address)
    with pytest.raises(AttributeError, match="no field 'nope'"):
        _ = hnp.nope
    with pytest.raises(AttributeError):
        _ = msg.nope
    # Frozen: a decoded message is a value.
    with pytest.raises(AttributeError):
        msg.checksum = 0  # type: ignore[misc]
    # So are its options: the codec hands the same option object to every message
    # carrying the same option octets at the same place.
    with pytest.raises(TypeError):
        hnp.fields["prefix_length"] = 48  # type: ignore[index]
    assert decode(mh, SRC, DST).option("home_network_prefix") is hnp
    doc = json.loads(json.dumps(msg.to_json()))
    assert doc["message"] == "PBU" and doc["fields"]["flags"]["set"] == ["A", "H", "P"]
    ts = next(o for o in doc["options"] if o["option"] == "timestamp")
    assert ts["timestamp"]["utc"] == "2023-11-14T22:13:20.000000Z"


def test_enumerations_decode_to_named_ints() -> None:
    o = option("access_technology_type", technology="E_UTRAN")
    assert isinstance(o.technology, Named) and o.technology == 8 and o.technology.name == "E_UTRAN"
    unknown = option("access_technology_type", technology=200)
    assert unknown.technology == 200 and unknown.technology.name is None
    assert option("handoff_indicator", indicator=5).indicator.name == "NOT_CHANGED"


def test_proxy_names_follow_the_p_flag() -> None:
    assert decode(build("BU", sequence=1)).name == "BU"
    assert decode(build("BU", flags={"P"})).name == "PBU"
    assert decode(build("PBU")).name == "PBU"
    assert decode(build("BA")).name == "BA"
    assert decode(build("PBA")).name == "PBA"
    assert decode(build("binding_ack", flags=0x20)).name == "PBA"


@pytest.mark.parametrize("name,mh_type", sorted(IANA_MH_TYPES.items(), key=lambda kv: kv[1]))
def test_ordinary_mipv6_types_decode_generically_with_iana_names(name: str, mh_type: int) -> None:
    body = bytes(range(10))
    mh = build(mh_type, src=SRC, dst=DST, **({} if mh_type in (5, 6) else {"data": body}))
    msg = decode(mh, SRC, DST, strict=True)
    assert msg.mh_type == mh_type
    assert msg.name == name
    if mh_type not in current_schema().messages:
        assert msg.key is None and msg.fields == {"data": body.hex(":")}
    assert msg.encode() == mh


def test_unassigned_types_are_named_by_number() -> None:
    msg = decode(build(99, data=bytes(2)))
    assert msg.name == "MH type 99" and msg.key is None


def test_build_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(ValueError, match=r"unknown message 'XYZ'; known: .*PBU"):
        build("XYZ")
    with pytest.raises(ValueError, match=r"no field\(s\) \['foo'\]"):
        build("PBU", foo=1)
    with pytest.raises(ValueError, match="unknown flag 'Q'"):
        build("PBU", flags={"Q"})
    with pytest.raises(ValueError, match="not a multiple of 4"):
        build("PBU", lifetime=3)
    with pytest.raises(ValueError, match="no value named 'NOPE'"):
        build("PBA", status="NOPE")
    with pytest.raises(ValueError, match="at most 255 fit"):
        option("experimental", data=bytes(256))
    with pytest.raises(ValueError, match="at least 2 needed"):
        option("new_ap_id", id_type="NAME", identifier="")
    with pytest.raises(ValueError, match="exceeds the 2048"):
        build("PBU", options=[option("experimental", data=bytes(250))] * 9)
    with pytest.raises(ValueError, match="no multiple of 8"):
        build("PBU", options=[option("mn_identifier", subtype="NAI", identifier="a@b")], pad=False)
    with pytest.raises(KeyError):
        option("no_such_option")


def test_padding_helper() -> None:
    assert padding(0) == []
    assert [p.to_bytes() for p in padding(1)] == [b"\x00"]
    assert [p.to_bytes() for p in padding(2)] == [b"\x01\x00"]
    assert [p.to_bytes() for p in padding(7)] == [b"\x01\x05" + bytes(5)]


def test_strict_mode_and_findings() -> None:
    opts = [option("timestamp", timestamp=Timestamp(1))]
    # Laid out without padding, the Timestamp starts at 12 (not 8n+2), ends at 22.
    mh = build("PBU", options=[*opts, *padding(2)], pad=False, src=SRC, dst=DST)
    msg = decode(mh, SRC, DST)
    assert [(f.kind, f.offset) for f in msg.findings] == [("alignment", 12)]
    assert "8n+2" in str(msg.findings[0])
    with pytest.raises(MalformedPacket, match="not aligned 8n\\+2") as e:
        decode(mh, SRC, DST, strict=True)
    assert e.value.offset == 12
    good = build("PBU", options=opts, src=SRC, dst=DST)
    with pytest.raises(ChecksumError) as c:
        decode(good, SRC, "2001:db8::99", strict=True)
    assert isinstance(c.value, MalformedPacket) and c.value.offset == 4
    # Non-zero PadN content and a Payload Proto other than 59 are findings too.
    odd = bytearray(build("PBU", options=[option("padn", padding="00:07")]))
    odd[0] = 6
    kinds = [f.kind for f in decode(bytes(odd)).findings]
    assert kinds == ["payload_proto", "padding"]


def test_malformed_packet_says_what_and_where() -> None:
    mh = build("PBU", options=[option("mn_identifier", subtype="NAI", identifier="a@b")])
    cases = {
        "short": (mh[:5], 0, "truncated"),
        "header len": (mh[:8], 1, "Header Len"),
        "option length": (mh[:13] + b"\x40" + mh[14:], 13, "runs past"),
        "fixed length": (mh[:12] + b"\x16\x03\x00\x40\x00" + mh[17:], 13, "must be 18"),
    }
    for label, (data, offset, text) in cases.items():
        with pytest.raises(MalformedPacket) as e:
            decode(data)
        assert e.value.offset == offset, label
        assert text in e.value.what, label


def test_type_numbers_can_be_overridden_at_run_time() -> None:
    try:
        use_numbers(Numbers().with_overrides(mh_types={"LMA_HO_Req": 230}))
        mh = build("LMA_HO_Req", sequence=3)
        assert mh[2] == 230
        assert decode(mh).name == "LMA_HO_Req"
        assert decode(build(200, data=bytes(2))).name == "MH type 200"
    finally:
        use_numbers(Numbers())
    assert build("LMA_HO_Req")[2] == 200


def test_decode_takes_any_bytes_like_and_ignores_what_follows() -> None:
    mh = build("PBA", sequence=4, src=SRC, dst=DST)
    for data in (bytearray(mh), memoryview(mh), mh + b"trailing"):
        msg = decode(data, ipaddress.IPv6Address(SRC), ipaddress.IPv6Address(DST).packed)
        assert msg.sequence == 4 and msg.checksum_ok
