"""Damaged Mobility Headers through the Lua dissector: experts, never Lua errors.

The corpus is made from the sample handover (every draft message and PBU/PBA):
each message cut at every length, Header Len made to lie both ways, option
lengths that lie, a misaligned option, a bad checksum, and random mutations by
editcap -E. tshark reads all of it in one run per file; the damage must show
as lmaho's filterable expert items on the packets concerned.
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lmaho_dissector._samples import BMAG, PLMA, Packet, frame, handover_samples, write_capture
from support.malformed import corpus
from support.tshark import lua_errors
from support.tshark import tshark_run as run


def assert_no_lua_error(result: subprocess.CompletedProcess[str]) -> None:
    bad = lua_errors(result)
    assert not bad, bad[:5]


def assert_summary_lines_complete(result: subprocess.CompletedProcess[str]) -> None:
    """Without a tree (plain ``tshark -r``) the dissector runs its fast path
    outside pcall and shows nothing on failure: a Lua error there would
    leave the Info column of an LMAHO line empty. Every one must have its Info."""
    assert result.returncode == 0, result.stderr
    assert_no_lua_error(result)
    lines = [line for line in result.stdout.splitlines() if " LMAHO " in line]
    assert lines
    empty = [line for line in lines if len(line.split(" LMAHO ", 1)[1].strip().split(" ", 1)) < 2]
    assert not empty, empty[:5]


def expert_names(tshark: str, capture: Path) -> list[set[str]]:
    """Per packet, the names of every field and expert item lmaho and mip6 show."""
    result = run(tshark, capture, "-T", "pdml")
    assert result.returncode == 0, result.stderr
    assert_no_lua_error(result)
    return [
        {f.get("name", "") for f in packet.iter("field")}
        for packet in ET.fromstring(result.stdout).findall("packet")
    ]


def test_damaged_headers_show_experts_and_no_lua_error(tshark: str, tmp_path: Path) -> None:
    cases = corpus()
    packets = [
        Packet(1.0 + i * 0.001, frame(mh, BMAG, PLMA), mh, "") for i, (mh, _) in enumerate(cases)
    ]
    capture = write_capture(tmp_path / "damaged.pcap", packets)
    names = expert_names(tshark, capture)
    assert len(names) == len(cases)
    missing = [
        (i + 1, sorted(want))
        for i, ((_, want), got) in enumerate(zip(cases, names, strict=True))
        if want and not (want & got)
    ]
    assert not missing, missing[:10]
    # The verbose text tree too (the other code path that formats summaries).
    assert_no_lua_error(run(tshark, capture, "-V"))
    assert_summary_lines_complete(run(tshark, capture))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_editcap_mutations_give_no_lua_error(tshark: str, tmp_path: Path, seed: int) -> None:
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.fail("editcap is not installed (it comes with tshark)")
    clean = write_capture(tmp_path / "clean.pcap", handover_samples() * 20)
    mutated = tmp_path / "mutated.pcap"
    subprocess.run(
        [editcap, "-E", "0.05", "--seed", str(seed), str(clean), str(mutated)],
        check=True,
        capture_output=True,
    )
    result = run(tshark, mutated, "-V")
    assert result.returncode == 0, result.stderr
    assert_no_lua_error(result)
    assert_summary_lines_complete(run(tshark, mutated))
    names = expert_names(tshark, mutated)
    damage = ("lmaho.malformed", "lmaho.checksum.bad")
    flagged = sum(1 for n in names if any(x.startswith(damage) for x in n))
    # At 5 % of bytes mutated nearly every packet is damaged, and the damage is shown.
    assert flagged > len(names) // 2
