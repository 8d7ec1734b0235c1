"""Captures cut by their snapshot length (``tcpdump -s``, ``editcap -s``): what the
capture did not keep is the capture's limit, not a malformed packet.

The cut captures are made by editcap, and tshark is the judge of which frames the
cut reached: the ones it marks "[Packet size limited during capture]".
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lmaho_dissector._samples import BMAG, PLMA, frame, handover_samples
from lmaho_wire import MalformedPacket, decode
from lmaho_wire.capture import LINKTYPE_ETHERNET, Frame
from lmaho_wire.codec import default_codec
from lmaho_wire.dissect import analyse_frames
from lmaho_wire.errors import IncompleteDatagram, SnapshotCut, Truncated
from lmaho_wire.packet import ipv6_header
from support.cli import lmaho
from support.paths import DISSECTOR_LUA, PCAPS

LIMITED = "[Packet size limited during capture]"


def _cut(capture: Path, snaplen: int, out: Path) -> Path:
    """``capture`` cut at ``snaplen`` by editcap, as pcap if ``out`` says so (else pcapng)."""
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.fail("editcap is not installed (it comes with tshark)")
    kind = "pcap" if out.suffix == ".pcap" else "pcapng"
    subprocess.run([editcap, "-F", kind, "-s", str(snaplen), str(capture), str(out)], check=True)
    return out


def _decoded(capture: Path) -> list[dict[str, Any]]:
    result = lmaho("decode", str(capture), "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def _is_cut(record: dict[str, Any]) -> bool:
    return record.get("uncaptured", 0) > 0 or "snapshot" in record.get("error", {})


@pytest.mark.parametrize("snaplen", [60, 90, 128])
def test_the_frames_said_cut_are_those_tshark_marks(
    tshark: str, tmp_path: Path, snaplen: int
) -> None:
    capture = _cut(PCAPS / "mobiles-4.pcapng", snaplen, tmp_path / "cut.pcapng")
    records = _decoded(capture)
    summary = subprocess.run(
        [tshark, "-n", "-r", str(capture)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    # Frames of Mobility Headers or cut inside their IPv6 headers; decode lists no others
    # (an ICMPv6 echo cut in its data is data, and still checked as such).
    marked = {
        int(line.split()[0])
        for line in summary
        if LIMITED in line and line.split()[5] in ("MIPv6", "IPv6")
    }
    assert marked, "the cut must reach some frames"
    assert {r["frame"] for r in records if _is_cut(r)} == marked
    # Nothing the cut did is called malformed.
    assert [r for r in records if "error" in r and not _is_cut(r)] == []


def test_a_capture_cut_at_128_octets_is_still_checked_whole(tmp_path: Path) -> None:
    """-s 128 keeps each message's header, message data and first options (the MN ID
    among them): the four handovers are followed, and only the cut is warned of."""
    capture = _cut(PCAPS / "mobiles-4.pcapng", 128, tmp_path / "cut.pcapng")
    result = lmaho("check", str(capture), "--json")
    assert result.returncode == 0, result.stdout
    report = json.loads(result.stdout)
    summary = report["summary"]
    assert summary["outcomes"] == {"completed": 4}
    assert summary["violations"] == 0
    assert summary["malformed"] == 0 and summary["cut"] == 0  # every message decoded, cut
    warnings = [w for h in report["handovers"] for w in h["warnings"]]
    assert len(warnings) == 24  # six of each handover's eight messages are cut
    assert {w["rule"] for w in warnings} == {"snapshot-length"}


def test_a_capture_cut_inside_its_headers_is_not_called_malformed(tmp_path: Path) -> None:
    capture = _cut(PCAPS / "mobiles-4.pcapng", 60, tmp_path / "cut.pcapng")
    text = lmaho("check", str(capture))
    assert text.returncode == 0, text.stdout
    assert "0 malformed, 56 cut by the snapshot length" in text.stdout
    assert "24 IPv6 packet(s) cut by the capture's snapshot length" in text.stdout
    assert "VIOLATION" not in text.stdout


def test_partial_decoding_keeps_the_whole_options_and_verifies_no_checksum() -> None:
    request = next(p.mh for p in handover_samples() if p.mh[2] == 200)  # LMA_HO_Req
    whole = decode(request)
    codec = default_codec()
    for kept in range(12, len(request)):
        missing = len(request) - kept
        message = codec.decode(request[:kept], b"\x20" * 16, b"\x20" * 16, partial=missing)
        assert message.uncaptured == len(request) - kept
        assert message.checksum_ok is None
        assert message.fields == whole.fields
        options = [o for o in whole.options if o.offset + (o.length + 2 if o.type else 1) <= kept]
        assert message.options == tuple(options)
        # Not cut, or a Header Len longer than the packet was: the same octets are malformed.
        for room in (0, missing - 1):
            with pytest.raises(MalformedPacket, match="Header Len") as raised:
                codec.decode(request[:kept], partial=room)
            assert not isinstance(raised.value, Truncated)
    with pytest.raises(MalformedPacket, match="6 of the 12 octets"):
        codec.decode(request[:6], partial=len(request))


def test_a_cut_fragment_is_not_reassembled() -> None:
    """The octets a capture did not keep would be a hole in the datagram: the cut
    fragment is said cut, and its datagram never completes (it is reported so)."""
    pbu = next(p.mh for p in handover_samples() if p.mh[2] == 5)
    src, dst = b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01", b"\x20\x01\x0d\xb8" + bytes(11) + b"\x02"
    macs = bytes(12) + b"\x86\xdd"

    def fragment(number: int, offset: int, more: bool, data: bytes, uncaptured: int) -> Frame:
        header = bytes([135, 0]) + (offset | more).to_bytes(2, "big") + (7).to_bytes(4, "big")
        packet = ipv6_header(src, dst, 44, len(header) + len(data)) + header + data
        kept = len(packet) - uncaptured
        return Frame(number, float(number), LINKTYPE_ETHERNET, macs + packet[:kept], uncaptured)

    whole = list(
        analyse_frames([fragment(1, 0, True, pbu[:16], 0), fragment(2, 16, False, pbu[16:], 0)])
    )
    assert whole[1].message is not None and whole[1].message.name == "PBU"
    records = list(
        analyse_frames([fragment(1, 0, True, pbu[:16], 8), fragment(2, 16, False, pbu[16:], 0)])
    )
    assert isinstance(records[0].error, SnapshotCut)
    assert "not reassembled" in records[0].error.what
    assert all(r.message is None for r in records)
    assert isinstance(records[-1].error, IncompleteDatagram)


@pytest.mark.parametrize("snaplen", [60, 90, 128])
def test_the_dissector_says_of_a_cut_message_what_the_codec_says(
    tshark: str, tmp_path: Path, snaplen: int
) -> None:
    """Field by field: the octets not captured, and the checksum left unverified; and
    nothing the cut did is an error in tshark's expert summary."""
    capture = _cut(PCAPS / "mobiles-4.pcapng", snaplen, tmp_path / "cut.pcapng")
    lua = ["-X", f"lua_script:{DISSECTOR_LUA}"]
    fields = subprocess.run(
        [tshark, "-n", "-r", str(capture), *lua, "-Y", "lmaho",
         "-T", "fields", "-e", "frame.number", "-e", "lmaho.uncaptured",
         "-e", "lmaho.checksum.status"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    shown = {int(n): (int(u or 0), status) for n, u, status in (f.split("\t") for f in fields)}
    records = {r["frame"]: r for r in _decoded(capture)}

    def uncaptured(record: dict[str, Any]) -> int:
        if "error" in record:  # octets of the frame not kept: the Mobility Header's last
            return int(record["error"]["snapshot"]["length"] - record["error"]["snapshot"]["kept"])
        return int(record["uncaptured"])

    said = {n: uncaptured(records[n]) for n in shown if _is_cut(records[n])}
    assert said, "the cut must reach some of lmaho's messages"
    assert {n: u for n, (u, _) in shown.items() if u} == said
    # Unverified (2) where cut; no status where even the header was not kept whole.
    assert all(shown[n][1] in ("2", "") for n in said)
    experts = subprocess.run(
        [tshark, "-n", "-r", str(capture), *lua, "-q", "-z", "expert"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "Errors" not in experts and "Malformed" not in experts
    assert "Packet size limited during capture" in experts


def test_a_header_len_longer_than_the_packet_was_is_malformed_though_cut(
    tshark: str, tmp_path: Path
) -> None:
    """Cut or not, a Header Len beyond what the packet had on the wire is a lie: both
    the codec and the dissector call it malformed, not limited by the capture."""
    capture = bytearray(_cut(PCAPS / "handover.pcap", 128, tmp_path / "cut.pcap").read_bytes())
    header_len_at = 24 + 16 + 14 + 40 + 1  # the first frame's LMA_HO_Req
    capture[header_len_at] = 200
    lying = tmp_path / "lying.pcap"
    lying.write_bytes(bytes(capture))
    first = _decoded(lying)[0]
    assert first["error"]["what"].startswith("Header Len 200 says 1608 octets"), first
    assert "snapshot" not in first["error"]
    experts = subprocess.run(
        [tshark, "-n", "-r", str(lying), "-X", f"lua_script:{DISSECTOR_LUA}", "-q", "-z", "expert"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "Header Len 200 says 1608 octets but only 74 are present" in experts


def _cut_pcap(path: Path, frames: list[tuple[bytes, int]]) -> Path:
    """A pcap of (frame, octets kept) records: each keeps the frame's first octets (its
    snapshot length) and gives the whole frame's length as the original one."""
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for n, (whole, kept) in enumerate(frames):
            part = whole[:kept]
            out.write(struct.pack("<IIII", 1000 + n, 0, len(part), len(whole)) + part)
    return path


def test_many_cut_messages_never_break_the_dissector(tshark: str, tmp_path: Path) -> None:
    """Wireshark's MIPv6 dissector throws past Lua on a cut packet, and each time Lua's
    count of C calls stays raised: some 200 cut PBUs later every Lua dissector failed,
    with "C stack overflow" in a tree and silently in the columns (a whole LMA_HO_Req
    then showed as bare IPv6). lmaho shows a cut packet it would hand to that dissector
    itself: 500 of them, and the message after them is still lmaho's."""
    samples = handover_samples()
    pbu = next(p for p in samples if p.mh[2] == 5)
    request = next(p for p in samples if p.mh[2] == 200)
    brr = bytes([59, 1, 0, 0, 0, 0, 0, 0, 1, 6, 0, 0, 0, 0, 0, 0])  # a Binding Refresh Request
    cut = 14 + 40 + 10
    frames = [(pbu.frame, cut), (frame(brr, BMAG, PLMA), cut)] * 250
    capture = _cut_pcap(tmp_path / "cut.pcap", [*frames, (request.frame, len(request.frame))])
    lua = ["-X", f"lua_script:{DISSECTOR_LUA}"]
    columns = ["-T", "fields", "-e", "_ws.col.Protocol", "-e", "_ws.col.Info"]
    for mode in ([], ["-2"], ["-V"], ["-Y", "lmaho or mipv6"]):
        out = subprocess.run(
            [tshark, "-n", "-r", str(capture), *lua, *mode],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "Lua Error" not in out and "C stack overflow" not in out, mode
        shown = subprocess.run(
            [tshark, "-n", "-r", str(capture), *lua, *mode, *columns],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()  # fmt: skip
        assert shown[-1].startswith("LMAHO\tLMA Handover Request (LMA_HO_Req)"), mode
        assert shown[-2] == "MIPv6\tMobility Header type 0 [Packet size limited during capture]"
        assert shown[-3].endswith("[Packet size limited during capture]"), mode
    verbose = subprocess.run(
        [tshark, "-n", "-r", str(capture), *lua, "-V"], capture_output=True, text=True
    ).stdout
    brr_tree = verbose.rsplit("\nFrame ", 2)[1]
    assert "Packet size limited during capture: 10 of the 16 octets" in brr_tree


def test_a_cut_inside_the_header_or_message_data_is_never_malformed(
    tshark: str, tmp_path: Path
) -> None:
    """Cut anywhere from before the MH Type to inside the message data: each message,
    lmaho's or Wireshark's, is said limited by the capture, with no Malformed item."""
    brr = bytes([59, 1, 0, 0, 0, 0, 0, 0, 1, 6, 0, 0, 0, 0, 0, 0])  # a Binding Refresh Request
    frames = [p.frame for p in handover_samples()] + [frame(brr, BMAG, PLMA)]
    ethernet_ipv6 = 14 + 40
    kept = [(whole, ethernet_ipv6 + octets) for octets in range(0, 12) for whole in frames]
    capture = _cut_pcap(tmp_path / "cut.pcap", kept)
    lua = ["-X", f"lua_script:{DISSECTOR_LUA}"]
    verbose = subprocess.run(
        [tshark, "-n", "-r", str(capture), *lua, "-V"], capture_output=True, text=True, check=True
    ).stdout
    assert "Malformed" not in verbose and "Lua Error" not in verbose
    infos = subprocess.run(
        [tshark, "-n", "-r", str(capture), *lua, "-T", "fields", "-e", "_ws.col.Info"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(infos) == len(kept)
    assert all(info.endswith("[Packet size limited during capture]") for info in infos), infos
