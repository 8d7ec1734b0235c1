"""``lmaho decode`` end to end: a crafted capture, bad packets in it, unreadable files."""

from __future__ import annotations

import json
import os
import select
import subprocess
from pathlib import Path

from lmaho_dissector._samples import frame
from lmaho_wire import CaptureWriter, build, decode, option
from support.cli import LMAHO_COMMAND, lmaho_process
from support.paths import PCAPS

SRC = "2001:db8:b::1"
DST = "2001:db8:a::1"


def test_decode_json_reports_good_and_bad_packets(tmp_path: Path) -> None:
    mh = build(
        "LMA_HO_Req",
        sequence=9,
        options=[
            option("mn_identifier", subtype="NAI", identifier="mn1@lmaho.example"),
            option("new_ap_id", id_type="BSSID", identifier="02:aa:bb:cc:dd:ee"),
        ],
        src=SRC,
        dst=DST,
    )
    path = tmp_path / "c.pcap"
    with CaptureWriter(path) as w:
        w.write(frame(mh, SRC, DST), 1.0)
        w.write(frame(mh, SRC, DST)[:-8], 2.0)
        corrupt = bytearray(frame(mh, SRC, DST))
        corrupt[-10] ^= 0x55
        w.write(bytes(corrupt), 3.0)
    result = lmaho_process("decode", str(path), "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in records] == [1, 2, 3]
    assert records[0]["message"] == "LMA_HO_Req"
    assert records[0]["sequence"] == 9
    assert records[0]["checksum_ok"] is True
    new_ap = next(o for o in records[0]["options"] if o["option"] == "new_ap_id")
    assert new_ap["identifier"] == "02:aa:bb:cc:dd:ee"
    assert "error" in records[1] and records[1]["error"]["offset"] == 1
    assert records[2].get("checksum_ok") is False or "error" in records[2]


def test_decode_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "not.pcap"
    bogus.write_bytes(b"this is not a capture file at all")
    for target in (str(bogus), str(tmp_path / "missing.pcap")):
        result = lmaho_process("decode", target)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("lmaho: error: ")


def test_decode_prints_undecodable_text_escaped(tmp_path: Path) -> None:

    mh = build(
        "PBU",
        sequence=1,
        options=[option("mn_identifier", subtype="NAI", identifier=b"\xff\xfemn")],
        src=SRC,
        dst=DST,
    )
    path = tmp_path / "nai.pcap"
    with CaptureWriter(path) as w:
        w.write(frame(mh, SRC, DST), 1.0)
    env = {"PYTHONIOENCODING": "utf-8"}
    for extra in ((), ("--verbose",)):
        result = lmaho_process("decode", str(path), *extra, env=env)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert "\\udcff\\udcfemn" in result.stdout


def _lmaho_stdin(data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*LMAHO_COMMAND, *args],
        input=data,
        capture_output=True,
        timeout=60,
    )


def test_dash_reads_standard_input_like_a_file() -> None:
    for sample in ("handover.pcap", "mobiles-4.pcapng"):
        path = PCAPS / sample
        for command in (["decode", "--json"], ["check", "--json"], ["ladder", "--width", "110"]):
            from_file = _lmaho_stdin(b"", *command[:1], str(path), *command[1:])
            from_pipe = _lmaho_stdin(path.read_bytes(), *command[:1], "-", *command[1:])
            assert from_file.returncode == from_pipe.returncode, (sample, command)
            assert from_pipe.stdout
            if command[0] == "check":
                # The report names its capture: "-" here.
                report, want = json.loads(from_pipe.stdout), json.loads(from_file.stdout)
                assert report.pop("capture") == "-"
                want.pop("capture")
                assert report == want, sample
            else:
                assert from_pipe.stdout == from_file.stdout, (sample, command)
    empty = _lmaho_stdin(b"", "decode", "-")
    assert empty.returncode == 2
    assert empty.stderr.startswith(b"lmaho: error: standard input: empty or truncated file")


def test_decode_from_a_pipe_shows_each_packet_as_it_arrives() -> None:
    # A capture that is still being written (tcpdump -U -w - | lmaho decode -): the
    # first packet's line must come out while the pipe is open.
    data = (PCAPS / "handover.pcap").read_bytes()
    first_record_end = 24 + 16 + int.from_bytes(data[24 + 8 : 24 + 12], "little")
    # Python buffers a pipe's output unless told otherwise; make sure it is not told.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen(
        [*LMAHO_COMMAND, "decode", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(data[:first_record_end])
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "no line while the pipe stays open"
        line = proc.stdout.readline().decode()
        assert line.split()[0] == "1" and "LMA_HO_Req" in line
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_errors_from_standard_input_name_it() -> None:
    # ladder spools standard input to a file; its errors still say where the bytes came from.
    for command in ("decode", "check", "ladder"):
        result = _lmaho_stdin(b"\xd4\xc3\xb2\xa1\x02\x00", command, "-")
        assert result.returncode == 2, command
        assert result.stderr == (
            b"lmaho: error: standard input: truncated pcap file header (6 of 24 octets)\n"
        ), command


def test_closed_standard_input_is_a_clear_error() -> None:
    for command in ("decode", "check", "ladder"):
        result = subprocess.run(
            [*LMAHO_COMMAND, command, "-"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            preexec_fn=lambda: os.close(0),
        )
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr == b"lmaho: error: standard input: closed, nothing to read\n"


def test_decode_verbose_names_each_option_once(tmp_path: Path) -> None:
    """Option lines read "<title> option (type ...)": an unknown type is "Unknown option",
    never "option Unknown option"; a Pad1 is "1 octet"."""
    mh = bytearray(
        build(
            "LMA_HO_Req",
            sequence=3,
            options=[
                option("mn_identifier", subtype="NAI", identifier="mn1@lmaho.example"),
                option("new_ap_id", id_type="BSSID", identifier="02:aa:bb:cc:dd:ee"),
            ],
            src=SRC,
            dst=DST,
        )
    )
    new_ap = next(o for o in decode(bytes(mh)).options if o.key == "new_ap_id")
    mh[new_ap.offset] = 97  # a type nobody has
    path = tmp_path / "unknown.pcap"
    with CaptureWriter(path) as w:
        w.write(frame(bytes(mh), SRC, DST), 1.0)
    result = lmaho_process("decode", str(path), "--verbose")
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "Mobile Node Identifier option (type 8, length 18, offset 12)" in lines
    assert f"Unknown option (type 97, length {new_ap.length}, offset {new_ap.offset})" in lines
    assert not any("option Unknown" in line or "option option" in line for line in lines)
