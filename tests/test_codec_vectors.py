"""Known-answer vectors: Mobility Headers laid out by hand from the RFC diagrams.

Each vector below was written octet by octet from RFC 6275 6.1.1 / 6.2,
RFC 5213 8.1-8.8, RFC 5949 6.2.4, RFC 6705 6.2 and docs/wire-format.md, not
produced by the codec. The checksum octets in the vectors are checked against
scapy's ``in6_chksum`` (an implementation that shares no code with lmaho), then
the codec must build exactly these octets from field values, decode them to
those values, and re-encode them unchanged.

Offsets in the comments count from the first octet of the Mobility Header.
Addresses: bMAG 2001:db8:b::1, PLMA 2001:db8:a::1, NLMA 2001:db8:c::1, policy
store 2001:db8:d::1.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest
from scapy.layers.inet6 import IPv6, in6_chksum
from scapy.packet import Raw

from lmaho_wire import Timestamp, build, decode, option

MAG = "2001:db8:b::1"
PLMA = "2001:db8:a::1"
NLMA = "2001:db8:c::1"
STORE = "2001:db8:d::1"

# Option octets shared by several vectors.
MN_ID = "08 12 01 6d6e31406c6d61686f2e6578616d706c65"  # type 8, len 18, NAI, "mn1@lmaho.example"
HNP = "16 12 00 40 20010db8000100000000000000000000"  # type 22, len 18, rsvd, /64, 2001:db8:1::
HI = "17 02 00 01"  # type 23, len 2, rsvd, 1 = attachment over a new interface
ATT = "18 02 00 04"  # type 24, len 2, rsvd, 4 = IEEE 802.11a/b/g
MN_LL_ID = "19 08 0000 021122334455"  # type 25, len 8, 16-bit rsvd, 02:11:22:33:44:55
TS = "1b 08 00006553f100 8000"  # type 27, len 8, 1700000000 s + 0x8000/65536 (= .5 s)
NEW_AP_ID = "c8 07 01 02aabbccddee"  # type 200, len 7, BSSID, 02:aa:bb:cc:dd:ee
LLA = "1a 10 fe800000000000000000000000000001"  # type 26, len 16, fe80::1
MAG_ADDR = "33 12 00 80 20010db8000b00000000000000000001"  # type 51, len 18, rsvd, 128, bMAG
NLMA_ADDR = "29 12 01 00 20010db8000c00000000000000000001"  # type 41, len 18, IPv6, rsvd
PLMA_ADDR = "c9 12 01 00 20010db8000a00000000000000000001"  # type 201, len 18, IPv6, rsvd
PAD1 = "00"
PAD2 = "01 00"  # PadN, 2 octets
PAD3 = "01 01 00"
PAD4 = "01 02 0000"
PAD6 = "01 04 00000000"


def _opts() -> dict[str, Any]:
    return {
        "mn_id": option("mn_identifier", subtype="NAI", identifier="mn1@lmaho.example"),
        "hnp": option("home_network_prefix", prefix_length=64, prefix="2001:db8:1::"),
        "hi": option("handoff_indicator", indicator="NEW_INTERFACE"),
        "att": option("access_technology_type", technology="IEEE_802_11"),
        "mn_ll_id": option("mn_link_layer_identifier", identifier="02:11:22:33:44:55"),
        "ts": option("timestamp", timestamp=Timestamp(1700000000, 0x8000)),
        "new_ap": option("new_ap_id", id_type="BSSID", identifier="02:aa:bb:cc:dd:ee"),
        "lla": option("link_local_address", address="fe80::1"),
        "mag": option("mag_ipv6_address", address_length=128, address=MAG),
        "nlma": option("lma_address", option_code="IPV6", address=NLMA),
        "plma": option("previous_lma_address", option_code="IPV6", address=PLMA),
        "nlma4": option("lma_address", option_code="IPV4", address="192.0.2.1"),
    }


@dataclass
class Vector:
    name: str
    src: str
    dst: str
    octets: list[str]  # hex, one item per field or option, spaces ignored
    build_args: dict[str, Any]
    options: list[str]  # keys into _opts(), in order
    expect_fields: dict[str, Any]
    expect_names: list[str] = field(default_factory=list)  # flag names set

    @property
    def data(self) -> bytes:
        return bytes.fromhex("".join(self.octets).replace(" ", ""))


VECTORS = [
    Vector(
        "PBU", MAG, NLMA,
        [
            "3b 0b 05 00 a870",  # 0: no next header, Header Len 11 (96 octets), BU, rsvd, cksum
            "0007 c200 0064",  # 6: seq 7, A|H|P, lifetime 100 units = 400 s
            MN_ID,  # 12..31 (no alignment rule)
            PAD4, HNP,  # 32: PadN to 36 = 8*4+4 for HNP (8n+4), HNP 36..55
            HI, ATT,  # 56..59, 60..63 (no alignment rule)
            PAD2, MN_LL_ID,  # 64: PadN to 66 = 8n+2, MN-LL-ID 66..75
            PAD6, TS,  # 76: PadN to 82 = 8n+2, Timestamp 82..91
            PAD4,  # 92: PadN to 96
        ],
        {"sequence": 7, "flags": {"A", "H"}, "lifetime": 400},
        ["mn_id", "hnp", "hi", "att", "mn_ll_id", "ts"],
        {"sequence": 7, "flags": 0xC200, "lifetime": 400},
        ["A", "H", "P"],
    ),
    Vector(
        "PBA", NLMA, MAG,
        [
            "3b 0b 06 00 6951",  # BA
            "00 20 0007 0064",  # 6: status 0 accepted, flags P, seq 7, lifetime 400 s
            MN_ID, PAD4, HNP, HI, ATT, PAD2, MN_LL_ID, PAD6, TS, PAD4,  # as in the PBU
        ],
        {"sequence": 7, "status": "ACCEPTED", "lifetime": 400},
        ["mn_id", "hnp", "hi", "att", "mn_ll_id", "ts"],
        {"status": 0, "flags": 0x20, "sequence": 7, "lifetime": 400},
        ["P"],
    ),
    Vector(
        "LMA_HO_Req", MAG, PLMA,
        [
            "3b 09 c8 00 2875",  # Header Len 9 (80 octets), MH type 200
            "0001 0000 0384",  # 6: seq 1, no flags, lifetime 900 units = 3600 s
            MN_ID, PAD4, HNP,  # 12..31, 32..35, 36..55
            NEW_AP_ID,  # 56..64 (no alignment rule)
            PAD1, TS,  # 65: Pad1 to 66 = 8n+2, Timestamp 66..75
            PAD4,  # 76: PadN to 80
        ],
        {"sequence": 1, "lifetime": 3600},
        ["mn_id", "hnp", "new_ap", "ts"],
        {"sequence": 1, "flags": 0, "lifetime": 3600},
    ),
    Vector(
        "LMA_HO_Resp", PLMA, MAG,
        [
            "3b 09 c9 00 ef9d",  # MH type 201
            "00 00 0001 0384",  # 6: status 0, no flags, seq 1, lifetime 3600 s
            MN_ID, PAD4, HNP,
            NLMA_ADDR,  # 56..75: LMA Address (RFC 5949), the NLMA
            PAD4,  # 76: PadN to 80
        ],
        {"sequence": 1, "status": 0, "lifetime": 3600},
        ["mn_id", "hnp", "nlma"],
        {"status": 0, "flags": 0, "sequence": 1, "lifetime": 3600},
    ),
    Vector(
        "LMA_HO_Init", PLMA, NLMA,
        [
            "3b 10 ca 00 92c3",  # Header Len 16 (136 octets), MH type 202
            "0002 8000 0064",  # 6: seq 2, T, lifetime 400 s
            MN_ID,  # 12..31
            PAD2, MN_LL_ID,  # 32: PadN to 34 = 8n+2, MN-LL-ID 34..43
            HNP,  # 44 = 8*5+4 already: HNP 44..63
            ATT,  # 64..67
            PAD2, LLA,  # 68: PadN to 70 = 8n+6, Link-local Address 70..87
            PAD4, MAG_ADDR,  # 88: PadN to 92 = 8n+4, MAG IPv6 Address 92..111
            PAD2, TS,  # 112: PadN to 114 = 8n+2, Timestamp 114..123
            NEW_AP_ID,  # 124..132
            PAD3,  # 133: PadN to 136
        ],
        {"sequence": 2, "flags": {"T"}, "lifetime": 400},
        ["mn_id", "mn_ll_id", "hnp", "att", "lla", "mag", "ts", "new_ap"],
        {"sequence": 2, "flags": 0x8000, "lifetime": 400},
        ["T"],
    ),
    Vector(
        "LMA_HAck", NLMA, PLMA,
        [
            "3b 06 cb 00 4931",  # Header Len 6 (56 octets), MH type 203
            "00 80 0002 0064",  # 6: status 0, T, seq 2, lifetime 400 s
            MN_ID, PAD4, HNP,  # ends at 56: no trailing padding
        ],
        {"sequence": 2, "status": 0, "flags": {"T"}, "lifetime": 400},
        ["mn_id", "hnp"],
        {"status": 0, "flags": 0x80, "sequence": 2, "lifetime": 400},
        ["T"],
    ),
    Vector(
        "Update", NLMA, STORE,
        [
            "3b 08 cc 00 3e5e",  # Header Len 8 (72 octets), MH type 204
            "0003 0000 0000",  # 6: seq 3, no flags, lifetime 0 (no expiry)
            MN_ID,  # 12..31
            NLMA_ADDR,  # 32..51: LMA Address = new LMAA (no alignment rule)
            PLMA_ADDR,  # 52..71: Previous LMA Address (type 201)
        ],
        {"sequence": 3},
        ["mn_id", "nlma", "plma"],
        {"sequence": 3, "flags": 0, "lifetime": 0},
    ),
    Vector(
        "Update_Ack", STORE, NLMA,
        [
            "3b 04 cd 00 a029",  # Header Len 4 (40 octets), MH type 205
            "00 00 0003 0000",  # 6: status 0, no flags, seq 3, lifetime 0
            MN_ID,  # 12..31
            "29 06 02 00 c0000201",  # 32..39: LMA Address, IPv4 192.0.2.1
        ],
        {"sequence": 3, "status": "ACCEPTED"},
        ["mn_id", "nlma4"],
        {"status": 0, "flags": 0, "sequence": 3, "lifetime": 0},
    ),
]  # fmt: skip


def _scapy_checksum(src: str, dst: str, mh: bytes) -> int:
    zeroed = mh[:4] + b"\x00\x00" + mh[6:]
    pkt = IPv6(src=src, dst=dst, nh=135) / Raw(zeroed)
    return int(in6_chksum(135, pkt[Raw], zeroed))


@pytest.mark.parametrize("v", VECTORS, ids=[v.name for v in VECTORS])
def test_vector_is_well_formed_and_its_checksum_matches_scapy(v: Vector) -> None:
    data = v.data
    assert len(data) % 8 == 0 and data[1] == len(data) // 8 - 1
    assert int.from_bytes(data[4:6], "big") == _scapy_checksum(v.src, v.dst, data)


@pytest.mark.parametrize("v", VECTORS, ids=[v.name for v in VECTORS])
def test_build_gives_the_vector(v: Vector) -> None:
    opts = _opts()
    built = build(
        v.name, options=[opts[k] for k in v.options], src=v.src, dst=v.dst, **v.build_args
    )
    assert built.hex() == v.data.hex()


@pytest.mark.parametrize("v", VECTORS, ids=[v.name for v in VECTORS])
def test_decode_gives_the_values(v: Vector) -> None:
    msg = decode(v.data, v.src, v.dst, strict=True)
    assert msg.name == v.name
    assert msg.checksum_ok is True and msg.findings == ()
    assert msg.fields == v.expect_fields
    assert set(msg.fields["flags"].names) == set(v.expect_names)
    opts = _opts()
    got = [(o.type, o.fields) for o in msg.options if not o.is_padding]
    assert got == [(opts[k].type, opts[k].fields) for k in v.options]
    assert msg.encode() == v.data
    # Addresses given as IPv6Address objects or 16 octets verify the same checksum.
    packed = ipaddress.IPv6Address(v.src).packed, ipaddress.IPv6Address(v.dst).packed
    assert decode(v.data, *packed).checksum_ok is True
    # (Swapping source and destination would not show anything: the sum commutes.)
    assert decode(v.data, v.src, "2001:db8:ffff::1").checksum_ok is False


def test_pbu_vector_values_in_detail() -> None:
    msg = decode(VECTORS[0].data, MAG, NLMA)
    assert msg.sequence == 7 and msg.lifetime == 400
    assert msg.mn_identifier == "mn1@lmaho.example"
    assert [str(p) for p in msg.home_network_prefixes] == ["2001:db8:1::/64"]
    assert msg.option("handoff_indicator").indicator.name == "NEW_INTERFACE"  # type: ignore[union-attr]
    att = msg.option("access_technology_type")
    assert att is not None and att.technology == 4 and att.technology.name == "IEEE_802_11"
    ts = msg.option("timestamp").timestamp  # type: ignore[union-attr]
    assert ts == Timestamp(1700000000, 0x8000)
    assert float(ts) == 1700000000.5
    assert str(ts) == "2023-11-14T22:13:20.500000Z"
    assert msg.option("mn_link_layer_identifier").identifier == "02:11:22:33:44:55"  # type: ignore[union-attr]
    # Offsets are the ones written in the vector's comments.
    offsets = {o.key: o.offset for o in msg.options if not o.is_padding}
    assert offsets == {
        "mn_identifier": 12, "home_network_prefix": 36, "handoff_indicator": 56,
        "access_technology_type": 60, "mn_link_layer_identifier": 66, "timestamp": 82,
    }  # fmt: skip


def test_lma_ho_init_carries_the_context() -> None:
    msg = decode(VECTORS[4].data, PLMA, NLMA)
    assert msg.name == "LMA_HO_Init" and "T" in msg.flags
    assert msg.option("mag_ipv6_address").address == ipaddress.IPv6Address(MAG)  # type: ignore[union-attr]
    assert msg.option("link_local_address").address == ipaddress.IPv6Address("fe80::1")  # type: ignore[union-attr]
    ap = msg.option("new_ap_id")
    assert ap is not None and ap.id_type.name == "BSSID" and ap.identifier == "02:aa:bb:cc:dd:ee"


def test_timestamp_from_float_and_datetime() -> None:
    import datetime as dt

    assert option("timestamp", timestamp=1700000000.5).data == bytes.fromhex("00006553f1008000")
    when = dt.datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=dt.UTC)
    assert Timestamp.from_datetime(when) == Timestamp(1700000000, 0x8000)
    assert Timestamp.from_float(1.99999999) == Timestamp(2, 0)
