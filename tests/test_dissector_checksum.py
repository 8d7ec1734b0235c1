"""The Lua dissector's Mobility Header checksum: the pseudo-header it uses.

RFC 6275 6.1.1 (after RFC 8200 8.1) and 6.3: the checksum covers the IPv6
header that carries the Mobility Header, with a Home Address option's address
as the source and a type 2 routing header's address as the destination. Each
frame here is judged by the codec (lmaho_wire) and by the dissector in tshark,
with network name resolution off and on: the dissector reads the addresses as
octets, so names in the address columns must not change its verdict.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from lmaho_dissector._samples import BMAG, PLMA, Packet, write_capture
from lmaho_wire import build, option
from lmaho_wire.capture import LINKTYPE_ETHERNET, Frame
from lmaho_wire.checksum import upper_layer_checksum
from lmaho_wire.dissect import analyse_frame
from lmaho_wire.packet import ethernet_header, ipv6_header
from support.extension_headers import destination_options, routing_type2
from support.tshark import tshark_fields

SRC = ipaddress.IPv6Address(BMAG).packed
DST = ipaddress.IPv6Address(PLMA).packed
HOME = ipaddress.IPv6Address("2001:db8:77::1").packed
ROUTED_TO = ipaddress.IPv6Address("2001:db8:88::1").packed
TUNNEL = tuple(ipaddress.IPv6Address(a).packed for a in ("2001:db8:f::1", "2001:db8:f::2"))
NEXT_MH, NEXT_DSTOPTS, NEXT_ROUTING, NEXT_IPV6 = 135, 60, 43, 41


def mobility_header(pseudo_src: bytes, pseudo_dst: bytes, good: bool) -> bytes:
    mh = build(
        "LMA_HO_Req",
        sequence=11,
        options=[option("mn_identifier", subtype=1, identifier=b"mn5@lmaho.example")],
    )
    zeroed = mh[:4] + b"\0\0" + mh[6:]
    checksum = upper_layer_checksum(pseudo_src, pseudo_dst, zeroed)
    if not good:
        checksum ^= 0x0101
    return mh[:4] + checksum.to_bytes(2, "big") + mh[6:]


def ipv6_frame(case: str, good: bool) -> bytes:
    """An Ethernet frame for ``case``: plain, home (HoA option), routed (RH2),
    both, or outer-home (a HoA option on the outer header of a tunnel, which
    the inner packet's checksum must ignore)."""
    home = case in ("home", "both")
    routed = case in ("routed", "both")
    mh = mobility_header(HOME if home else SRC, ROUTED_TO if routed else DST, good)
    next_header, payload = NEXT_MH, mh
    if home:
        next_header, payload = NEXT_DSTOPTS, destination_options(next_header, HOME) + payload
    if routed:
        next_header, payload = NEXT_ROUTING, routing_type2(next_header, ROUTED_TO) + payload
    packet = ipv6_header(SRC, DST, next_header, len(payload)) + payload
    if case == "outer-home":
        outer = destination_options(NEXT_IPV6, HOME) + packet
        packet = ipv6_header(*TUNNEL, NEXT_DSTOPTS, len(outer)) + outer
    return ethernet_header(b"\x02" * 6, b"\x04" * 6) + packet


CASES = ["plain", "home", "routed", "both", "outer-home"]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    packets = [
        Packet(float(i), ipv6_frame(case, good), b"", f"{case} {good}")
        for i, (case, good) in enumerate((c, g) for c in CASES for g in (True, False))
    ]
    return write_capture(tmp_path_factory.mktemp("checksum") / "pseudo.pcap", packets)


@pytest.fixture(scope="module")
def hosts_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Wireshark configuration folder whose hosts file names every address used."""
    home = tmp_path_factory.mktemp("wireshark-home")
    (home / "wireshark").mkdir()
    addresses = [SRC, DST, HOME, ROUTED_TO, *TUNNEL]
    lines = [f"{ipaddress.IPv6Address(a)} host{i}.example\n" for i, a in enumerate(addresses)]
    (home / "wireshark" / "hosts").write_text("".join(lines))
    return home


def checksum_status(tshark: str, capture: Path, resolve: Path | None) -> list[str]:
    fields = ["lmaho.checksum.status", "_ws.col.Source"]
    if resolve is None:
        rows = tshark_fields(tshark, capture, fields)
    else:
        env = {**os.environ, "XDG_CONFIG_HOME": str(resolve)}
        rows = tshark_fields(tshark, capture, fields, "-N", "n", env=env)
    if resolve is not None:
        # The hosts file was read: the Source column shows names, not addresses.
        assert all(row[1].endswith(".example") for row in rows), rows
    return [row[0] for row in rows]


def test_the_codec_agrees_with_the_constructed_checksums() -> None:
    for case in CASES:
        for good in (True, False):
            rec = analyse_frame(Frame(1, 0.0, LINKTYPE_ETHERNET, ipv6_frame(case, good)))
            assert rec.message is not None, case
            assert rec.message.checksum_ok is good, (case, good)


@pytest.mark.parametrize("resolve", [False, True], ids=["numeric", "names"])
def test_dissector_checksum_uses_the_rfc_pseudo_header(
    tshark: str, capture: Path, hosts_home: Path, resolve: bool
) -> None:
    statuses = checksum_status(tshark, capture, hosts_home if resolve else None)
    # Good (1) for each well-formed frame, Bad (0) for its damaged twin.
    assert statuses == ["1", "0"] * len(CASES)
