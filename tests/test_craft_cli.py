"""``lmaho craft`` end to end: options, formats, determinism, memory, and outside judges."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import tracemalloc
import typing
from pathlib import Path

import pytest

from lmaho_cli.craft import SAMPLES, craft
from lmaho_entities import DEFAULT_SCENARIO
from lmaho_wire import decode, read_frames
from lmaho_wire.checksum import upper_layer_checksum
from lmaho_wire.dissect import analyse_capture
from lmaho_wire.packet import IPPROTO_MH, find_ipv6
from support.cli import Run, lmaho_process
from support.paths import PCAPS, ROOT

SAMPLE_FILES = [PCAPS / s.file for s in SAMPLES]
COMMENT_SEVERITY = "1048576"  # Wireshark's PI_COMMENT: a pcapng packet comment


def lmaho(*args: str) -> Run:
    return lmaho_process(*args, cwd=ROOT)


def comments(path: Path) -> list[str]:
    """The comment of each packet of a pcapng file ("" for none), read from its blocks.

    dpkt's pcapng reader drops packet options, so walk the Enhanced Packet Blocks.
    """
    data = path.read_bytes()
    pos, found = 0, []
    while pos < len(data):
        kind = int.from_bytes(data[pos : pos + 4], "little")
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if kind == 6:  # Enhanced Packet Block: options follow the padded packet data
            captured = int.from_bytes(data[pos + 20 : pos + 24], "little")
            opt = pos + 28 + (captured + 3) // 4 * 4
            end = pos + length - 4
            text = ""
            while opt + 4 <= end:
                code = int.from_bytes(data[opt : opt + 2], "little")
                size = int.from_bytes(data[opt + 2 : opt + 4], "little")
                if code == 0:
                    break
                if code == 1:  # opt_comment
                    text = data[opt + 4 : opt + 4 + size].decode()
                opt += 4 + (size + 3) // 4 * 4
            found.append(text)
        pos += length
    return found


# --- the command ----------------------------------------------------------------------


def test_default_run_writes_the_handover_with_a_comment_per_packet(tmp_path: Path) -> None:
    out = tmp_path / "h.pcapng"
    result = lmaho("craft", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("lmaho craft: ") and "22 packets (8 signalling, 14 data)" in summary
    assert "1 completed, 0 failed" in summary
    notes = comments(out)
    assert len(notes) == 22
    assert notes[0] == "(b) LMA_HO_Req bMAG -> PLMA [mn1@lmaho.example, handover 1]"
    assert [n.split(")")[0] + ")" for n in notes[:8]] == [f"({s})" for s in "bcdefghi"]
    assert notes[8] == "(j) echo request 1 CN -> PLMA [mn1@lmaho.example, handover 1]"
    assert "(j) echo request 1 PLMA => NLMA in IPv6-in-IPv6" in notes[9]
    assert any(n.startswith("(k) echo reply 1 bMAG => NLMA in IPv6-in-IPv6") for n in notes)


def test_format_follows_the_extension_unless_given(tmp_path: Path) -> None:
    for name, option, magic in (
        ("a.pcap", (), b"\xd4\xc3\xb2\xa1"),
        ("b.pcapng", (), b"\x0a\x0d\x0d\x0a"),
        ("c.cap", ("--format", "pcapng"), b"\x0a\x0d\x0d\x0a"),
        ("d.pcapng", ("-F", "pcap"), b"\xd4\xc3\xb2\xa1"),
    ):
        assert lmaho("craft", str(tmp_path / name), *option).returncode == 0
        assert (tmp_path / name).read_bytes()[:4] == magic
    pcap_frames = [f.data for f in read_frames(tmp_path / "a.pcap")]
    pcapng_frames = [f.data for f in read_frames(tmp_path / "b.pcapng")]
    assert pcap_frames == pcapng_frames


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    def run(name: str, seed: int) -> bytes:
        path = tmp_path / name
        craft(path, fmt="pcapng", mobiles=5, handovers=2, seed=seed, progress=False)
        return path.read_bytes()

    assert run("a.pcapng", 7) == run("b.pcapng", 7)
    assert run("c.pcapng", 8) != run("a.pcapng", 7)


def test_mobiles_and_handovers_interleave(tmp_path: Path) -> None:
    out = tmp_path / "m.pcap"
    summary = craft(out, fmt="pcap", mobiles=6, handovers=3, progress=False)
    assert (summary.mobiles, summary.handovers, summary.completed) == (6, 18, 18)
    # A return to the anchor LMA has no PLMA => NLMA leg: 2 data packets fewer.
    assert summary.packets == 6 * (22 + 20 + 22)
    order = []
    for rec in analyse_capture(out):
        if rec.message is not None and rec.message.name == "LMA_HO_Req":
            order.append(rec.message.mn_identifier)
    assert len(order) == 18 and order != sorted(order, key=lambda m: int(m[2:].split("@")[0]))
    times = [f.time for f in read_frames(out)]
    assert times == sorted(times)


def test_epoch_option_moves_every_timestamp(tmp_path: Path) -> None:
    out = tmp_path / "e.pcap"
    assert lmaho("craft", str(out), "--epoch", "2024-05-01T12:00:00").returncode == 0
    first = next(read_frames(out))
    start = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC).timestamp()
    assert start + 1 <= first.time < start + 2
    msg = decode(first.data[54:])
    assert msg.option("timestamp").fields["timestamp"].datetime.year == 2024


def test_variants_and_lost_step(tmp_path: Path) -> None:
    out = tmp_path / "v.pcapng"
    result = lmaho("craft", str(out), "--variant", "lost-message", "--lost-step", "f")
    assert result.returncode == 0, result.stderr
    assert "1 lost on purpose" in result.stderr
    notes = comments(out)
    pbu = [n for n in notes if n.startswith("(f) PBU")]
    assert pbu == ["(f) PBU bMAG -> NLMA, retransmission 1 [mn1@lmaho.example, handover 1]"]
    refused = lmaho("craft", str(out), "--variant", "nlma-refuses")
    assert "0 completed, 1 failed" in refused.stderr
    assert any("status 130 INSUFFICIENT_RESOURCES" in n for n in comments(out))


def test_udp_traffic_from_a_scenario_file(tmp_path: Path, tshark: str) -> None:
    scenario = tmp_path / "udp.toml"
    scenario.write_text('[traffic]\nprotocol = "udp"\npackets = 3\n')
    out = tmp_path / "u.pcap"
    assert lmaho("craft", str(out), "--scenario", str(scenario)).returncode == 0
    fields = tshark_fields(tshark, out, "udp.checksum.status", "udp.srcport")
    udp = [f for f in fields if f[1]]
    assert len(udp) == 3 * 7 and {f[0] for f in udp} == {"1"}  # 3 down, 3 up: 7 hops each


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--lost-step", "c"), "only means something with --variant lost-message"),
        ((), "missing the capture file"),
        (("--mobiles", "0"), "--mobiles: expected an integer >= 1, got '0'"),
        (("--variant", "boom"), "--variant: expected one of none, nlma-refuses,"),
    ],
)
def test_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    target = () if "missing" in message else (str(tmp_path / "x.pcap"),)
    result = lmaho("craft", *target, *args)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_scenario_and_unwritable_output_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[bmag]\naddress = "not-an-address"\n')
    result = lmaho("craft", str(tmp_path / "x.pcap"), "--scenario", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith("lmaho: error: ") and "bmag.address" in result.stderr
    result = lmaho("craft", str(tmp_path / "no" / "such" / "dir.pcap"))
    assert result.returncode == 2 and result.stderr.startswith("lmaho: error: ")
    assert "Traceback" not in result.stderr


def test_help_has_an_example_for_every_option() -> None:
    import inspect

    from lmaho_cli import craft as craft_module

    result = lmaho("craft", "--help")
    assert result.returncode == 0 and "lmaho craft --samples pcaps/" in result.stdout
    hints = typing.get_type_hints(craft_module.craft_command, include_extras=True)
    for name in inspect.signature(craft_module.craft_command).parameters:
        if name == "output":
            continue
        (info,) = [m for m in hints[name].__metadata__ if hasattr(m, "help")]
        assert "Example:" in info.help, f"the help of {name} shows no example"


def test_progress_bar_when_asked(tmp_path: Path) -> None:
    result = lmaho("craft", str(tmp_path / "p.pcap"), "--mobiles", "3", "--progress")
    assert result.returncode == 0
    assert "crafting" in result.stderr  # drawn on stderr, with ANSI codes
    quiet = lmaho("craft", str(tmp_path / "q.pcap"), "--mobiles", "3")
    assert "crafting" not in quiet.stderr  # stderr is no terminal here


def test_memory_stays_flat(tmp_path: Path) -> None:
    """Packets stream to disk: 20k packets peak no higher than 2k, and low."""

    def peak(mobiles: int) -> tuple[int, int]:
        tracemalloc.start()
        summary = craft(tmp_path / "m.pcap", fmt="pcap", mobiles=mobiles, progress=False)
        _, high = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return summary.packets, high

    small_packets, small = peak(90)
    big_packets, big = peak(910)
    assert small_packets < 2_100 and big_packets > 20_000
    assert big < 3_000_000, f"peak {big} B for {big_packets} packets"
    assert big < small * 1.5 + 200_000, (small, big)


# --- the committed samples, judged from outside --------------------------------------------


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_sample_decodes_cleanly_with_valid_checksums(path: Path) -> None:
    signalling = data = 0
    for frame in read_frames(path):
        payload = find_ipv6(frame.data, frame.linktype)
        assert payload is not None
        body = frame.data[payload.offset : payload.end]
        if payload.proto == IPPROTO_MH:
            msg = decode(body, payload.pseudo_src, payload.pseudo_dst)
            assert msg.checksum_ok and not msg.findings, (frame.number, msg.findings)
            signalling += 1
        else:
            assert payload.proto in (17, 58)
            src, dst = payload.src.packed, payload.dst.packed
            assert upper_layer_checksum(src, dst, body, payload.proto) == 0
            assert ipaddress.IPv6Address(
                payload.dst if payload.proto == 58 and body[0] == 128 else payload.src
            ) in DEFAULT_SCENARIO.mobiles.home_network_prefix.supernet(new_prefix=48)
            data += 1
    assert signalling >= 4
    assert path.stat().st_size < 32_000  # samples stay small


def tshark_fields(tshark: str, path: Path, *fields: str) -> list[list[str]]:
    command = [tshark, "-r", str(path), "-o", "udp.check_checksum:TRUE", "-T", "fields",
               "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]  # fmt: skip
    for field in fields:
        command += ["-e", field]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    # As root, tshark warns on stderr ("Running as user root"): not a failure.
    assert result.returncode == 0, result.stderr
    return [line.split("|") for line in result.stdout.splitlines()]


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_sample_opens_in_tsharks_mipv6_without_warnings(tshark: str, path: Path) -> None:
    rows = tshark_fields(
        tshark, path,
        "_ws.expert.severity", "mip6.mhtype", "mip6.bu.seqnr", "mip6.ba.seqnr", "mip6.ba.status",
        "mip6.bu.a_flag", "mip6.bu.h_flag", "mip6.bu.p_flag", "mip6.ba.p_flag",
        "mip6.bu.lifetime", "mip6.ba.lifetime", "mip6.mnid.identifier", "mip6.nemo.mnp.mnp",
        "mip6.nemo.mnp.pfl", "mip6.hi", "mip6.att", "mip6.mnlli.lli", "icmpv6.checksum.status",
    )  # fmt: skip
    records = list(analyse_capture(path))
    assert len(rows) == len(records)
    for row, rec in zip(rows, records, strict=True):
        severities = set(filter(None, row[0].split(",")))
        assert severities <= {COMMENT_SEVERITY}, (rec.frame.number, severities)
        msg = rec.message
        if msg is None:
            assert row[17] in ("1", ""), rec.frame.number  # ICMPv6 checksum good
            continue
        assert int(row[1]) == msg.mh_type
        if msg.name in ("PBU", "PBA"):
            # tshark's own reading of the PBU/PBA agrees with lmaho's, field by field.
            bu = msg.name == "PBU"
            assert int(row[2 if bu else 3]) == msg.sequence
            assert int(row[10 - bu]) * 4 == msg.fields["lifetime"]
            if bu:
                assert (row[5], row[6], row[7]) == ("1", "1", "1")
            else:
                assert int(row[4]) == msg.status and row[8] == "1"
            assert row[11] == msg.mn_identifier
            hnp = msg.home_network_prefixes[0]
            assert (row[12], int(row[13])) == (str(hnp.network_address), hnp.prefixlen)
            assert int(row[14]) == msg.option("handoff_indicator").fields["indicator"]
            assert int(row[15]) == msg.option("access_technology_type").fields["technology"]
            lli = msg.option("mn_link_layer_identifier").fields["identifier"]
            assert row[16] == lli.replace(":", "")
