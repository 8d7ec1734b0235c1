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
from lmaho_wire import build, current_schema, option
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


def damaged(mh: bytes, cut: int | None = None, **pokes: int) -> bytes:
    out = bytearray(mh if cut is None else mh[:cut])
    for where, value in pokes.items():
        out[int(where[1:])] = value
    return bytes(out)


def corpus() -> list[tuple[bytes, set[str]]]:
    """(Mobility Header, experts at least one of which must show) pairs."""
    schema = current_schema()
    draft = set(schema.numbers.mh_types.values())
    cases: list[tuple[bytes, set[str]]] = []
    seen: set[int] = set()
    for p in handover_samples():
        mh = p.mh
        if mh[2] in seen:
            continue
        seen.add(mh[2])
        ours = mh[2] in draft
        # Cut short at every length (the IPv6 payload length says so too).
        for cut in range(3, len(mh)):
            want = {"lmaho.malformed.truncated"} if cut < 6 else {"lmaho.malformed.header_len_long"}
            cases.append((mh[:cut], want if ours else set()))
        if not ours:
            continue
        # Header Len lies: more than there is, less than there is, less than the fixed part.
        cases.append((damaged(mh, h1=mh[1] + 3), {"lmaho.malformed.header_len_long"}))
        cases.append((damaged(mh, h1=mh[1] - 1), {"lmaho.malformed.after_mh"}))
        cases.append((damaged(mh, h1=0), {"lmaho.malformed.header_len_short"}))
        # The first option (the MN identifier, at offset 12) lies about its length.
        cases.append((damaged(mh, h13=250), {"lmaho.malformed.opt_overrun"}))
        cases.append((damaged(mh, h13=0), {"lmaho.malformed.opt_length"}))
        # A bad checksum and an unexpected Payload Proto.
        cases.append((damaged(mh, h4=mh[4] ^ 0xFF), {"lmaho.checksum.bad"}))
        cases.append((damaged(mh, h0=6), {"lmaho.payload_proto_unexpected"}))
    # An option laid without its alignment padding.
    hnp = option("home_network_prefix", prefix_length=64, prefix="2001:db8::")
    mn = option("mn_identifier", subtype="NAI", identifier="mn1@x")
    mn9 = option("mn_identifier", subtype="NAI", identifier="mn1@xy")
    misaligned = build("LMA_HO_Req", options=[mn9, hnp, option("padn", padding="00:00:00:00:00")],
                       pad=False, src=BMAG, dst=PLMA)  # fmt: skip
    cases.append((misaligned, {"lmaho.opt_misaligned"}))
    # An LMA Address that says IPv6 but carries 4 octets: the address field runs short.
    lmaa = option("lma_address", option_code="IPV4", address="192.0.2.1")
    short = bytearray(build("LMA_HO_Resp", options=[mn, lmaa], src=BMAG, dst=PLMA))
    at = short.index(bytes((lmaa.type, lmaa.length)))
    short[at + 2] = 1  # option code IPV6
    cases.append((bytes(short), {"lmaho.malformed.field_short"}))
    # Octets after the last field of a fixed-size option.
    hi = bytearray(build("LMA_HO_Req", options=[option("handoff_indicator", indicator=1), mn],
                         src=BMAG, dst=PLMA))  # fmt: skip
    hi[13] = 3  # length 3 where 2 is the rule
    cases.append((bytes(hi), {"lmaho.malformed.opt_length"}))
    return cases


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
