"""lmaho's expert items without a tree: `tshark -q -z expert` lists what `-V` shows.

Wireshark records an expert item whether or not it builds a tree (its
Expert Information dialog and ``-z expert`` read them from the first pass,
which has none). tshark builds no tree for ``-q -z expert`` without a
display filter, so the dissector's tree-less path must report the damage,
the checksum verdict and the tracking's findings itself.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from lmaho_dissector._samples import BMAG, PLMA, Packet, frame, handover_samples, write_capture
from lmaho_wire import MalformedPacket, decode
from support.malformed import damaged, damaged_capture
from support.paths import ROOT
from support.tshark import lua_errors
from support.tshark import tshark_run as run

# "[Expert Info (Error/Malformed): Truncated Mobility Header: ...]" as -V shows it.
VERBOSE_EXPERT = re.compile(r"^\s*\[Expert Info \(([^/]+)/([^)]+)\): (.*)\]$")
# "          13  Malformed              LMAHO  Reserved needs 1 octet(s), 0 left"
TABLE_ROW = re.compile(r"^\s*(\d+)\s+(.+?)\s{2,}(\S+)\s{2}(.*)$")
SECTIONS = {"Errors": "Error", "Warns": "Warning", "Notes": "Note", "Chats": "Chat"}


def verbose_experts(tshark: str, capture: Path) -> Counter[tuple[str, str]]:
    """(severity, text) of every lmaho expert item in the -V tree, counted.

    Read from the same tree as PDML (``-T pdml`` shows what ``-V`` does), where
    each expert item names its ``lmaho.*`` field: Wireshark's own items (a
    string field's "Trailing stray characters", the MIPv6 dissector's) are
    not lmaho's and come only with a tree.
    """
    result = run(tshark, capture, "-T", "pdml")
    assert result.returncode == 0 and not lua_errors(result), result.stderr
    found: Counter[tuple[str, str]] = Counter()
    for item in ET.fromstring(result.stdout).iter("field"):
        if item.get("name") != "_ws.expert":
            continue
        children = {c.get("name", ""): c for c in item}
        if not any(name.startswith("lmaho.") for name in children):
            continue
        m = VERBOSE_EXPERT.match(f"[{item.get('showname', '')}]")
        assert m, item.get("showname")
        found[(m.group(1), m.group(3))] += 1
    return found


def table_experts(tshark: str, capture: Path) -> dict[str, Counter[tuple[str, str]]]:
    """Per protocol, (severity, summary) of every row of `-q -z expert`, counted."""
    result = run(tshark, capture, "-q", "-z", "expert")
    assert result.returncode == 0 and not lua_errors(result), result.stderr
    found: dict[str, Counter[tuple[str, str]]] = {}
    severity = ""
    for line in result.stdout.splitlines():
        head = line.split(" (", 1)[0]
        if head in SECTIONS:
            severity = SECTIONS[head]
            continue
        m = TABLE_ROW.match(line)
        if m and severity:
            count, _group, protocol, summary = m.groups()
            found.setdefault(protocol, Counter())[(severity, summary)] += int(count)
    return found


@pytest.mark.parametrize(
    "sample", ["damaged", "pcaps/handover.pcapng", "pcaps/nlma-refuses.pcapng"]
)
def test_expert_table_without_tree_lists_every_verbose_item(
    tshark: str, tmp_path: Path, sample: str
) -> None:
    capture = damaged_capture(tmp_path) if sample == "damaged" else ROOT / sample
    table = table_experts(tshark, capture)
    ours = table.get("LMAHO", Counter())
    # The table names the protocol Wireshark was in when the item was added:
    # on a PBU/PBA, after Wireshark's MIPv6 dissector ran, that is MIPv6.
    listed = sum(table.values(), Counter())
    verbose = verbose_experts(tshark, capture)
    assert verbose, "the -V run shows no lmaho expert item: the sample tests nothing"
    missing = verbose - listed
    extra = ours - verbose
    assert not missing, sorted(missing.items())[:10]
    assert not extra, sorted(extra.items())[:10]


def test_damage_checksum_and_tracking_are_all_in_the_table(tshark: str, tmp_path: Path) -> None:
    ours = table_experts(tshark, damaged_capture(tmp_path)).get("LMAHO", Counter())
    texts = " | ".join(summary for _, summary in ours)
    for kind in (
        "Truncated Mobility Header",
        "says",  # Header Len runs past the packet
        "after the",  # octets after the Mobility Header
        "runs past the end of the Mobility Header",
        "Bad checksum",
        "Payload Proto is 6",
        "not aligned",
        "Retransmission of frame",
    ):
        assert kind in texts, kind


def test_codec_and_dissector_name_an_unknown_option_alike(tshark: str, tmp_path: Path) -> None:
    """An unknown option whose Length runs past the header: one sentence in the codec's
    error and the dissector's expert item, and "Unknown option", never "option option"."""
    request = next(p.mh for p in handover_samples() if p.mh[2] == 200)  # LMA_HO_Req
    first = decode(request).options[0].offset
    mh = damaged(request, **{f"o{first}": 97, f"o{first + 1}": 200})  # type 97 is nobody's
    with pytest.raises(MalformedPacket) as raised:
        decode(mh)
    said = raised.value.what
    assert said.startswith("Unknown option length 200 runs past the end"), said
    capture = write_capture(tmp_path / "unknown.pcap", [Packet(1.0, frame(mh, BMAG, PLMA), mh, "")])
    assert ("Error", said) in verbose_experts(tshark, capture)
