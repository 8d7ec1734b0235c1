"""``lmaho ladder``: terminal chart and SVG from captures built per docs/wire-format.md 7."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmaho_cli.main import app
from lmaho_wire import option
from support.captures import MACS, NLMA, PLMA, Mobile, find, handover, lost_message, write
from support.cli import lmaho, lmaho_process
from support.paths import SAMPLE_CAPTURES

SVG = "{http://www.w3.org/2000/svg}"


def ladder(*args: str) -> str:
    result = CliRunner().invoke(app, ["ladder", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.stdout


def arrows(svg_path: Path) -> list[ET.Element]:
    root = ET.parse(svg_path).getroot()  # raises on malformed XML
    assert root.tag == f"{SVG}svg"
    return [g for g in root.iter(f"{SVG}g") if "arrow" in g.get("class", "").split()]


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    return write(tmp_path / "handover.pcap", handover())


def test_terminal_chart_columns_in_figure_2_order(capture: Path) -> None:
    out = ladder(str(capture), "--width", "110")
    lines = out.splitlines()
    titles = lines[0].split()[2:]
    assert titles == ["MN", "bMAG", "PLMA", "NLMA", "Policy", "store", "CN"]
    assert "2001:db8:a::1" in lines[1]
    assert all(len(line) <= 110 for line in lines)
    # Two lines per arrow: the label (with frame number) and the arrow itself.
    rows = [line for line in lines if line[:6].strip().isdigit()]
    assert [int(line[:6]) for line in rows] == list(range(1, 16))
    assert "(c) LMA_HO_Init seq=1" in rows[1]
    assert "(j) downlink data [IPv6-in-IPv6]" in out
    assert "═" in out  # tunnelled data drawn as a double line
    assert "15 arrow(s) drawn, from 15 frame(s)" in out


@pytest.mark.parametrize("width", [100, 120])
def test_chart_fits_the_width(capture: Path, width: int) -> None:
    out = ladder(str(capture), "--width", str(width))
    assert max(len(line) for line in out.splitlines()) <= width


def test_arrow_direction_between_the_right_columns(capture: Path) -> None:
    lines = ladder(str(capture), "--width", "120", "--ascii").splitlines()
    header = lines[0]
    bmag, plma = header.index("bMAG") + 2, header.index("PLMA") + 2
    request_arrow = lines[lines.index(next(x for x in lines if "(b) LMA_HO_Req" in x)) + 1]
    response_arrow = lines[lines.index(next(x for x in lines if "(e) LMA_HO_Resp" in x)) + 1]
    assert request_arrow.rstrip("| ").endswith(">")
    assert ">" in request_arrow[bmag : plma + 1] and "<" not in request_arrow
    assert "<" in response_arrow[bmag : plma + 1]


def test_ascii_and_max_rows(capture: Path) -> None:
    out = ladder(str(capture), "--ascii", "--max-rows", "4", "--width", "100")
    assert out.isascii() or all(ch.isascii() or ch == "…" for ch in out)
    rows = [line for line in out.splitlines() if line[:6].strip().isdigit()]
    assert len(rows) == 4
    assert "11 more not drawn (--max-rows)" in out


def test_svg_is_well_formed_with_one_arrow_per_message(capture: Path, tmp_path: Path) -> None:
    svg = tmp_path / "chart.svg"
    ladder(str(capture), "--svg", str(svg), "--quiet")
    drawn = arrows(svg)
    assert len(drawn) == 15
    assert [int(g.get("data-frame", "0")) for g in drawn] == list(range(1, 16))
    assert [g.get("data-step") for g in drawn[:8]] == list("bcdefghi")
    tunnels = [g for g in drawn if "tunnel" in g.get("class", "")]
    assert len(tunnels) == 3  # PLMA=>NLMA, NLMA=>bMAG, bMAG=>NLMA
    entities = [g for g in ET.parse(svg).getroot().iter(f"{SVG}g") if g.get("class") == "entity"]
    titles = [next(t.text for t in g.iter(f"{SVG}text")) for g in entities]
    assert titles == ["MN", "bMAG", "PLMA", "NLMA", "Policy store", "CN"]


def test_svg_marks_the_violating_frame(tmp_path: Path) -> None:
    packets = handover()
    find(packets, "c").corrupt_checksum = True
    svg = tmp_path / "chart.svg"
    out = ladder(str(write(tmp_path / "bad.pcap", packets)), "--svg", str(svg), "--width", "100")
    flagged = [g for g in arrows(svg) if "violation" in g.get("class", "")]
    assert [g.get("data-frame") for g in flagged] == ["2"]
    row = next(line for line in out.splitlines() if line.startswith("     2 "))
    assert "!" in row[:19] and "bad checksum" in row


def test_retransmissions_are_shown_again(tmp_path: Path) -> None:
    out = ladder(str(write(tmp_path / "lost.pcap", lost_message())), "--width", "120")
    assert "(c) LMA_HO_Init seq=1 [again]" in out


def test_one_mn_of_several(tmp_path: Path) -> None:
    packets = []
    for n in (1, 2):
        packets += handover(Mobile(n), t0=1000.0 + n * 0.0005)
    path = write(tmp_path / "two.pcap", packets)
    svg = tmp_path / "one.svg"
    ladder(str(path), "--mn", "mn2@lmaho.example", "--svg", str(svg), "--quiet")
    assert len(arrows(svg)) == 15
    signalling = ladder(str(path), "--signalling-only", "--width", "100")
    assert "16 arrow(s) drawn" in signalling


def test_repeated_lma_takes_both_role_names(tmp_path: Path) -> None:
    # The MN moves again: the first NLMA is the second handover's PLMA.
    first = handover()
    second = handover(t0=1010.0)
    swap = {PLMA: NLMA, NLMA: PLMA}
    for p in second:
        if p.message is None:
            continue
        p.src, p.dst = swap.get(p.src, p.src), swap.get(p.dst, p.dst)
        p.src_mac, p.dst_mac = MACS[p.src], MACS[p.dst]
        for i, opt in enumerate(p.options):
            if opt.key in ("lma_address", "previous_lma_address"):
                p.options[i] = option(
                    opt.key, option_code="IPV6", address=swap[str(opt.fields["address"])]
                )
    second = [p for p in second if p.message is not None]
    out = ladder(str(write(tmp_path / "again.pcap", first + second)), "--width", "120")
    assert "PLMA/NLMA" in out.splitlines()[0]


def test_corrupt_capture_is_an_error_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 7)
    result = lmaho_process("ladder", str(bad))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("lmaho: error: ") and "Traceback" not in result.stderr


def test_help_has_examples() -> None:
    result = CliRunner().invoke(app, ["ladder", "--help"])
    assert result.exit_code == 0 and "Examples:" in result.stdout


@pytest.mark.skipif(
    not SAMPLE_CAPTURES, reason="no samples in pcaps/ yet (lmaho craft writes them)"
)
@pytest.mark.parametrize("sample", SAMPLE_CAPTURES, ids=[p.name for p in SAMPLE_CAPTURES])
def test_every_sample_draws(sample: Path, tmp_path: Path) -> None:
    svg = tmp_path / "sample.svg"
    out = ladder(str(sample), "--svg", str(svg), "--max-rows", "200", "--width", "120")
    assert max(len(line) for line in out.splitlines()) <= 120
    assert 0 < len(arrows(svg)) <= 200


def test_many_mns_share_one_column(tmp_path: Path) -> None:
    packets = []
    for n in range(1, 7):
        packets += handover(Mobile(n), t0=1000.0 + n * 0.0005)
    path = write(tmp_path / "six.pcap", packets)
    out = ladder(str(path), "--width", "110")
    assert out.splitlines()[0].split()[2] == "MNs"
    assert "6 of them" in out.splitlines()[1]
    assert max(len(line) for line in out.splitlines()) <= 110
    svg = tmp_path / "six.svg"
    ladder(str(path), "--svg", str(svg), "--quiet")
    assert len(arrows(svg)) == 6 * 15


def test_capture_cut_short_draws_what_was_read_then_exits_2(capture: Path) -> None:
    data = capture.read_bytes()
    capture.write_bytes(data[: len(data) - 30])
    result = lmaho("ladder", str(capture), "--width", "100")
    assert result.returncode == 2
    assert result.stderr.startswith("lmaho: error: ") and "cut off" in result.stderr
    assert "14 arrow(s) drawn" in result.stdout


def test_mn_identifier_with_undecodable_and_control_octets(tmp_path: Path) -> None:
    mn_id = option("mn_identifier", subtype="NAI", identifier="mn\udcb2\x1b[31m@x")
    packets = handover()
    for p in packets:
        if p.message is not None:
            p.options = [mn_id if o.key == "mn_identifier" else o for o in p.options]
    path = write(tmp_path / "odd-id.pcap", packets)
    svg = tmp_path / "odd-id.svg"
    out = ladder(str(path), "--width", "120", "--svg", str(svg))
    assert "\x1b" not in out and len(arrows(svg)) == 15
    check = lmaho("check", str(path))
    assert check.returncode == 0
    assert "MN mn\\xb2\\x1b[31m@x" in check.stdout  # escaped, not sent to the terminal


def test_corrupted_bytes_never_raise(capture: Path, tmp_path: Path) -> None:
    pristine = capture.read_bytes()
    rng = random.Random(11)
    svg = tmp_path / "fuzz.svg"
    for _ in range(40):
        data = bytearray(pristine)
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(24, len(data))] = rng.randrange(256)
        capture.write_bytes(bytes(data))
        result = lmaho("ladder", str(capture), "--width", "100", "--svg", str(svg))
        assert result.returncode in (0, 2), result.stderr
        if result.returncode == 0:
            arrows(svg)  # still well-formed XML
