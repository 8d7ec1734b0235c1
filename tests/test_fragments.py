"""IPv6 fragments in decode, check and ladder: a crafted capture's PBU cut up by scapy.

The captures are ``lmaho craft``'s sample (pcaps/handover.pcap) with its (f)
PBU replaced by the fragments scapy's ``fragment6`` makes of it (or an atomic
fragment, or fragments edited to overlap or go missing), so the fragments
come from another tool than the one that reassembles them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import rdpcap, wrpcap

from lmaho_check import check_records
from lmaho_wire.capture import LINKTYPE_ETHERNET, Frame
from lmaho_wire.dissect import analyse_capture, analyse_frames
from lmaho_wire.errors import IncompleteDatagram
from lmaho_wire.fragments import Reassembler
from lmaho_wire.packet import ethernet_header, ipv6_header
from support.cli import lmaho
from support.paths import PCAPS

CRAFTED = PCAPS / "handover.pcap"
PBU_FRAME = 5  # the (f) PBU of the crafted handover
MH = 135


def _with_pbu_as(tmp_path: Path, cut: object) -> Path:
    """The crafted capture with its PBU replaced by ``cut(pbu_ipv6_header, mh_octets)``."""
    packets = rdpcap(str(CRAFTED))
    out: list[Packet] = []
    for number, packet in enumerate(packets, 1):
        if number != PBU_FRAME:
            out.append(packet)
            continue
        ip = packet[IPv6]
        head = IPv6(src=ip.src, dst=ip.dst, hlim=ip.hlim)
        for piece in cut(head, bytes(ip.payload)):  # type: ignore[operator]
            frame = Ether(src=packet.src, dst=packet.dst) / piece
            frame.time = packet.time
            out.append(frame)
    path = tmp_path / "fragmented.pcap"
    wrpcap(str(path), out)
    return path


def _fragments(head: IPv6, mh: bytes, size: int) -> list[Packet]:
    pieces: list[Packet] = fragment6(head / IPv6ExtHdrFragment(id=0x1234, nh=MH) / Raw(mh), size)
    return pieces


def two_fragments(head: IPv6, mh: bytes) -> list[Packet]:
    pieces = _fragments(head, mh, 96)
    assert len(pieces) == 2
    return pieces


def three_out_of_order(head: IPv6, mh: bytes) -> list[Packet]:
    pieces = _fragments(head, mh, 80)
    assert len(pieces) == 3
    return [pieces[2], pieces[0], pieces[1]]


def atomic(head: IPv6, mh: bytes) -> list[Packet]:
    return [head / IPv6ExtHdrFragment(id=7, nh=MH, offset=0, m=0) / Raw(mh)]


def missing_last(head: IPv6, mh: bytes) -> list[Packet]:
    return two_fragments(head, mh)[:1]


def overlapping(head: IPv6, mh: bytes) -> list[Packet]:
    first, second = two_fragments(head, mh)
    second[IPv6ExtHdrFragment].offset -= 1  # 8 octets back, over the first fragment's end
    return [first, second]


@pytest.mark.parametrize("cut", [atomic, two_fragments, three_out_of_order])
def test_a_fragmented_pbu_is_the_pbu(tmp_path: Path, cut: object) -> None:
    path = _with_pbu_as(tmp_path, cut)
    records = [r for r in analyse_capture(path) if r.message is not None]
    pbu = next(r for r in records if r.message is not None and r.message.name == "PBU")
    assert pbu.message is not None and pbu.message.checksum_ok
    assert pbu.message.mn_identifier == "mn1@lmaho.example"

    decoded = [json.loads(line) for line in lmaho("decode", "--json", str(path)).stdout.split("\n")
               if line.startswith("{")]  # fmt: skip
    assert [d["message"] for d in decoded if "message" in d].count("PBU") == 1
    assert not [d for d in decoded if "error" in d]

    check = lmaho("check", str(path))
    assert check.returncode == 0, check.stdout
    assert "no (f) PBU" not in check.stdout
    assert "handovers: 1 (1 completed)" in check.stdout
    assert "(f) PBU" in lmaho("ladder", str(path), "--width", "120").stdout


def test_reassembled_pbu_keeps_its_fragments_frames(tmp_path: Path) -> None:
    path = _with_pbu_as(tmp_path, three_out_of_order)
    pbu = next(r for r in analyse_capture(path) if r.message and r.message.name == "PBU")
    # Numbered as the fragment that completed it (the third), listing all three.
    assert pbu.frame.number == PBU_FRAME + 2
    assert pbu.fragments == (PBU_FRAME, PBU_FRAME + 1, PBU_FRAME + 2)


@pytest.mark.parametrize(
    ("cut", "reason"),
    [(missing_last, "incomplete at the end of the capture"), (overlapping, "RFC 5722")],
)
def test_a_pbu_that_never_completes_is_reported(tmp_path: Path, cut: object, reason: str) -> None:
    path = _with_pbu_as(tmp_path, cut)
    decoded = lmaho("decode", str(path))
    assert "MALFORMED" in decoded.stdout and reason in decoded.stdout
    assert " PBU " not in decoded.stdout

    result = check_records(analyse_capture(path))
    warnings = [i for i in result.analyser.issues if reason in i.what]
    assert len(warnings) == 1 and warnings[0].frames[0] == PBU_FRAME
    # The handover lacks its PBU, as it does on the wire.
    check = lmaho("check", str(path))
    assert "no (f) PBU" in check.stdout and reason in check.stdout


# --- the reassembler's bounds, on fragments made here -------------------------------

SRC = bytes.fromhex("20010db8000b" + "00" * 9 + "01")
DST = bytes.fromhex("20010db8000a" + "00" * 9 + "01")
MACS = ethernet_header(b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02")


def fragment_frame(
    number: int, time: float, identification: int, offset: int, more: bool, data: bytes
) -> Frame:
    header = bytes([MH, 0]) + (offset | more).to_bytes(2, "big") + identification.to_bytes(4, "big")
    packet = ipv6_header(SRC, DST, 44, len(header) + len(data)) + header + data
    return Frame(number, time, LINKTYPE_ETHERNET, MACS + packet)


def test_incomplete_datagram_times_out_after_60_seconds() -> None:
    frames = [
        fragment_frame(1, 0.0, 1, 0, True, bytes(16)),
        fragment_frame(2, 59.0, 2, 0, True, bytes(16)),  # another datagram, still in time
        fragment_frame(3, 61.0, 3, 0, True, bytes(16)),
    ]
    records = list(analyse_frames(frames))
    given_up = [r for r in records if isinstance(r.error, IncompleteDatagram)]
    assert [(r.fragments, "after 60 s" in r.error.what) for r in given_up if r.error] == [
        ((1,), True),  # timed out when frame 3 came
        ((2,), False),  # at the end of the capture
        ((3,), False),
    ]
    assert records.index(given_up[0]) == 2  # reported before frame 3


def test_a_flood_of_fragments_is_bounded() -> None:
    reassembler = Reassembler(max_datagrams=100, max_octets=64_000)
    most_held = most_octets = 0
    flood = (fragment_frame(n, n * 0.001, n, 0, True, bytes(1024)) for n in range(1, 5001))
    given_up = 0
    for record in analyse_frames(flood, reassembler=reassembler):
        given_up += isinstance(record.error, IncompleteDatagram)
        most_held = max(most_held, reassembler.held_datagrams)
        most_octets = max(most_octets, reassembler.held_octets)
    assert most_held <= 100 and most_octets <= 64_000
    assert given_up == 5000  # each one reported once, none kept


def test_exact_duplicates_do_not_overlap() -> None:
    mh_frames = [
        fragment_frame(1, 0.0, 9, 0, True, bytes(8)),
        fragment_frame(2, 0.0, 9, 0, True, bytes(8)),  # the same fragment captured twice
        fragment_frame(3, 0.0, 9, 8, False, bytes(8)),
    ]
    records = list(analyse_frames(mh_frames))
    assert not any(isinstance(r.error, IncompleteDatagram) for r in records)
    assert records[-1].fragments == (1, 2, 3)
    assert records[-1].payload is not None and records[-1].payload.proto == MH


def test_many_small_fragments_in_reverse_complete_in_linear_time() -> None:
    count = 4000  # 32,000 octets in 8-octet fragments, the last one first
    frames = [
        fragment_frame(n + 1, 0.0, 5, (count - 1 - n) * 8, n != 0, bytes([n % 256]) * 8)
        for n in range(count)
    ]
    records = list(analyse_frames(frames))
    whole = records[-1]
    assert whole.fragments == tuple(range(1, count + 1))
    assert whole.payload is not None
    body = whole.frame.data[whole.payload.offset : whole.payload.end]
    assert len(body) == count * 8
    assert body[:8] == bytes([(count - 1) % 256]) * 8 and body[-8:] == bytes(8)


def test_a_tunnel_packet_fragmented_on_its_outer_header_is_held_to_its_tunnel(
    tmp_path: Path,
) -> None:
    """IPv6-in-IPv6 data fragmented by the tunnel's entry: reassembled, then checked."""
    out: list[Packet] = []
    tunnelled = 0
    for packet in rdpcap(str(CRAFTED)):
        ip = packet[IPv6]
        if ip.nh != 41:
            out.append(packet)
            continue
        tunnelled += 1
        head = IPv6(src=ip.src, dst=ip.dst, hlim=ip.hlim)
        datagram = head / IPv6ExtHdrFragment(id=tunnelled, nh=41) / Raw(bytes(ip.payload))
        for piece in fragment6(datagram, 80):
            frame = Ether(src=packet.src, dst=packet.dst) / piece
            frame.time = packet.time
            out.append(frame)
    path = tmp_path / "tunnel-fragments.pcap"
    wrpcap(str(path), out)
    plain = check_records(analyse_capture(CRAFTED))
    result = check_records(analyse_capture(path))
    assert tunnelled and len(out) > len(rdpcap(str(CRAFTED)))
    assert result.analyser.counters.data == plain.analyser.counters.data == 14
    assert not result.violations and not result.warnings
    assert [h.outcome.status for h in result.handovers if h.outcome] == ["completed"]
