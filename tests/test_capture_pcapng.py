"""Reading pcapng: several interfaces and link types, both byte orders, every
packet block, several sections, and damaged files that must be clear errors.

Files are built block by block here, and one comes from Wireshark's own
mergecap, which writes an interface per input file.
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmaho_dissector._samples import frame
from lmaho_wire import CaptureError, CaptureWriter, build, option
from lmaho_wire.capture import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV6,
    LINKTYPE_RAW,
    read_frames,
)
from support.cli import lmaho_process
from support.paths import PCAPS

SRC = "2001:db8:b::1"
DST = "2001:db8:a::1"


def mobility_frame(sequence: int) -> bytes:
    mh = build(
        "LMA_HO_Req",
        sequence=sequence,
        options=[option("mn_identifier", subtype="NAI", identifier="mn1@lmaho.example")],
        src=SRC,
        dst=DST,
    )
    return frame(mh, SRC, DST)


ETHERNET = mobility_frame(1)
RAW_IPV6 = mobility_frame(2)[14:]  # the same without its Ethernet header


def block(order: str, kind: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack(order + "II", kind, length) + body + struct.pack(order + "I", length)


def section(order: str) -> bytes:
    magic = struct.pack(order + "I", 0x1A2B3C4D)
    body = magic + struct.pack(order + "HHq", 1, 0, -1)
    length = len(body) + 12
    return (
        b"\x0a\x0d\x0d\x0a"
        + struct.pack(order + "I", length)
        + body
        + struct.pack(order + "I", length)
    )


def interface(order: str, linktype: int, tsresol: int | None = None, snaplen: int = 0) -> bytes:
    body = struct.pack(order + "HHI", linktype, 0, snaplen)
    if tsresol is not None:
        body += struct.pack(order + "HH", 9, 1) + bytes([tsresol]) + b"\0\0\0"
        body += struct.pack(order + "HH", 0, 0)
    return block(order, 1, body)


def enhanced(order: str, iface: int, ticks: int, data: bytes, caplen: int | None = None) -> bytes:
    n = len(data) if caplen is None else caplen
    head = struct.pack(order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, n, len(data))
    return block(order, 6, head + data)


def simple(order: str, data: bytes) -> bytes:
    return block(order, 3, struct.pack(order + "I", len(data)) + data)


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_interfaces_link_types_and_time_resolutions(tmp_path: Path, order: str) -> None:
    path = tmp_path / "multi.pcapng"
    path.write_bytes(
        section(order)
        + interface(order, LINKTYPE_ETHERNET)  # microseconds by default
        + interface(order, LINKTYPE_IPV6, tsresol=9)  # nanoseconds
        + interface(order, LINKTYPE_RAW, tsresol=0x80 | 10)  # 2^-10 s
        + enhanced(order, 0, 1_500_000, ETHERNET)
        + enhanced(order, 1, 2_250_000_000, RAW_IPV6)
        + block(order, 0x0BAD, b"a block type nobody knows")
        + enhanced(order, 2, 3 * 1024 + 512, RAW_IPV6)
        + simple(order, ETHERNET)
    )
    frames = list(read_frames(path))
    assert [f.number for f in frames] == [1, 2, 3, 4]
    assert [f.linktype for f in frames] == [
        LINKTYPE_ETHERNET,
        LINKTYPE_IPV6,
        LINKTYPE_RAW,
        LINKTYPE_ETHERNET,
    ]
    assert [f.data for f in frames] == [ETHERNET, RAW_IPV6, RAW_IPV6, ETHERNET]
    assert [f.time for f in frames] == [1.5, 2.25, 3.5, 0.0]


def test_a_second_section_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "sections.pcapng"
    path.write_bytes(
        section("<")
        + interface("<", LINKTYPE_ETHERNET)
        + enhanced("<", 0, 1, ETHERNET)
        + section(">")
        + interface(">", LINKTYPE_IPV6)
        + enhanced(">", 0, 2, RAW_IPV6)
    )
    frames = list(read_frames(path))
    assert [(f.linktype, f.data) for f in frames] == [
        (LINKTYPE_ETHERNET, ETHERNET),
        (LINKTYPE_IPV6, RAW_IPV6),
    ]


def test_simple_packet_block_is_cut_at_the_snaplen(tmp_path: Path) -> None:
    path = tmp_path / "spb.pcapng"
    path.write_bytes(
        section("<") + interface("<", LINKTYPE_ETHERNET, snaplen=60) + simple("<", ETHERNET)
    )
    (only,) = read_frames(path)
    assert only.data == ETHERNET[:60]


@pytest.mark.skipif(shutil.which("mergecap") is None, reason="mergecap is not installed")
def test_mergecap_file_of_two_link_types_decodes(tmp_path: Path) -> None:
    """Wireshark's mergecap gives each input its interface: Ethernet and raw IPv6."""
    eth, raw, merged = tmp_path / "eth.pcap", tmp_path / "raw.pcap", tmp_path / "merged.pcapng"
    with CaptureWriter(eth) as w:
        w.write(ETHERNET, 1.0)
    with CaptureWriter(raw, linktype=LINKTYPE_RAW) as w:
        w.write(RAW_IPV6, 2.0)
    subprocess.run(["mergecap", "-F", "pcapng", "-w", str(merged), str(eth), str(raw)], check=True)
    result = lmaho_process("decode", str(merged), "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r.get("message"), r.get("sequence")) for r in records] == [
        ("LMA_HO_Req", 1),
        ("LMA_HO_Req", 2),
    ]


GOOD = section("<") + interface("<", LINKTYPE_ETHERNET) + enhanced("<", 0, 1, ETHERNET)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (GOOD[:-3], "cut off"),
        (GOOD + b"\x06\x00\x00", "cut off: 3 of 8 header octets"),
        (
            section("<") + enhanced("<", 0, 1, ETHERNET),
            "names interface 0, but the section describes 0",
        ),
        (GOOD[:-4] + struct.pack("<I", 999), "at its end"),
        (GOOD + struct.pack("<II", 6, 0x7FFFFFF0), "impossible block length"),
        (GOOD + struct.pack("<II", 6, 10), "impossible block length"),
        (
            GOOD[:28] + b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00" + b"\x00" * 20,
            "not a pcapng section header",
        ),
        (
            section("<")
            + interface("<", LINKTYPE_ETHERNET)
            + enhanced("<", 0, 1, ETHERNET, caplen=4000),
            "claims 4000 captured octets",
        ),
    ],
    ids=[
        "truncated-block",
        "truncated-header",
        "no-interface",
        "trailer-mismatch",
        "huge-length",
        "short-length",
        "bad-section",
        "lying-caplen",
    ],
)
def test_damaged_pcapng_is_a_specific_error(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.pcapng"
    path.write_bytes(data)
    with pytest.raises(CaptureError, match=message):
        list(read_frames(path))


SAMPLE = PCAPS / "handover.pcapng"


@settings(max_examples=400, deadline=None, database=None)
@given(data=st.data())
def test_mutated_pcapng_yields_frames_or_a_capture_error(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    pristine = SAMPLE.read_bytes()
    damaged = bytearray(pristine)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(damaged) - 1))
        damaged[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))
    path = tmp_path_factory.mktemp("fuzz") / "m.pcapng"
    path.write_bytes(bytes(damaged[:cut]))
    try:
        for f in read_frames(path):
            assert isinstance(f.data, bytes) and f.number >= 1
    except CaptureError as e:
        assert str(e).startswith(str(path))


@pytest.mark.parametrize("sample", ["handover.pcap", "mobiles-4.pcapng"])
def test_on_read_counts_every_octet_of_the_file(sample: str) -> None:
    told: list[int] = []
    frames = list(read_frames(PCAPS / sample, on_read=told.append))
    assert frames == list(read_frames(PCAPS / sample))
    assert told == sorted(told) and told[-1] == (PCAPS / sample).stat().st_size


# --- compressed captures ------------------------------------------------------------


def test_a_gzip_compressed_capture_reads_as_the_capture(tshark: str, tmp_path: Path) -> None:
    """As Wireshark does: the same records, and the same frames tshark reads from it."""
    plain = PCAPS / "mobiles-4.pcapng"
    packed = tmp_path / "mobiles-4.pcapng.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    want = lmaho_process("decode", str(plain), "--json")
    got = lmaho_process("decode", str(packed), "--json")
    assert (got.returncode, got.stdout) == (0, want.stdout)
    checked = lmaho_process("check", str(packed))
    assert checked.returncode == 0 and "handovers: 4 (4 completed)" in checked.stdout
    frames = subprocess.run(
        [tshark, "-r", str(packed), "-T", "fields", "-e", "frame.number"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len(frames) == sum(1 for _ in read_frames(packed)) == 88


def test_a_damaged_or_foreign_compressed_capture_is_a_clear_error(tmp_path: Path) -> None:
    packed = gzip.compress((PCAPS / "mobiles-4.pcapng").read_bytes())
    cut = tmp_path / "cut.pcapng.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    result = lmaho_process("decode", str(cut))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"lmaho: error: {cut}: the gzip stream ends early" in result.stderr
    assert result.stdout.count("\n") > 10  # the frames before the cut
    damaged = tmp_path / "damaged.pcapng.gz"
    damaged.write_bytes(packed[:10] + bytes(b ^ 0x55 for b in packed[10:]))
    result = lmaho_process("check", str(damaged))
    assert result.returncode == 2 and "damaged gzip stream" in result.stderr
    twice = tmp_path / "twice.pcapng.gz.gz"  # one level, as Wireshark: no unbounded nesting
    twice.write_bytes(gzip.compress(packed))
    result = lmaho_process("decode", str(twice))
    assert result.returncode == 2 and "not a pcap or pcapng file (starts with 1f8b" in result.stderr
    zstd = tmp_path / "capture.pcapng.zst"
    zstd.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(20))
    result = lmaho_process("decode", str(zstd))
    assert result.returncode == 2
    assert "a zstd-compressed capture; lmaho reads gzip only: zstd -dc" in result.stderr
