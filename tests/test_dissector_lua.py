"""The generated Wireshark Lua dissector, judged by tshark against the codec.

Every packet of the sample captures (the project's pcaps/ and the ones
dissector/_samples.py builds from the schema) is decoded by the codec and by
tshark with dissector/lmaho.lua (read through pyshark where the codec's fields
are compared with the dissector's); the expected Wireshark fields are derived
by walking the schema's construct objects and the codec's decoded values,
never from a list of names written here. Each capture goes through tshark
once, so the whole module stays within a few tshark runs.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from construct import GreedyRange, Renamed, Struct, Switch

from lmaho_dissector import generator
from lmaho_dissector._samples import BMAG, PLMA, Packet, write_capture, write_samples
from lmaho_dissector._samples import frame as ethernet_frame
from lmaho_wire import Message, build, current_schema, option
from lmaho_wire.capture import read_frames
from lmaho_wire.dissect import analyse_frame
from lmaho_wire.fields import FieldVisitor, Flags, Scaled, TimestampField, unrename
from support.paths import DISSECTOR_LUA as LUA
from support.paths import PCAPS
from support.tshark import DissectorView, dissector_views, lua_errors, tshark_run


def pdml_packets(tshark: str, capture: Path, *args: str) -> list[ET.Element]:
    result = tshark_run(tshark, capture, "-2", "-T", "pdml", *args)
    assert result.returncode == 0, result.stderr
    assert not lua_errors(result), lua_errors(result)
    return ET.fromstring(result.stdout).findall("packet")


def proto(packet: ET.Element, name: str) -> ET.Element | None:
    # PDML nests a protocol in the one that carried it (mipv6 inside ipv6).
    for p in packet.iter("proto"):
        if p.get("name") == name:
            return p
    return None


def flat(element: ET.Element) -> list[tuple[str, str]]:
    """(field name, show) of every field under ``element``, in tree order."""
    return [(f.get("name", ""), f.get("show", "")) for f in element.iter("field")]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The dissector's own samples, plus every committed sample capture."""
    own = write_samples(tmp_path_factory.mktemp("samples"))
    project = sorted(PCAPS.glob("*.pcap")) + sorted(PCAPS.glob("*.pcapng"))
    return own + project


# --- what the codec says Wireshark must show ------------------------------------------


def expect_struct(struct: Struct, values: dict[str, Any], prefix: str) -> Iterator[tuple]:
    siblings = {sc.name: unrename(sc) for sc in struct.subcons if isinstance(sc, Renamed)}
    for sc in struct.subcons:
        if isinstance(sc, Renamed):
            yield from _Expect().visit(
                sc, (values[sc.name], f"{prefix}.{sc.name}", values, siblings)
            )


class _Expect(FieldVisitor[tuple[Any, str, dict[str, Any], dict[str, Any]], Iterator[tuple]]):
    """What Wireshark must show of one field; the argument is (value, abbreviation,
    sibling values, sibling constructs)."""

    def flags(self, c: Flags, arg: tuple) -> Iterator[tuple]:
        value, abbrev, _, _ = arg
        yield abbrev, "int", int(value)
        for letter, mask in c.masks.items():
            yield f"{abbrev}.{letter.lower()}", "bool", bool(int(value) & mask)

    def scaled(self, c: Scaled, arg: tuple) -> Iterator[tuple]:
        value, abbrev, _, _ = arg
        yield abbrev, "int", int(value) // c.factor

    def integer(self, c: Any, arg: tuple) -> Iterator[tuple]:
        value, abbrev, _, _ = arg
        yield abbrev, "int", int(value)

    enum = integer

    def _address(self, c: Any, arg: tuple) -> Iterator[tuple]:
        value, abbrev, _, _ = arg
        yield abbrev, "ip", ipaddress.ip_address(value)

    ipv6 = ipv4 = _address

    def _text(self, c: Any, arg: tuple) -> Iterator[tuple]:
        value, abbrev, _, _ = arg
        yield abbrev, "text", value

    hex = text = _text

    def timestamp(self, c: TimestampField, arg: tuple) -> Iterator[tuple]:
        value, abbrev, _, _ = arg
        inner = unrename(c.subcon)
        first, second = (sc.name for sc in inner.subcons)
        yield f"{abbrev}.{first}", "int", value.seconds
        yield f"{abbrev}.{second}", "int", value.fraction

    def switch(self, c: Switch, arg: tuple) -> Iterator[tuple]:
        value, abbrev, values, siblings = arg
        key = c.keyfunc(values)
        names = generator.switch_case_names(c, siblings.get)
        if key in c.cases:
            yield from self.visit(c.cases[key], (value, f"{abbrev}.{names[key]}", values, siblings))
        else:
            yield from self.visit(c.default, arg)

    def repeat(self, c: GreedyRange, arg: tuple) -> Iterator[tuple]:
        value, abbrev, _, _ = arg
        for item in value:
            yield from expect_struct(unrename(c.subcon), item, abbrev)


def expected(msg: Message) -> Iterator[tuple]:
    schema = current_schema()
    for sc in schema.mh_header.subcons:
        yield f"lmaho.{sc.name}", "int", int(getattr(msg, sc.name))
    body = schema.messages[msg.mh_type]
    yield from expect_struct(unrename(body.subcon), msg.fields, f"lmaho.{body.key}")
    for opt in msg.options:
        yield "lmaho.opt.type", "int", opt.type
        if opt.type != 0:
            yield "lmaho.opt.length", "int", opt.length
        opt_body = schema.options.get(opt.type)
        key = opt_body.key if opt_body is not None else "unknown"
        struct = unrename(opt_body.subcon) if opt_body is not None else None
        if struct is not None:
            yield from expect_struct(struct, opt.fields, f"lmaho.opt.{key}")
    if msg.checksum_ok is not None:
        yield "lmaho.checksum.status", "int", 1 if msg.checksum_ok else 0


def same(kind: str, want: Any, show: str) -> bool:
    if kind == "int":
        return int(show, 0) == want
    if kind == "bool":
        return show in ("1", "True") if want else show in ("0", "False")
    if kind == "ip":
        return ipaddress.ip_address(show) == want
    return show == want


def compare(msg: Message, view: DissectorView) -> list[str]:
    """Each expected field against the dissector's items of that name, in order; return
    mismatches."""
    problems = []
    taken: dict[str, int] = {}
    for abbrev, kind, want in expected(msg):
        shows = view.shows(abbrev)
        i = taken[abbrev] = taken.get(abbrev, -1) + 1
        if i == len(shows):
            problems.append(f"{abbrev} missing (want {want!r})")
        elif not same(kind, want, shows[i]):
            problems.append(f"{abbrev}: codec {want!r}, dissector {shows[i]!r}")
    return problems


# --- tests --------------------------------------------------------------------------


def test_generated_file_is_current() -> None:
    assert LUA.read_text() == generator.generate(), (
        "dissector/lmaho.lua is stale: run `lmaho dissector generate`"
    )


def test_generation_is_deterministic() -> None:
    text = generator.generate()
    assert text == generator.generate()
    assert "DO NOT EDIT" in text and generator.REGENERATE in text
    code = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    assert not any("bit32" in line for line in code)


@pytest.mark.parametrize("luac", ["luac5.2", "luac5.4"])
def test_lua_syntax_and_no_globals(luac: str) -> None:
    path = shutil.which(luac)
    if path is None:
        pytest.skip(f"{luac} is not installed (apt-get install lua5.2 lua5.4)")
    result = subprocess.run(
        [path, "-l", "-p", str(LUA)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    # A global assignment compiles to SETTABUP on _ENV: the file must have none.
    sets = [line for line in result.stdout.splitlines() if "SETTABUP" in line and "_ENV" in line]
    assert not sets, sets[:5]


def test_every_codec_field_is_shown(tshark: str, samples: list[Path]) -> None:
    schema = current_schema()
    compared: set[str] = set()
    options_seen: set[int] = set()
    for capture in samples:
        views = dissector_views(tshark, capture, {"lmaho.show_pmip": "TRUE"})
        frames = list(read_frames(capture))
        assert len(views) == len(frames)
        for frame, view in zip(frames, views, strict=True):
            rec = analyse_frame(frame)
            msg = rec.message
            if msg is None or msg.mh_type not in schema.messages:
                continue
            body = schema.messages[msg.mh_type]
            if body.proxy_flag and body.proxy_flag not in msg.fields[
                next(sc.name for sc in unrename(body.subcon).subcons
                     if isinstance(unrename(sc), Flags))
            ]:  # fmt: skip
                continue  # plain BU/BA: Wireshark's alone, lmaho adds nothing
            assert view.has_protocol("lmaho"), f"{capture.name} frame {frame.number}: no lmaho tree"
            problems = compare(msg, view)
            assert not problems, f"{capture.name} frame {frame.number}: {problems}"
            compared.add(body.key)
            options_seen |= {o.type for o in msg.options}
    assert compared == {b.key for b in schema.messages.values()}
    assert set(schema.options) <= options_seen


def test_pbu_pba_keep_wireshark_fields_and_plain_mipv6_is_untouched(
    tshark: str, samples: list[Path]
) -> None:
    capture = samples[0]
    with_lua = pdml_packets(tshark, capture)
    plain = subprocess.run(
        [tshark, "-n", "-2", "-T", "pdml", "-r", str(capture)],
        capture_output=True,
        text=True,
        check=True,
    )
    without = ET.fromstring(plain.stdout).findall("packet")
    pbu = pba = 0
    for a, b in zip(with_lua, without, strict=True):
        mip6_a, mip6_b = proto(a, "mipv6"), proto(b, "mipv6")
        if mip6_b is None or mip6_a is None:
            continue
        names = {n for n, _ in flat(mip6_a)}
        pbu += "mip6.bu.p_flag" in names
        pba += "mip6.ba.p_flag" in names
        # Wireshark's own fields are all still there with the same values; where
        # it had only "unknown option" items for the draft's options, lmaho's are.
        assert mip6_fields(mip6_a) == mip6_fields(mip6_b)
    assert pbu and pba


def mip6_fields(element: ET.Element) -> list[tuple[str, str]]:
    return [
        (name, show)
        for name, show in flat(element)
        if name.startswith("mip6.")
        # Wireshark's "unknown option" items, which lmaho's replace:
        and not name.startswith(("mip6.mobility_opt", "mip6.ie_not_dissected"))
    ]


def test_plain_mipv6_binding_update_gets_nothing_from_lmaho(tshark: str, tmp_path: Path) -> None:
    from lmaho_dissector._samples import BMAG, PLMA, Packet, frame, write_capture
    from lmaho_wire import build, option

    mh = build("BU", sequence=5, flags={"A", "H"}, lifetime=8,
               options=[option("alternate_care_of_address", address="2001:db8::5")],
               src=BMAG, dst=PLMA)  # fmt: skip
    hoti = bytes([59, 1, 1, 0, 0, 0]) + bytes(10)
    capture = write_capture(
        tmp_path / "mipv6.pcap",
        [
            Packet(1.0, frame(mh, BMAG, PLMA), mh, ""),
            Packet(2.0, frame(hoti, BMAG, PLMA), hoti, ""),
        ],
    )
    with_lua = pdml_packets(tshark, capture)
    plain = subprocess.run([tshark, "-n", "-T", "pdml", "-r", str(capture)],
                           capture_output=True, text=True, check=True)  # fmt: skip
    without = ET.fromstring(plain.stdout).findall("packet")
    for a, b in zip(with_lua, without, strict=True):
        assert proto(a, "lmaho") is None
        assert ET.tostring(proto(a, "mipv6")) == ET.tostring(proto(b, "mipv6"))


def fields_by_frame(tshark: str, capture: Path, names: list[str], *args: str) -> list[dict]:
    result = tshark_run(tshark, capture, "-2", "-T", "fields", "-E", "separator=|",
                        *[x for n in names for x in ("-e", n)], *args)  # fmt: skip
    assert result.returncode == 0 and not lua_errors(result), result.stderr
    rows = []
    for line in result.stdout.splitlines():
        rows.append(dict(zip(names, line.split("|"), strict=True)))
    return rows


def test_request_response_and_handover_tracking(tshark: str, samples: list[Path]) -> None:
    capture = samples[1]  # dissector-handovers.pcapng
    names = [
        "frame.number", "_ws.col.Info", "lmaho.response_in", "lmaho.response_to", "lmaho.time",
        "lmaho.retransmission_of", "lmaho.handover.start", "lmaho.handover.duration",
        "lmaho.handover.success",
    ]  # fmt: skip
    rows = fields_by_frame(tshark, capture, names)
    by = {int(r["frame.number"]): r for r in rows}
    # Handover 1, frames 1-8: (b) Req, (c) Init, (d) HAck, (e) Resp, (f) PBU, (g) Update,
    # (h) Update_Ack, (i) PBA.
    assert by[1]["lmaho.response_in"] == "4"
    assert by[4]["lmaho.response_to"] == "1"
    assert float(by[4]["lmaho.time"]) == pytest.approx(0.003)
    assert by[2]["lmaho.response_in"] == "3" and by[3]["lmaho.response_to"] == "2"
    assert by[5]["lmaho.response_in"] == "8" and by[8]["lmaho.response_to"] == "5"
    assert by[6]["lmaho.response_in"] == "7"
    for n in range(2, 9):
        assert by[n]["lmaho.handover.start"] == "1"
    assert float(by[8]["lmaho.handover.duration"]) == pytest.approx(0.007)
    assert by[8]["lmaho.handover.success"] in ("1", "True")
    assert all(not by[n]["lmaho.handover.duration"] for n in range(1, 8))
    # Handover 2 repeats its LMA_HO_Req (frame 10 retransmits frame 9).
    assert by[10]["lmaho.retransmission_of"] == "9"
    assert "[Retransmission]" in by[10]["_ws.col.Info"]
    assert by[13]["lmaho.response_to"] == "9"
    assert float(by[17]["lmaho.handover.duration"]) == pytest.approx(0.008)
    # Handover 3: the PLMA refuses; its LMA_HO_Resp ends the handover, failed.
    assert by[19]["lmaho.response_to"] == "18"
    assert by[19]["lmaho.handover.success"] in ("0", "False")
    assert float(by[19]["lmaho.handover.duration"]) == pytest.approx(0.001)
    assert "Status=NO_NLMA_AVAILABLE" in by[19]["_ws.col.Info"]
    assert by[1]["_ws.col.Info"] == (
        "LMA Handover Request (LMA_HO_Req) Seq=100 MN-ID=mn1@lmaho.example"
    )


def test_pairing_state_is_bounded(tshark: str, tmp_path: Path) -> None:
    """A response pairs with its request across 1,000 newer requests but not across
    2,100: the pairing state is kept in two generations of 1,024 (runtime.lua), so it
    stays bounded however long the capture."""

    def message(name: str, seq: int, mn: str) -> Packet:
        mn_id = option("mn_identifier", subtype="NAI", identifier=mn)
        mh = build(name, options=[mn_id], src=BMAG, dst=PLMA, sequence=seq)
        return Packet(0.0, ethernet_frame(mh, BMAG, PLMA), mh, "")

    busy = [message("Update", seq, "busy@lmaho.example") for seq in range(2100)]
    packets = [message("LMA_HO_Req", 7, "far@lmaho.example"), *busy[:1100]]
    packets += [message("LMA_HO_Req", 9, "near@lmaho.example"), *busy[1100:]]
    packets += [message("LMA_HO_Resp", 9, "near@lmaho.example")]
    packets += [message("LMA_HO_Resp", 7, "far@lmaho.example")]
    capture = write_capture(tmp_path / "late.pcap", packets)
    rows = fields_by_frame(tshark, capture, ["frame.number", "lmaho.response_to"])
    near, far = rows[-2], rows[-1]
    assert near["lmaho.response_to"] == "1102"
    assert far["lmaho.response_to"] == ""


def test_summary_mode_columns_match_tree_mode(tshark: str, samples: list[Path]) -> None:
    # tshark printing summaries builds no tree, so the dissector takes its fast
    # path; a display filter makes a tree. The Info column must not differ.
    capture = samples[1]
    fast = tshark_run(tshark, capture)
    tree = tshark_run(tshark, capture, "-Y", "lmaho || mipv6", "-T", "fields", "-e", "_ws.col.Info")
    assert not lua_errors(fast) and not lua_errors(tree)
    fast_infos = [line.split(" LMAHO ", 1)[1].split(" ", 1)[1] for line in fast.stdout.splitlines()
                  if " LMAHO " in line]  # fmt: skip
    assert len(fast_infos) == 15
    tree_infos = [line for line in tree.stdout.splitlines() if line.startswith(("LMA", "Policy"))]
    assert fast_infos == tree_infos


TREE_PROBE = """
-- Writes "tree" or "none" to stderr for every packet: whether it was dissected with a tree.
local probe = Proto("treeprobe", "tree probe")
function probe.dissector(tvb, pinfo, root)
    io.stderr:write(root.text == nil and "none\\n" or "tree\\n")
end
register_postdissector(probe)
"""


def test_summary_mode_builds_no_tree(tshark: str, tmp_path: Path) -> None:
    # Anything in the Lua that makes tshark build a tree for every packet (a
    # Field extractor does: its field is primed) costs the summary run its
    # fast path, ten times the time. A postdissector sees whether there is one.
    probe = tmp_path / "treeprobe.lua"
    probe.write_text(TREE_PROBE)
    capture = PCAPS / "handover.pcap"
    cmd = [tshark, "-n", "-X", f"lua_script:{LUA}", "-X", f"lua_script:{probe}", "-r", str(capture)]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    seen = [line for line in plain.stderr.splitlines() if line in ("tree", "none")]
    assert seen and set(seen) == {"none"}
    # The probe does tell: with -V every packet has a tree.
    verbose = subprocess.run([*cmd, "-V"], capture_output=True, text=True, timeout=120, check=True)
    assert {line for line in verbose.stderr.splitlines() if line in ("tree", "none")} == {"tree"}
