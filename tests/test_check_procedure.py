"""lmaho_check on captures built from docs/wire-format.md section 7, faults injected.

Each test writes a real capture (the codec's frames, Ethernet framing, pcap)
and reads it back through ``analyse_capture``, so the whole path is tested.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from lmaho_check import (
    CheckResult,
    FrameEvent,
    Handover,
    Issue,
    ProcedureAnalyser,
    check_records,
)
from lmaho_wire import CaptureWriter, option
from lmaho_wire.dissect import analyse_capture
from support.captures import (
    BMAG,
    CN,
    MACS,
    NLMA,
    OTHER_LMA,
    PLMA,
    Mobile,
    Packet,
    data_plane,
    find,
    handover,
    lost_message,
    signalling,
    with_options,
    write,
)


def check(tmp_path: Path, packets: list[Packet], **options: float) -> CheckResult:
    return check_records(analyse_capture(write(tmp_path / "c.pcap", packets)), **options)


def only_handover(result: CheckResult) -> Handover:
    assert len(result.handovers) == 1
    return result.handovers[0]


def rules(issues: list[Issue]) -> set[str]:
    return {i.rule for i in issues}


def the_violation(result: CheckResult, rule: str) -> Issue:
    matching = [i for i in result.violations if i.rule == rule]
    assert matching, f"no {rule} violation in {[i.what for i in result.violations]}"
    return matching[0]


def trailer(t: float) -> Packet:
    """An unrelated packet that keeps the capture going (past retransmission timers)."""
    return Packet("x", t, "2001:db8:ee::1", "2001:db8:ee::2")


# --- the clean handover and the failures the procedure allows ------------------------


def test_clean_handover_has_every_step_no_issue_and_its_latency(tmp_path: Path) -> None:
    result = check(tmp_path, handover())
    h = only_handover(result)
    assert result.violations == [] and result.warnings == []
    assert h.outcome is not None and h.outcome.status == "completed"
    assert sorted(h.steps) == list("bcdefghi")
    assert [h.steps[x].first.frame for x in "bcdefghi"] == list(range(1, 9))
    assert h.mn_id == "mn1@lmaho.example"
    assert {role: str(a) for role, a in h.roles.items()} == {
        "bMAG": BMAG,
        "PLMA": PLMA,
        "NLMA": NLMA,
        "Policy store": "2001:db8:5::1",
    }
    assert h.latency == pytest.approx(0.014)
    hops = {(s.step, s.hop) for s in h.data.values()}
    assert hops == {
        ("j", "CN->PLMA"),
        ("j", "PLMA=>NLMA"),
        ("j", "NLMA=>bMAG"),
        ("j", "bMAG->MN"),
        ("k", "MN->bMAG"),
        ("k", "bMAG=>NLMA"),
        ("k", "NLMA->CN"),
    }


@pytest.mark.parametrize(
    ("statuses", "step", "words"),
    [
        ({"hack_status": "ADMINISTRATIVELY_PROHIBITED"}, "d", "NLMA refused"),
        ({"update_status": "POLICY_UPDATE_FAILED"}, "h", "policy store did not update"),
        ({"pba_status": "NOT_LMA_FOR_THIS_MOBILE_NODE"}, "i", "NLMA rejected the PBU"),
    ],
)
def test_refusals_are_failures_not_violations(
    tmp_path: Path, statuses: dict[str, str], step: str, words: str
) -> None:
    result = check(tmp_path, handover(Mobile(), 1000.0, **statuses))
    h = only_handover(result)
    assert result.violations == []
    assert h.outcome is not None
    assert (h.outcome.status, h.outcome.step) == ("failed", step)
    assert words in h.outcome.reason


def test_lost_answer_and_its_retransmission_is_reported_as_such(tmp_path: Path) -> None:
    result = check(tmp_path, lost_message())
    h = only_handover(result)
    assert result.violations == [] and result.warnings == []
    assert h.outcome is not None and h.outcome.status == "completed"
    [again] = h.retransmissions
    assert (again.step, again.frames, again.answered_by) == ("c", (2, 4), (3, 5))
    assert again.intervals == (pytest.approx(1.0),)


def test_lost_request_retransmitted_too_early_is_a_warning(tmp_path: Path) -> None:
    packets = lost_message()
    copies = [p for p in packets if p.step == "c"]
    copies[1].time = copies[0].time + 0.2
    result = check(tmp_path, packets)
    assert result.violations == []
    assert "retransmission" in rules(result.warnings)


def test_retransmission_with_a_new_sequence_number_is_a_violation(tmp_path: Path) -> None:
    packets = lost_message()
    copies = [p for p in packets if p.step == "c"]
    copies[1].fields = {**copies[1].fields, "sequence": 2}
    result = check(tmp_path, packets)
    issue = the_violation(result, "retransmission")
    assert "keeps its Sequence Number" in issue.what


def test_several_mobiles_are_separate_handovers(tmp_path: Path) -> None:
    packets = []
    for n in (1, 2, 3):
        packets += handover(Mobile(n), t0=1000.0 + n * 0.0005)
    result = check(tmp_path, packets)
    assert result.violations == []
    assert sorted(h.mn_id or "" for h in result.handovers) == [
        "mn1@lmaho.example",
        "mn2@lmaho.example",
        "mn3@lmaho.example",
    ]
    assert all(h.outcome and h.outcome.status == "completed" for h in result.handovers)


# --- injected violations ---------------------------------------------------------------


def test_pbu_to_another_lma_than_the_one_announced(tmp_path: Path) -> None:
    packets = handover()
    pbu = find(packets, "f")
    pbu.dst, pbu.dst_mac = OTHER_LMA, MACS[OTHER_LMA]
    pba = find(packets, "i")
    pba.src, pba.src_mac = OTHER_LMA, MACS[OTHER_LMA]
    result = check(tmp_path, packets)
    issue = the_violation(result, "wrong-nlma")
    assert issue.frames == (4, 5)
    assert OTHER_LMA in issue.what and NLMA in issue.what


def test_lma_ho_resp_naming_another_nlma(tmp_path: Path) -> None:
    packets = handover()
    with_options(
        find(packets, "e"), lma_address=option("lma_address", option_code="IPV6", address=OTHER_LMA)
    )
    result = check(tmp_path, packets)
    issue = the_violation(result, "wrong-nlma")
    assert issue.step == "e" and issue.frames == (2, 4)


def test_swapped_steps_are_out_of_order(tmp_path: Path) -> None:
    packets = handover()
    resp, pbu = find(packets, "e"), find(packets, "f")
    resp.time, pbu.time = pbu.time, resp.time
    result = check(tmp_path, packets)
    issue = the_violation(result, "order")
    assert issue.frames == (4, 5)
    assert "(f) PBU (frame 4) comes before (e) LMA_HO_Resp (frame 5)" in issue.what
    assert rules(result.violations) == {"order"}


def test_steps_written_out_of_time_order_are_in_order(tmp_path: Path) -> None:
    """dumpcap capturing two links into one file may write a later packet of one link
    before an earlier one of the other: the capture times, not the file, order steps."""
    packets = handover()
    hack, resp = find(packets, "d"), find(packets, "e")  # PLMA-NLMA link, bMAG-PLMA link
    order = sorted(packets, key=lambda p: p.time)
    at = order.index(hack)
    assert order[at + 1] is resp
    order[at], order[at + 1] = resp, hack
    path = tmp_path / "two-links.pcap"
    with CaptureWriter(path) as writer:
        for packet in order:
            writer.write(packet.encode(), packet.time)
    result = check_records(analyse_capture(path))
    assert result.violations == [] and result.warnings == []


def test_mismatched_mn_identifier(tmp_path: Path) -> None:
    packets = handover()
    with_options(
        find(packets, "f"),
        mn_identifier=option("mn_identifier", subtype="NAI", identifier="intruder@lmaho.example"),
    )
    result = check(tmp_path, packets)
    h = only_handover(result)
    issue = the_violation(result, "mn-id")
    assert issue.step == "f" and 5 in issue.frames
    assert "intruder@lmaho.example" in issue.what
    assert "f" in h.steps  # the PBU stays in its handover


def test_prefix_mismatch(tmp_path: Path) -> None:
    packets = handover()
    with_options(
        find(packets, "d"),
        home_network_prefix=option("home_network_prefix", prefix_length=64, prefix="2001:db8:99::"),
    )
    result = check(tmp_path, packets)
    issue = the_violation(result, "prefix")
    assert issue.step == "d" and 3 in issue.frames
    assert "2001:db8:99::/64" in issue.what


def test_link_layer_id_mismatch(tmp_path: Path) -> None:
    packets = handover()
    with_options(
        find(packets, "f"),
        mn_link_layer_identifier=option("mn_link_layer_identifier", identifier="02:00:00:00:99:99"),
    )
    result = check(tmp_path, packets)
    issue = the_violation(result, "link-layer-id")
    assert issue.step == "f" and 5 in issue.frames
    assert "carries MN-LL-ID 02:00:00:00:99:99, (" in issue.what


def test_each_identity_a_message_breaks_is_its_own_violation(tmp_path: Path) -> None:
    packets = handover()
    with_options(
        find(packets, "d"),
        mn_identifier=option("mn_identifier", subtype="NAI", identifier="intruder@lmaho.example"),
        home_network_prefix=option("home_network_prefix", prefix_length=64, prefix="2001:db8:99::"),
    )
    result = check(tmp_path, packets)
    for rule in ("mn-id", "prefix"):
        assert the_violation(result, rule).step == "d"


def test_bad_checksum(tmp_path: Path) -> None:
    packets = handover()
    find(packets, "c").corrupt_checksum = True
    result = check(tmp_path, packets)
    issue = the_violation(result, "checksum")
    assert issue.frames == (2,) and issue.step == "c"
    assert rules(result.violations) == {"checksum"}


def test_missing_response(tmp_path: Path) -> None:
    packets = [p for p in signalling() if p.step != "h"]
    result = check(tmp_path, packets)
    issue = the_violation(result, "missing-response")
    assert issue.step == "g" and issue.frames == (6,)


def test_missing_last_response_once_the_capture_went_on(tmp_path: Path) -> None:
    packets = [p for p in signalling() if p.step != "i"]
    result = check(tmp_path, [*packets, trailer(1005.0)])
    issue = the_violation(result, "missing-response")
    assert issue.step == "f"
    h = only_handover(result)
    assert h.outcome is not None and h.outcome.status == "incomplete"


def test_capture_ending_before_the_answer_is_only_a_warning(tmp_path: Path) -> None:
    packets = [p for p in signalling() if p.step != "i"]
    result = check(tmp_path, packets)
    assert result.violations == []
    assert "capture-end" in rules(result.warnings)


def test_abandoned_after_retransmissions(tmp_path: Path) -> None:
    packets = signalling()[:2]
    init = packets[1]
    for sent_after in (1.0, 3.0, 7.0):  # the timer doubles: 1, 2, 4 s
        packets.append(replace(init, time=init.time + sent_after))
    result = check(tmp_path, [*packets, trailer(1020.0)])
    h = only_handover(result)
    assert h.outcome is not None and (h.outcome.status, h.outcome.step) == ("abandoned", "c")
    assert "3 retransmission(s)" in h.outcome.reason
    assert "missing-response" in rules(result.violations)
    assert "retransmission" not in rules(result.violations + result.warnings)


def test_too_many_retransmissions(tmp_path: Path) -> None:
    packets = signalling()[:2]
    init = packets[1]
    for sent_after in (1.0, 3.0, 7.0, 15.0):
        packets.append(replace(init, time=init.time + sent_after))
    result = check(tmp_path, [*packets, trailer(1040.0)])
    assert "retransmission" in rules(result.violations)


def test_tunnel_carrying_a_foreign_prefix(tmp_path: Path) -> None:
    packets = handover()
    stray = next(p for p in packets if p.tunnel == (PLMA, NLMA))
    stray.dst = "2001:db8:99::1"
    result = check(tmp_path, packets)
    issue = the_violation(result, "foreign-prefix")
    assert issue.frames == (10,)
    assert "2001:db8:99::1" in issue.what
    assert issue in only_handover(result).violations


def test_another_mns_traffic_in_a_tunnel_not_its_own(tmp_path: Path) -> None:
    # MN 2 is handed over between other entities; its data then uses MN 1's tunnel.
    packets = handover()
    second = signalling(Mobile(2), t0=1000.05)
    packets += second
    stray = next(p for p in packets if p.tunnel == (NLMA, BMAG))
    stray.dst = Mobile(2).address
    for p in second:  # MN 2's NLMA is another LMA: it has no tunnel NLMA => bMAG
        p.src, p.dst = (OTHER_LMA if a == NLMA else a for a in (p.src, p.dst))
    result = check(tmp_path, packets)
    issue = the_violation(result, "foreign-prefix")
    assert "mn2@lmaho.example" in issue.what or issue.mn == "mn2@lmaho.example"


def test_uplink_through_the_new_tunnel_before_the_pba(tmp_path: Path) -> None:
    packets = signalling()
    [early] = [p for p in data_plane() if p.tunnel == (BMAG, NLMA)]
    early.time = find(packets, "f").time + 0.0001  # after the PBU, before the PBA
    packets.append(early)
    result = check(tmp_path, packets)
    issue = the_violation(result, "tunnel")
    assert "not one of its tunnels" in issue.what


def test_nlma_downlink_to_the_bmag_from_an_accepted_hack(tmp_path: Path) -> None:
    # Make-before-break: the NLMA's BCE from (d) names the bMAG (the Proxy-CoA of (c)),
    # so the downlink the PLMA tunnels to it from (d) on goes on to the bMAG before (i).
    packets = signalling()
    hack_time = find(packets, "d").time
    early = [p for p in data_plane(t0=hack_time + 0.0001) if p.step == "j"]
    result = check(tmp_path, [*packets, *early])
    assert result.violations == [] and result.warnings == []
    assert ("before", "NLMA=>bMAG") in only_handover(result).data


def test_nlma_downlink_to_the_bmag_needs_the_hack(tmp_path: Path) -> None:
    packets = signalling()
    [early] = [p for p in data_plane() if p.tunnel == (NLMA, BMAG)]
    early.time = find(packets, "c").time + 0.0001  # after (c), before (d)
    packets.append(early)
    assert "not one of its tunnels" in the_violation(check(tmp_path, packets), "tunnel").what


def test_nlma_downlink_to_the_bmag_ends_with_a_refused_pba(tmp_path: Path) -> None:
    packets = signalling(pba_status="REASON_UNSPECIFIED")
    [late] = [p for p in data_plane() if p.tunnel == (NLMA, BMAG)]
    late.time = find(packets, "i").time + 0.0001
    result = check(tmp_path, [*packets, late])
    [stale] = [w for w in result.warnings if w.rule == "tunnel"]
    assert "refused the handover" in stale.what


def test_tunnel0_after_the_handover_is_a_stale_tunnel(tmp_path: Path) -> None:
    packets = handover()
    late = Packet("j", 1000.5, CN, Mobile().address, tunnel=(PLMA, BMAG), src_mac=MACS[PLMA])
    result = check(tmp_path, [*packets, late])
    assert result.violations == []
    assert "tunnel" in rules(result.warnings)


def test_failed_update_must_not_be_answered_by_a_successful_pba(tmp_path: Path) -> None:
    packets = handover(update_status="POLICY_UPDATE_FAILED")
    pba = find(packets, "i")
    pba.fields = {**pba.fields, "status": "ACCEPTED"}
    result = check(tmp_path, packets)
    issue = the_violation(result, "status")
    assert issue.step == "i"


def test_pbu_after_a_refused_handover(tmp_path: Path) -> None:
    refused = handover(hack_status="INSUFFICIENT_RESOURCES")
    accepted = signalling()
    result = check(tmp_path, [*refused, find(accepted, "f")])
    assert "unexpected-step" in rules(result.violations)


def test_missing_mandatory_option_and_flag(tmp_path: Path) -> None:
    packets = handover()
    init = find(packets, "c")
    with_options(init, mag_ipv6_address=None)
    init.fields = {**init.fields, "flags": set()}
    result = check(tmp_path, packets)
    assert {"mandatory-option", "flags"} <= rules(result.violations)
    assert "MAG IPv6 Address" in the_violation(result, "mandatory-option").what


def test_response_answering_no_request(tmp_path: Path) -> None:
    packets = handover()
    hack = find(packets, "d")
    hack.fields = {**hack.fields, "sequence": 77}
    result = check(tmp_path, packets)
    issue = the_violation(result, "pairing")
    assert "seq=77" in issue.what


def test_malformed_mobility_header_is_a_violation_outside_handovers(tmp_path: Path) -> None:
    path = write(tmp_path / "c.pcap", handover())
    data = bytearray(path.read_bytes())
    # Frame 1's MH Header Len (Ethernet 14 + IPv6 40 + 1 into the MH, after the pcap headers).
    data[24 + 16 + 14 + 40 + 1] = 200
    path.write_bytes(bytes(data))
    result = check_records(analyse_capture(path))
    assert "malformed" in rules(result.violations)


def test_memory_is_per_open_handover(tmp_path: Path) -> None:
    packets = []
    for n in range(1, 31):
        packets += handover(Mobile(n), t0=1000.0 + n * 2.0)
    closed_while_running = []
    analyser = ProcedureAnalyser(linger=1.0)
    for record in analyse_capture(write(tmp_path / "c.pcap", packets)):
        closed_while_running += analyser.feed(record)
        assert analyser.open_handovers <= 2
    assert len(closed_while_running) >= 28
    assert len(closed_while_running) + len(analyser.finish()) == 30


def registration_exchange(mobile: Mobile, t: float, *, lifetime: int) -> list[Packet]:
    """An ordinary PBU/PBA between the bMAG and the PLMA (lifetime 0: a de-registration)."""
    options = [
        option("mn_identifier", subtype="NAI", identifier=mobile.mn_id),
        option("home_network_prefix", prefix_length=64, prefix=mobile.prefix),
        option("handoff_indicator", indicator="NEW_INTERFACE"),
        option("access_technology_type", technology="IEEE_802_11"),
    ]
    seq = 9 if lifetime else 10
    pbu = Packet("reg", t, BMAG, PLMA, "PBU", {"sequence": seq, "flags": {"A", "H"}})
    pba = Packet("reg", t + 0.001, PLMA, BMAG, "PBA", {"sequence": seq, "status": "ACCEPTED"})
    pbu.fields["lifetime"] = pba.fields["lifetime"] = lifetime
    pbu.options = pba.options = options
    return [pbu, pba]


def test_registration_and_tunnel0_traffic_before_the_handover(tmp_path: Path) -> None:
    mobile = Mobile()
    pbu, pba = registration_exchange(mobile, 990.0, lifetime=3600)
    tunnel0 = [
        Packet("d", 995.0, CN, mobile.address, tunnel=(PLMA, BMAG)),
        Packet("u", 995.001, mobile.address, CN, tunnel=(BMAG, PLMA)),
        # During the handover, before (i): still Tunnel0.
        Packet("d", 1000.005, CN, mobile.address, tunnel=(PLMA, BMAG)),
    ]
    result = check(tmp_path, [pbu, pba, *tunnel0, *handover()])
    assert result.violations == [] and result.warnings == []
    h = only_handover(result)
    assert h.outcome is not None and h.outcome.status == "completed"
    assert ("before", "PLMA=>bMAG") in h.data
    assert result.analyser.counters.data == 3 + 7
    # The registration is ordinary PMIPv6, not a step of the handover.
    assert h.steps["f"].first.frame > 5


def test_the_same_mn_handed_over_twice_gives_two_handovers(tmp_path: Path) -> None:
    first = handover()
    second = handover(t0=1000.05)  # before the first one's data-plane linger ran out
    for p in second:
        if p.message is not None:
            p.fields = {**p.fields, "sequence": 2}
    result = check(tmp_path, [*first, *second])
    assert [h.number for h in result.handovers] == [1, 2]
    assert [h.steps["b"].first.frame for h in result.handovers] == [1, 9]
    assert all(h.outcome and h.outcome.status == "completed" for h in result.handovers)
    assert result.violations == []


def test_tunnel0_after_a_deregistration_is_a_stale_tunnel(tmp_path: Path) -> None:
    mobile = Mobile()
    packets = [
        *registration_exchange(mobile, 990.0, lifetime=3600),
        *registration_exchange(mobile, 991.0, lifetime=0),
        Packet("d", 992.0, CN, mobile.address, tunnel=(PLMA, BMAG)),
    ]
    result = check(tmp_path, packets)
    assert result.handovers == [] and result.violations == []
    [stale] = result.warnings
    assert stale.rule == "tunnel" and stale.frames == (5,)
    assert "out of use since the de-registration acknowledged by PBA frame 4" in stale.what


def test_option_the_step_table_does_not_list_is_a_warning(tmp_path: Path) -> None:
    packets = handover()
    find(packets, "b").options.append(option("link_local_address", address="fe80::1"))
    result = check(tmp_path, packets)
    assert result.violations == []
    [extra] = result.warnings
    assert extra.rule == "unexpected-option" and extra.frames == (1,)
    assert "Link-local Address" in extra.what


def test_data_after_the_handover_was_closed_is_still_steps_j_and_k(tmp_path: Path) -> None:
    packets = [*signalling(), *data_plane(t0=1003.0)]
    steps: dict[int, str | None] = {}

    def on_event(event: FrameEvent) -> None:
        steps[event.frame] = event.step

    analyser = ProcedureAnalyser(linger=0.0, on_event=on_event)
    handovers = list(analyser.run(analyse_capture(write(tmp_path / "c.pcap", packets))))
    assert len(handovers) == 1 and not handovers[0].data  # closed before its data came
    assert [steps[f] for f in range(9, 16)] == list("jjjjkkk")
    assert analyser.global_counts == {"violation": 0, "warning": 0}
