"""``lmaho check`` end to end: report, JSON, exit statuses, unreadable and corrupt captures."""

from __future__ import annotations

import json
import os
import pty
import random
import subprocess
import threading
from pathlib import Path

import pytest

from lmaho_check import check_records
from lmaho_procedure import Rule
from lmaho_wire import CaptureWriter, Numbers, load_numbers_file, use_numbers
from lmaho_wire.capture import LINKTYPE_RAW
from lmaho_wire.dissect import analyse_capture
from lmaho_wire.errors import CaptureError
from support.captures import MACS, OTHER_LMA, find, handover, lost_message, write
from support.cli import LMAHO_COMMAND, lmaho, lmaho_process


@pytest.fixture
def clean_capture(tmp_path: Path) -> Path:
    return write(tmp_path / "clean.pcap", handover())


@pytest.fixture
def wrong_nlma_capture(tmp_path: Path) -> Path:
    packets = handover()
    pbu = find(packets, "f")
    pbu.dst, pbu.dst_mac = OTHER_LMA, MACS[OTHER_LMA]
    return write(tmp_path / "wrong-nlma.pcap", packets)


def test_clean_capture_report_and_exit_0(clean_capture: Path) -> None:
    result = lmaho("check", str(clean_capture))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "handover 1: MN mn1@lmaho.example (2001:db8:1::/64)" in out
    assert "bMAG 2001:db8:b::1  PLMA 2001:db8:a::1  NLMA 2001:db8:a::2" in out
    assert "outcome: completed, latency (b)->(i) 14.000 ms" in out
    for label, frame in (("(b) LMA_HO_Req", 1), ("(f) PBU", 5), ("(i) PBA", 8)):
        assert any(label in line and f"frame {frame} " in line for line in out.splitlines())
    assert "(j) downlink" in out and "PLMA=>NLMA 10" in out
    assert "result: no violations" in out
    assert "Traceback" not in result.stderr


def test_violation_exit_1_names_rule_and_frames(wrong_nlma_capture: Path) -> None:
    result = lmaho("check", str(wrong_nlma_capture))
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if "[wrong-nlma]" in line]
    assert lines and "VIOLATION frames 4, 5" in lines[0]
    assert "result: " in result.stdout and "violation(s)" in result.stdout


def test_ignored_rules_are_left_out_of_report_counts_and_exit_status(
    wrong_nlma_capture: Path,
) -> None:
    plain = lmaho("check", str(wrong_nlma_capture), "--json")
    assert plain.returncode == 1
    broken = {i["rule"] for h in json.loads(plain.stdout)["handovers"] for i in h["violations"]}
    assert "wrong-nlma" in broken
    ignoring = ",".join(sorted(broken))
    quiet = lmaho("check", str(wrong_nlma_capture), "--json", "--ignore", ignoring)
    assert quiet.returncode == 0, quiet.stdout
    report = json.loads(quiet.stdout)
    assert all(h["violations"] == [] for h in report["handovers"])
    assert report["summary"]["violations"] == 0
    assert report["summary"]["ignored"] == {
        "rules": sorted(broken, key=[r.value for r in Rule].index),
        "findings": len(
            [i for h in json.loads(plain.stdout)["handovers"] for i in h["violations"]]
        ),
    }
    text = lmaho("check", str(wrong_nlma_capture), "--ignore", "pairing", "--ignore", ignoring)
    assert text.returncode == 0 and "finding(s) of ignored rules left out" in text.stdout


def test_ignoring_a_rule_that_does_not_exist_is_an_error(clean_capture: Path) -> None:
    result = lmaho("check", str(clean_capture), "--ignore", "order,no-such-rule")
    assert result.returncode == 2
    assert "no rule 'no-such-rule'; `lmaho check --rules` lists them" in result.stderr


def test_json_is_one_document_with_verdicts(wrong_nlma_capture: Path) -> None:
    result = lmaho("check", str(wrong_nlma_capture), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["exit_status"] == 1
    [h] = report["handovers"]
    assert h["mn"] == "mn1@lmaho.example"
    assert h["roles"]["NLMA"] == "2001:db8:a::2"
    assert [s["step"] for s in h["steps"]] == list("bcdefghi")
    assert {v["rule"] for v in h["violations"]} >= {"wrong-nlma"}
    assert report["summary"]["handovers"] == 1
    assert report["summary"]["violations"] == len(h["violations"]) + len(report["violations"])


def test_refused_handover_passes_unless_success_is_required(tmp_path: Path) -> None:
    path = write(tmp_path / "refused.pcap", handover(hack_status="ADMINISTRATIVELY_PROHIBITED"))
    result = lmaho("check", str(path))
    assert result.returncode == 0
    assert "FAILED at (d)" in result.stdout and "NLMA refused" in result.stdout
    assert lmaho("check", str(path), "--require-success").returncode == 1


def test_retransmission_is_reported_not_a_violation(tmp_path: Path) -> None:
    path = write(tmp_path / "lost.pcap", lost_message())
    result = lmaho("check", str(path), "--brief")
    assert result.returncode == 0
    assert "retransmitted requests: 1" in result.stdout
    assert "completed" in result.stdout


def test_strict_turns_warnings_into_failure(tmp_path: Path) -> None:
    packets = lost_message()
    copies = [p for p in packets if p.step == "c"]
    copies[1].time = copies[0].time + 0.1  # retransmitted before the timer ran out
    path = write(tmp_path / "early.pcap", packets)
    assert lmaho("check", str(path)).returncode == 0
    strict = lmaho("check", str(path), "--strict")
    assert strict.returncode == 1
    assert "exit status 1: warnings (--strict)" in strict.stdout


@pytest.mark.parametrize("content", [b"", b"not a capture at all, just text", None])
def test_unreadable_input_exits_2_without_traceback(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "bad.pcap"
    if content is not None:
        path.write_bytes(content)
    for args in (("check", str(path)), ("check", str(path), "--json")):
        result = lmaho_process(*args) if content is None else lmaho(*args)
        assert result.returncode == 2
        assert result.stderr.startswith("lmaho: error: ")
        assert "Traceback" not in result.stderr
        assert result.stdout == ""


def test_capture_cut_short_reports_what_was_read_then_exits_2(clean_capture: Path) -> None:
    data = clean_capture.read_bytes()
    clean_capture.write_bytes(data[: len(data) - 30])  # the last record is cut in half
    result = lmaho("check", str(clean_capture), "--json")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["error"] and report["exit_status"] == 2
    assert report["handovers"][0]["mn"] == "mn1@lmaho.example"
    text = lmaho("check", str(clean_capture))
    assert text.returncode == 2 and "handover 1" in text.stdout


def test_corrupted_bytes_never_raise(clean_capture: Path) -> None:
    pristine = clean_capture.read_bytes()
    rng = random.Random(4)
    for _ in range(150):
        data = bytearray(pristine)
        for _ in range(rng.randint(1, 12)):
            data[rng.randrange(24, len(data))] = rng.randrange(256)
        clean_capture.write_bytes(bytes(data))
        try:
            result = check_records(analyse_capture(clean_capture))
        except CaptureError:
            continue  # a record header destroyed: exit status 2, tested above
        for h in result.handovers:
            h.to_json()
            assert h.outcome is not None
    run = lmaho_process("check", str(clean_capture))
    assert run.returncode in (0, 1, 2) and "Traceback" not in run.stderr


def test_rules_and_help() -> None:
    rules = lmaho("check", "--rules")
    assert rules.returncode == 0
    assert all(name in rules.stdout for name in Rule)
    helped = lmaho("check", "--help")
    assert helped.returncode == 0 and "Examples:" in helped.stdout


def test_raw_ipv6_capture_without_link_layer(tmp_path: Path) -> None:
    path = tmp_path / "raw.pcap"
    with CaptureWriter(path, linktype=LINKTYPE_RAW) as writer:
        for p in handover():
            writer.write(p.encode()[14:], p.time)  # the IPv6 packet, no Ethernet header
    result = check_records(analyse_capture(path))
    assert result.violations == [] and result.warnings == []
    [h] = result.handovers
    assert h.outcome is not None and h.outcome.status == "completed"
    hops = {segment.hop for segment in h.data.values()}
    assert {"PLMA=>NLMA", "NLMA=>bMAG", "bMAG=>NLMA"} <= hops  # tunnels need no MACs


def test_renumbered_messages_need_the_same_numbers(tmp_path: Path) -> None:
    numbers_file = tmp_path / "numbers.toml"
    numbers_file.write_text(
        "[mh_types]\nLMA_HO_Req = 240\nLMA_HO_Resp = 241\nLMA_HO_Init = 242\n"
        "LMA_HAck = 243\nUpdate = 244\nUpdate_Ack = 245\n"
        "[option_types]\nnew_ap_id = 240\nprevious_lma_address = 241\n"
    )
    use_numbers(load_numbers_file(numbers_file))
    try:
        path = write(tmp_path / "renumbered.pcap", handover())
    finally:
        use_numbers(Numbers())
    # Without the numbers only the PBU/PBA are understood, and the data plane makes no sense.
    plain = lmaho("check", str(path))
    assert "handovers: 0" in plain.stdout
    assert "6 Mobility Header message(s) of unknown types" in plain.stdout
    assert "--numbers" in plain.stdout
    renumbered = lmaho("--numbers", str(numbers_file), "check", str(path))
    use_numbers(Numbers())
    assert renumbered.returncode == 0, renumbered.stdout
    assert "handovers: 1 (1 completed)" in renumbered.stdout


def _on_one_terminal(*args: str) -> str:
    """What ``lmaho ARGS`` writes with stdout and stderr on one terminal (a pty)."""
    controller, terminal = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:  # as it comes: a full pty would block the command
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal side is closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        status = subprocess.run(
            [*LMAHO_COMMAND, *args], stdout=terminal, stderr=terminal, timeout=120
        ).returncode
    finally:
        os.close(terminal)
        reader.join(10)
        os.close(controller)
    assert status == 0
    return b"".join(chunks).decode(errors="replace")


def test_progress_bar_by_default_only_where_no_report_streams(
    clean_capture: Path, tmp_path: Path
) -> None:
    """On a terminal, check streams its report while it reads: no bar unless asked.
    ladder draws its chart after its first pass: a bar while it surveys, chart or not."""
    check = _on_one_terminal("check", str(clean_capture))
    assert "handovers: 1 (1 completed)" in check and "checking" not in check
    assert "checking" in _on_one_terminal("check", str(clean_capture), "--progress")
    svg = tmp_path / "chart.svg"
    assert "surveying" in _on_one_terminal("ladder", str(clean_capture), "-q", "--svg", str(svg))
    assert "surveying" in _on_one_terminal("ladder", str(clean_capture))
    assert "surveying" not in _on_one_terminal("ladder", str(clean_capture), "--no-progress")


@pytest.mark.parametrize(
    ("command", "doing"), [("check", "checking"), ("decode", "decoding"), ("ladder", "surveying")]
)
def test_progress_bar_when_asked_leaves_the_output_alone(
    clean_capture: Path, command: str, doing: str
) -> None:
    plain = lmaho(command, str(clean_capture))
    assert doing not in plain.stderr  # stderr is no terminal here
    drawn = lmaho(command, str(clean_capture), "--progress")
    assert (drawn.returncode, drawn.stdout) == (plain.returncode, plain.stdout)
    assert doing in drawn.stderr  # drawn with ANSI codes
    assert "\x1b[" in drawn.stderr
