"""Issue 10's rules, each on a crafted capture edited to break (or legitimately vary) it.

Freshness (Sequence Numbers and Timestamps per sender and receiver, replays),
option multiplicity as the schema declares it, the IPv4 LMA Address, flags
against status, the unknown-types hint, and what live captures showed
(foreign-prefix messages naming a few MNs, back-handover hops).
"""

from __future__ import annotations

import re
from dataclasses import replace
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from lmaho_check import CheckResult, Issue, check_records
from lmaho_procedure import Role, Rule
from lmaho_wire import CaptureWriter, Timestamp, option
from lmaho_wire.checksum import upper_layer_checksum
from lmaho_wire.dissect import analyse_capture
from lmaho_wire.packet import ethernet_header, ipv6_header, mac_bytes
from lmaho_wire.schema import IANA_MH_TYPES, make_schema
from support.captures import (
    MACS,
    NLMA,
    PLMA,
    Mobile,
    Packet,
    data_plane,
    find,
    handover,
    signalling,
    with_options,
    write,
)
from support.cli import lmaho
from support.paths import ROOT


def check(tmp_path: Path, packets: list[Packet]) -> CheckResult:
    return check_records(analyse_capture(write(tmp_path / "c.pcap", packets)))


def violations_of(result: CheckResult, rule: Rule) -> list[Issue]:
    return [i for i in result.violations if i.rule == rule]


def renumbered(packets: list[Packet], seq: int) -> list[Packet]:
    return [replace(p, fields={**p.fields, "sequence": seq}) if p.message else p for p in packets]


def later(packets: list[Packet], seconds: float, *, restamp: bool = True) -> list[Packet]:
    """The packets ``seconds`` later; their Timestamp options too, unless ``restamp`` is off."""
    out = [replace(p, time=p.time + seconds, options=list(p.options)) for p in packets]
    for p in out if restamp else ():
        stamp = next((o for o in p.options if o.key == "timestamp"), None)
        if stamp is not None:
            moved = Timestamp.from_float(float(stamp.timestamp) + seconds)
            with_options(p, timestamp=option("timestamp", timestamp=moved))
    return out


# --- freshness -------------------------------------------------------------------


def test_handovers_with_advancing_numbers_pass(tmp_path: Path) -> None:
    first = handover()
    second = renumbered(later(handover(), 100.0), 2)
    result = check(tmp_path, [*first, *second])
    assert result.violations == [] and result.warnings == []


def test_sequence_numbers_may_wrap(tmp_path: Path) -> None:
    first = renumbered(handover(), 65535)
    second = renumbered(later(handover(), 100.0), 0)
    assert check(tmp_path, [*first, *second]).violations == []


def test_a_handover_replayed_byte_for_byte_is_a_replay(tmp_path: Path) -> None:
    first = handover()
    replayed = [p for p in later(first, 100.0, restamp=False) if p.message is not None]
    # Timestamps and all: the very same bytes, later.
    for p, original in zip(replayed, (p for p in first if p.message), strict=True):
        assert p.encode() == original.encode()
    result = check(tmp_path, [*first, *replayed])
    replays = violations_of(result, Rule.REPLAY)
    # Each request of the replay: (b), (c), (f), (g), on their own sender and receiver.
    assert sorted(i.step for i in replays) == ["b", "c", "f", "g"]
    assert all("after its retransmissions were over" in i.what for i in replays)
    request = find(first, "b")
    [of_b] = [i for i in replays if i.step == "b"]
    assert of_b.frames == (1, 1 + len(first)) and f"from {request.src}" in of_b.what


def test_a_second_handover_restarting_its_numbers_is_a_replay(tmp_path: Path) -> None:
    first = renumbered(handover(), 7)
    second = renumbered(later(handover(), 100.0), 3)  # fresh Timestamps, older numbers
    result = check(tmp_path, [*first, *second])
    replays = violations_of(result, Rule.REPLAY)
    assert sorted(i.step for i in replays) == ["b", "c", "f", "g"]
    assert all("does not advance past seq 7" in i.what for i in replays)
    assert not violations_of(result, Rule.TIMESTAMP)


def test_a_retransmission_between_other_requests_is_no_replay(tmp_path: Path) -> None:
    # MN 2's request (seq 2) goes out between MN 1's request (seq 1) and its copy.
    one, two = signalling(Mobile(1), seq=1), signalling(Mobile(2), 1000.0005, seq=2)
    request = find(one, "b")
    again = replace(request, time=request.time + 1.0, options=list(request.options))
    result = check(tmp_path, [*one, *two, again])
    assert not violations_of(result, Rule.REPLAY)


@pytest.mark.parametrize(("shift", "word"), [(-5.0, "goes back from"), (0.0, "repeats")])
def test_a_new_request_needs_a_later_timestamp(tmp_path: Path, shift: float, word: str) -> None:
    first = handover()
    second = renumbered(later(handover(), 100.0), 2)
    request, old = find(second, "b"), find(first, "b")
    stamp = Timestamp.from_float(old.time + shift)
    with_options(request, timestamp=option("timestamp", timestamp=stamp))
    result = check(tmp_path, [*first, *second])
    [stale] = violations_of(result, Rule.TIMESTAMP)
    assert stale.step == "b" and word in stale.what
    assert f"of seq 1 (frame {1})" in stale.what


# --- option multiplicity -----------------------------------------------------------


def test_the_schema_declares_which_options_may_repeat() -> None:
    options = {body.key: body for body in make_schema().options.values()}
    assert options["home_network_prefix"].repeatable
    once = ("mn_identifier", "lma_address", "timestamp", "handoff_indicator", "new_ap_id")
    assert not any(options[key].repeatable for key in once)


def test_two_mn_identifiers_in_one_message(tmp_path: Path) -> None:
    packets = handover()
    request = find(packets, "b")
    request.options.append(option("mn_identifier", subtype="NAI", identifier="other@x"))
    result = check(tmp_path, packets)
    [twice] = violations_of(result, Rule.REPEATED_OPTION)
    assert twice.frames == (1,) and twice.step == "b"
    assert "Mobile Node Identifier twice" in twice.what
    assert "mn1@lmaho.example" in twice.what and "other@x" in twice.what


def test_two_lma_addresses_in_lma_ho_resp(tmp_path: Path) -> None:
    packets = handover()
    response = find(packets, "e")
    response.options.append(option("lma_address", option_code="IPV6", address=PLMA))
    [twice] = violations_of(check(tmp_path, packets), Rule.REPEATED_OPTION)
    assert twice.step == "e" and NLMA in twice.what and PLMA in twice.what


def test_several_home_network_prefixes_are_allowed(tmp_path: Path) -> None:
    packets = handover()
    second = option("home_network_prefix", prefix_length=64, prefix="2001:db8:77::")
    for p in packets:
        if p.message is not None and any(o.key == "home_network_prefix" for o in p.options):
            p.options = [*p.options, second]
    result = check(tmp_path, packets)
    assert not violations_of(result, Rule.REPEATED_OPTION) and result.violations == []


# --- IPv4 LMA Address, flags against status ------------------------------------------


def test_an_ipv4_lma_address_is_compared_too(tmp_path: Path) -> None:
    packets = handover()
    response = find(packets, "e")
    ipv4 = option("lma_address", option_code="IPV4", address="192.0.2.2")
    with_options(response, lma_address=ipv4)
    result = check(tmp_path, packets)
    wrong = violations_of(result, Rule.WRONG_NLMA)
    assert {i.step for i in wrong} == {"e", "f"}
    pbu = next(i for i in wrong if i.step == "f")
    assert f"(f) PBU goes to {NLMA}" in pbu.what and "192.0.2.2" in pbu.what
    assert "IPv4 LMA Address" in pbu.what
    # The NLMA of the report is still the IPv6 node the context went to.
    assert result.handovers[0].roles[Role.NLMA] == IPv6Address(NLMA)


def test_a_refusing_lma_hack_with_t_set(tmp_path: Path) -> None:
    packets = handover(hack_status="ADMINISTRATIVELY_PROHIBITED")
    find(packets, "d").fields["flags"] = {"T"}
    [flag] = violations_of(check(tmp_path, packets), Rule.FLAGS)
    assert flag.step == "d" and "refuses (ADMINISTRATIVELY_PROHIBITED) with flag(s) T" in flag.what


def test_a_refusing_lma_hack_without_t_passes(tmp_path: Path) -> None:
    result = check(tmp_path, handover(hack_status="ADMINISTRATIVELY_PROHIBITED"))
    assert result.violations == []


# --- the unknown-types hint ------------------------------------------------------------


def mobile_ipv6_frame(name: str) -> bytes:
    """A plain MIPv6 message of type ``name`` (2 octets of data), with a valid checksum."""
    src, dst = "2001:db8:e::1", "2001:db8:e::2"
    body = bytearray([59, 0, IANA_MH_TYPES[name], 0, 0, 0, 0, 0])
    body[4:6] = upper_layer_checksum(src, dst, bytes(body)).to_bytes(2, "big")
    packet = ipv6_header(IPv6Address(src).packed, IPv6Address(dst).packed, 135, len(body))
    return ethernet_header(mac_bytes(MACS[NLMA]), mac_bytes(MACS[PLMA])) + packet + bytes(body)


def test_plain_mobile_ipv6_is_not_told_it_has_unknown_types(tmp_path: Path) -> None:
    path = tmp_path / "mipv6.pcap"
    with CaptureWriter(path) as writer:
        for i, name in enumerate(("BRR", "HoTI", "CoTI", "HoT", "CoT", "BE")):
            writer.write(mobile_ipv6_frame(name), 1000.0 + i)
    run = lmaho("check", str(path))
    assert "frames: 6 (6 signalling" in run.stdout
    assert "unknown types" not in run.stdout


# --- what live captures showed ---------------------------------------------------------


def test_foreign_prefix_names_a_few_mobiles(tmp_path: Path) -> None:
    packets: list[Packet] = []
    for number in range(1, 13):  # twelve MNs through the same bMAG, PLMA and NLMA
        packets += signalling(Mobile(number), 1000.0 + number * 0.00001, seq=number)
    stray = next(p for p in data_plane(t0=1001.0) if p.tunnel == (PLMA, NLMA))
    stray.dst = "2001:db8:99::1"
    result = check(tmp_path, [*packets, stray])
    [foreign] = violations_of(result, Rule.FOREIGN_PREFIX)
    assert "and 7 more" in foreign.what
    assert len(re.findall(r"mn\d+@lmaho\.example", foreign.what)) == 5


def test_a_back_handover_names_its_hops_without_a_clash(tmp_path: Path) -> None:
    # The MN goes PLMA -> NLMA, then back: the second handover's PLMA is the first's NLMA.
    swap = {PLMA: NLMA, NLMA: PLMA}
    there = handover()
    back = renumbered(later(signalling(), 100.0), 2)
    for p in back:
        p.src, p.dst = (swap.get(a, a) for a in (p.src, p.dst))
        for key in ("lma_address", "previous_lma_address"):
            named = next((o for o in p.options if o.key == key), None)
            if named is not None:
                turned = option(key, option_code="IPV6", address=swap[str(named.address)])
                with_options(p, **{key: turned})
    # Downlink still through the first handover's PLMA => NLMA tunnel after the back (b).
    [old_route] = [p for p in data_plane() if p.tunnel == (PLMA, NLMA)]
    old_route.time = find(back, "b").time + 0.0001
    result = check(tmp_path, [*there, *back, old_route])
    second = result.handovers[-1]
    hops = {segment.hop for segment in second.data.values()}
    assert hops == {"LMA=>PLMA"} or hops == {"NLMA=>PLMA"}
    assert "PLMA=>PLMA" not in hops


# --- the rules' documentation ----------------------------------------------------------


def test_docs_check_md_lists_every_rule() -> None:
    text = (ROOT / "docs" / "check.md").read_text()
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", text, re.MULTILINE))
    assert listed == {rule.value for rule in Rule}


# --- one packet captured at two points ----------------------------------------------


def seen_twice(packets: list[Packet], *, hops: int, after: float) -> list[Packet]:
    """Each message also captured ``after`` seconds later, ``hops`` routers further on
    (hop limit lower, the next link's MACs): a capture on a router, or tcpdump -i any."""
    out: list[Packet] = []
    for p in packets:
        out.append(p)
        if p.message is not None:
            out.append(
                replace(
                    p,
                    time=p.time + after,
                    hop_limit=p.hop_limit - hops,
                    src_mac="02:00:00:00:00:99",
                    dst_mac="02:00:00:00:00:98",
                )
            )
    return sorted(out, key=lambda p: p.time)


def test_a_message_seen_again_one_hop_on_is_one_message(tmp_path: Path) -> None:
    result = check(tmp_path, seen_twice(handover(), hops=1, after=0.0001))
    assert result.violations == [] and result.warnings == []
    assert [h.outcome.status for h in result.handovers if h.outcome] == ["completed"]
    assert (result.analyser.counters.forwarded, result.analyser.counters.signalling) == (8, 8)


def test_a_copy_with_the_same_hop_limit_or_after_the_timer_is_sent_again(
    tmp_path: Path,
) -> None:
    """A sender's own resend keeps its hop limit where it is captured: still a (too early)
    retransmission; and a copy later than any packet takes one hop is sent again."""
    for hops, after in ((0, 0.0001), (1, 1.5)):
        result = check(tmp_path, seen_twice(handover(), hops=hops, after=after))
        assert result.analyser.counters.forwarded == 0
        assert any(i.rule == Rule.RETRANSMISSION for i in result.violations + result.warnings)
