"""The entities run the draft's procedure: each step's message as docs/wire-format.md 7 says.

Every test runs the reference network on the virtual clock with a recording
frame sink, then reads what went over the links: both the packets the
entities handed to the network and the bytes they became.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from lmaho_entities import (
    DEFAULT_SCENARIO,
    BindingState,
    Campaign,
    Outcome,
    Packet,
    ReferenceNetwork,
    Scheduler,
    Signal,
    SimulatedNetwork,
    Transmission,
    Variant,
    decode_packet,
    lost_message_rule,
    mobile_spec,
)
from lmaho_entities.context import handoff_indicator_option
from lmaho_entities.packets import IPv6Address
from lmaho_entities.simnet import Hop
from lmaho_procedure import GIVE_UP_AFTER
from lmaho_wire import Timestamp, decode
from lmaho_wire.schema import BA_STATUS, HANDOVER_STATUS

SC = DEFAULT_SCENARIO
BMAG, PLMA, NLMA, STORE, CN = (
    SC.bmag.address,
    SC.plma.address,
    SC.nlma.address,
    SC.store.address,
    SC.cn.address,
)
PREFIX = SC.mobiles.home_network_prefix
MN_ID = "mn1@lmaho.example"
MN_ADDRESS = mobile_spec(SC.mobiles, 1).address


@dataclass
class Run:
    world: ReferenceNetwork
    campaign: Campaign
    sent: list[Transmission]
    results: list

    def signals(self, message: str | None = None) -> list[tuple[Transmission, Signal]]:
        out = []
        for tx in self.sent:
            payload = tx.packet.payload
            if isinstance(payload, Signal) and (message is None or payload.message == message):
                out.append((tx, payload))
        return out

    def one(self, message: str) -> tuple[Transmission, Signal]:
        found = self.signals(message)
        assert len(found) == 1, f"{len(found)} {message} sent"
        return found[0]

    def data(self) -> list[Transmission]:
        return [tx for tx in self.sent if not isinstance(tx.packet.payload, Signal)]


def run(
    variant: Variant = Variant.NONE,
    *,
    mobiles: int = 1,
    handovers: int = 1,
    loss: Callable[[Packet, Hop], bool] | None = None,
    scenario=SC,
    watch: Callable[[ReferenceNetwork, Transmission], None] | None = None,
) -> Run:
    scheduler = Scheduler(scenario.timing.epoch)
    sent: list[Transmission] = []
    world_box: list[ReferenceNetwork] = []

    def sink(tx: Transmission) -> None:
        sent.append(tx)
        if watch is not None:
            watch(world_box[0], tx)

    if variant is Variant.LOST_MESSAGE and loss is None:
        loss = lost_message_rule(scenario.failures.lost_step)
    network = SimulatedNetwork(
        scheduler, rng=random.Random(1), jitter=scenario.timing.jitter, sink=sink, loss=loss
    )
    world = ReferenceNetwork(scenario, scheduler, network, variant)
    world_box.append(world)
    results: list = []
    campaign = Campaign(
        world,
        mobiles=mobiles,
        handovers=handovers,
        rng=random.Random(2),
        on_handover=results.append,
    )
    campaign.run()
    return Run(world, campaign, sent, results)


def keys(signal: Signal) -> list[str]:
    return [o.key for o in signal.options]


def test_signalling_runs_b_to_i_in_order_between_the_right_entities() -> None:
    r = run()
    steps = [(s.step, s.message, tx.packet.src, tx.packet.dst) for tx, s in r.signals()]
    assert steps == [
        ("b", "LMA_HO_Req", BMAG, PLMA),
        ("c", "LMA_HO_Init", PLMA, NLMA),
        ("d", "LMA_HAck", NLMA, PLMA),
        ("e", "LMA_HO_Resp", PLMA, BMAG),
        ("f", "PBU", BMAG, NLMA),
        ("g", "Update", NLMA, STORE),
        ("h", "Update_Ack", STORE, NLMA),
        ("i", "PBA", NLMA, BMAG),
    ]
    times = [tx.time for tx in r.sent]
    assert times == sorted(times)
    assert r.results[0].outcome is Outcome.COMPLETED
    # Each frame leaves on the link between sender and receiver, with that link's MACs.
    for tx, _ in r.signals():
        link = SC.links.get(f"{tx.hop.sender.name}-{tx.hop.receiver.name}") or SC.links.get(
            f"{tx.hop.receiver.name}-{tx.hop.sender.name}"
        )
        assert link is not None
        macs = {bytes.fromhex(m.replace(":", "")) for m in link.macs}
        assert {tx.frame[0:6], tx.frame[6:12]} == macs


def test_each_message_carries_what_section_7_requires() -> None:
    r = run()
    _, req = r.one("LMA_HO_Req")
    assert keys(req) == [
        "mn_identifier",
        "home_network_prefix",
        "new_ap_id",
        "timestamp",
        "mn_link_layer_identifier",
        "access_technology_type",
    ]
    assert req.flags == frozenset() and req.lifetime == SC.bmag.binding_lifetime
    ap2 = SC.access_points["ap2"]
    assert req.option("new_ap_id").fields["identifier"] == ap2.identifier

    _, init = r.one("LMA_HO_Init")
    assert init.flags == {"T"}
    assert keys(init)[:4] == [
        "mn_identifier",
        "home_network_prefix",
        "mag_ipv6_address",
        "timestamp",
    ]
    assert set(keys(init)) >= {
        "mn_link_layer_identifier",
        "access_technology_type",
        "link_local_address",
        "new_ap_id",
    }
    assert init.option("mag_ipv6_address").fields["address"] == BMAG
    assert init.option("new_ap_id").data == req.option("new_ap_id").data
    # The remaining lifetime of the PLMA's binding, in whole 4-second units.
    assert 0 < init.lifetime <= SC.plma.max_lifetime and init.lifetime % 4 == 0

    _, hack = r.one("LMA_HAck")
    assert hack.status == 0 and hack.flags == {"T"}
    assert keys(hack) == ["mn_identifier", "home_network_prefix"]
    assert hack.sequence == init.sequence and hack.lifetime == init.lifetime

    _, resp = r.one("LMA_HO_Resp")
    assert resp.status == 0 and resp.sequence == req.sequence
    assert resp.option("lma_address").fields["address"] == NLMA
    assert resp.lifetime == hack.lifetime

    pbu_tx, pbu = r.one("PBU")
    assert pbu_tx.packet.dst == NLMA  # where LMA_HO_Resp's LMA Address said
    assert pbu.flags == {"A", "H", "P"}
    assert set(keys(pbu)) >= {
        "mn_identifier",
        "home_network_prefix",
        "handoff_indicator",
        "access_technology_type",
        "timestamp",
    }
    assert pbu.option("handoff_indicator").fields["indicator"] == 5

    _, update = r.one("Update")
    assert update.option("lma_address").fields["address"] == NLMA
    assert update.option("previous_lma_address").fields["address"] == PLMA
    assert update.lifetime == 0

    _, ack = r.one("Update_Ack")
    assert ack.status == 0 and ack.sequence == update.sequence
    assert ack.option("lma_address").fields["address"] == NLMA

    _, pba = r.one("PBA")
    assert pba.status == 0 and pba.flags == {"P"} and pba.sequence == pbu.sequence
    assert pba.option("timestamp") is pbu.option("timestamp")  # copied
    assert pba.option("handoff_indicator").data == pbu.option("handoff_indicator").data
    assert pba.lifetime == min(pbu.lifetime, SC.nlma.max_lifetime)

    # One MN, one prefix, one link-layer ID all along.
    for _, signal in r.signals():
        assert signal.mn_identifier == MN_ID
        if signal.option("home_network_prefix") is not None:
            assert signal.prefixes == (PREFIX,)
        lli = signal.option("mn_link_layer_identifier")
        if lli is not None:
            assert lli.fields["identifier"] == SC.mobiles.link_layer_id


def test_timestamps_come_from_the_virtual_clock() -> None:
    r = run()
    epoch_us = Scheduler(SC.timing.epoch).epoch_us
    for tx, signal in r.signals():
        if signal.message in ("LMA_HO_Req", "LMA_HO_Init", "PBU"):
            stamp = signal.option("timestamp").fields["timestamp"]
            wall = epoch_us + tx.time
            assert stamp == Timestamp(wall // 1_000_000, (wall % 1_000_000) * 65536 // 1_000_000)


def test_frames_are_the_packets_encoded_with_valid_checksums() -> None:
    r = run(handovers=2)
    for tx in r.sent:
        assert tx.frame[12:14] == b"\x86\xdd"
        assert decode_packet(tx.frame[14:]) == tx.packet
        if isinstance(tx.packet.payload, Signal):
            msg = decode(tx.frame[54:], tx.frame[22:38], tx.frame[38:54])
            assert msg.checksum_ok and not msg.findings
            assert len(msg.encode()) % 8 == 0


def test_the_bmag_switches_its_policy_route_at_the_pba() -> None:
    seen: dict[str, str] = {}

    def watch(world: ReferenceNetwork, tx: Transmission) -> None:
        payload = tx.packet.payload
        if isinstance(payload, Signal) and MN_ID in world.bmag.policy_routes:
            seen[payload.message] = world.bmag.policy_routes[MN_ID].interface

    r = run(watch=watch)
    # Until the PBA arrives, everything from the MN goes to Tunnel0, towards the PLMA.
    assert {seen[m] for m in ("LMA_HO_Req", "LMA_HO_Resp", "PBU", "PBA")} == {"Tunnel0"}
    bmag = r.world.bmag
    assert [(t.name, t.local, t.remote, t.encapsulation) for t in bmag.tunnels.rows()] == [
        ("Tunnel0", BMAG, PLMA, "IPv6-in-IPv6"),
        ("Tunnel1", BMAG, NLMA, "IPv6-in-IPv6"),
    ]
    # The uplink of (k) went into Tunnel1 right after the PBA: the route had switched.
    uplink = [tx for tx in r.data() if tx.hop.sender is bmag and tx.packet.trace.step == "k"]
    assert uplink and all(tx.packet.dst == NLMA for tx in uplink)


def test_routing_state_after_a_handover() -> None:
    states: dict[str, object] = {}

    def watch(world: ReferenceNetwork, tx: Transmission) -> None:
        payload = tx.packet.payload
        if isinstance(payload, Signal) and payload.message == "PBA":
            plma, nlma = world.lmas["plma"], world.lmas["nlma"]
            states["plma_bce"] = plma.bindings[MN_ID].state
            states["plma_route"] = plma.prefix_routes.lookup(PREFIX.network_address)
            states["nlma_bce"] = dataclasses.replace(nlma.bindings[MN_ID])
            states["profile"] = dataclasses.replace(world.store.profiles[MN_ID])

    run(watch=watch)
    assert states["plma_bce"] is BindingState.HANDED_OVER
    assert states["plma_route"].remote == NLMA  # the PLMA-NLMA tunnel carries (j)
    nlma_bce = states["nlma_bce"]
    assert nlma_bce.state is BindingState.REGISTERED
    assert nlma_bce.proxy_coa == BMAG and nlma_bce.previous_lma == PLMA
    profile = states["profile"]
    assert (profile.lmaa, profile.plmaa) == (NLMA, PLMA)  # the extended profile of 4.1


def test_data_plane_goes_cn_plma_nlma_bmag_mn_and_back_through_nlma() -> None:
    r = run()
    hops = [(tx.packet.trace.step, tx.hop.sender.name, tx.hop.receiver.name) for tx in r.data()]
    first_down = hops[:4]
    assert first_down == [
        ("j", "cn", "plma"),
        ("j", "plma", "nlma"),
        ("j", "nlma", "bmag"),
        ("j", "bmag", "mn1"),
    ]
    up = [h for h in hops if h[0] == "k"][:3]
    assert up == [("k", "mn1", "bmag"), ("k", "bmag", "nlma"), ("k", "nlma", "cn")]
    for tx in r.data():
        packet = tx.packet
        inner = packet.innermost
        mn_side = inner.dst if packet.trace.step == "j" else inner.src
        assert mn_side in PREFIX
        if isinstance(packet.payload, Packet):  # tunnelled: the right tunnel ends
            assert (packet.src, packet.dst) in {(PLMA, NLMA), (NLMA, BMAG), (BMAG, NLMA)}
    # Routers decrement the inner Hop Limit.
    down = [
        tx.packet.innermost.hop_limit
        for tx in r.data()
        if tx.packet.trace.label.endswith(" 1") and tx.packet.trace.step == "j"
    ]
    assert down == [64, 63, 62, 61]


def test_a_return_to_the_anchor_has_no_lma_tunnel_leg() -> None:
    r = run(handovers=2)
    assert [res.outcome for res in r.results] == [Outcome.COMPLETED, Outcome.COMPLETED]
    second = [tx for tx in r.sent if tx.packet.trace.handover == 2]
    steps = [
        (s.message, tx.packet.src, tx.packet.dst)
        for tx in second
        if isinstance(s := tx.packet.payload, Signal)
    ]
    assert steps[0] == ("LMA_HO_Req", BMAG, NLMA)
    assert ("LMA_HO_Init", NLMA, PLMA) in steps and ("PBU", BMAG, PLMA) in steps
    assert ("Update", PLMA, STORE) in steps
    first_ping = [tx for tx in second if tx.packet.trace.label == "echo request 1"]
    down = [(tx.hop.sender.name, tx.hop.receiver.name) for tx in first_ping]
    assert down == [("cn", "plma"), ("plma", "bmag"), ("bmag", "mn1")]
    # The bMAG's Sequence Numbers keep increasing per peer, across messages and handovers.
    for lma in (PLMA, NLMA):
        sent = [
            s.sequence for tx, s in r.signals() if (tx.packet.src, tx.packet.dst) == (BMAG, lma)
        ]
        assert sent == list(range(1, len(sent) + 1))


def test_nlma_refuses_the_context() -> None:
    r = run(Variant.NLMA_REFUSES)
    assert [s.message for _, s in r.signals()] == [
        "LMA_HO_Req",
        "LMA_HO_Init",
        "LMA_HAck",
        "LMA_HO_Resp",
    ]
    _, hack = r.one("LMA_HAck")
    assert hack.status == HANDOVER_STATUS[SC.failures.nlma_refuses_status]
    assert "T" not in hack.flags
    _, resp = r.one("LMA_HO_Resp")
    assert resp.status == HANDOVER_STATUS["NLMA_REJECTED_HANDOVER"]
    assert resp.option("lma_address") is None
    assert r.results[0].outcome is Outcome.REFUSED and not r.data()


def assert_re_registered_with_the_plma(r: Run) -> Signal:
    """The failed (i), then the bMAG's PBU to the PLMA and its accepting PBA; the (i) PBA.

    Taking the MN back, the PLMA names itself in the MN's profile again by an Update
    of its own (outside the handover's steps).
    """
    signals = r.signals()
    assert [s.step for _, s in signals[:8]] == list("bcdefghi")
    after = signals[8:]
    assert [(s.message, tx.packet.dst) for tx, s in after] == [
        ("PBU", PLMA),
        ("Update", STORE),
        ("PBA", BMAG),
        ("Update_Ack", PLMA),
    ]
    (pbu_tx, pbu), (update_tx, update), (pba_tx, pba), (_, ack) = after
    assert update_tx.packet.src == PLMA and update_tx.packet.trace.step == ""
    assert update.option("lma_address").fields["address"] == PLMA
    assert update.option("previous_lma_address").fields["address"] == NLMA
    # Either way the profile names the PLMA afterwards (refused: it never changed).
    assert ack.sequence == update.sequence
    assert ack.option("lma_address").fields["address"] == PLMA
    assert (pbu_tx.packet.src, pbu_tx.packet.dst) == (BMAG, PLMA)
    assert pbu.option("handoff_indicator") == handoff_indicator_option("NOT_CHANGED")
    assert (pba_tx.packet.src, pba_tx.packet.dst, pba.sequence) == (PLMA, BMAG, pbu.sequence)
    assert pba.accepted and pba.lifetime > 0
    assert pbu_tx.packet.trace.label == "re-registration" and pbu_tx.packet.trace.step == ""
    return signals[7][1]


def test_pba_error() -> None:
    r = run(Variant.PBA_ERROR)
    pba = assert_re_registered_with_the_plma(r)
    assert pba.status == BA_STATUS[SC.failures.pba_error_status] and pba.lifetime == 0
    assert r.results[0].outcome is Outcome.REJECTED and not r.data()


def test_policy_update_fails() -> None:
    r = run(Variant.POLICY_UPDATE_FAILS)
    _, ack = r.signals("Update_Ack")[0]  # (h); the second answers the PLMA's own Update
    assert ack.status == HANDOVER_STATUS["POLICY_UPDATE_FAILED"]
    assert ack.option("lma_address").fields["address"] == PLMA  # the profile is unchanged
    pba = assert_re_registered_with_the_plma(r)
    assert pba.status == BA_STATUS["REASON_UNSPECIFIED"]
    assert r.results[0].outcome is Outcome.REJECTED


def test_an_unanswered_pbu_falls_back_to_the_plma() -> None:
    """The NLMA accepted the context at (d), then never answers (f): the PLMA takes the MN back."""

    def nlma_silent_after_d(packet: Packet, hop: Hop) -> bool:
        return (
            isinstance(packet.payload, Signal)
            and packet.payload.message == "PBU"
            and (packet.dst == NLMA)
        )

    r = run(loss=nlma_silent_after_d)
    steps = [(s.message, tx.packet.dst) for tx, s in r.signals()]
    assert steps[:4] == [
        ("LMA_HO_Req", PLMA),
        ("LMA_HO_Init", NLMA),
        ("LMA_HAck", PLMA),
        ("LMA_HO_Resp", BMAG),
    ]
    # The four copies of (f) are lost on the way (a capture shows none); then, once the
    # last one timed out, the re-registration with the PLMA.
    assert steps[4:] == [("PBU", PLMA), ("Update", STORE), ("PBA", BMAG), ("Update_Ack", PLMA)]
    (resp_tx, _), (pbu_tx, pbu), _, (_, pba), _ = r.signals()[3:]
    assert pbu_tx.time - resp_tx.time >= GIVE_UP_AFTER * 1_000_000
    assert pbu.option("handoff_indicator") == handoff_indicator_option("NOT_CHANGED")
    assert pbu_tx.packet.trace.label == "re-registration"
    assert pba.accepted and pba.lifetime > 0
    assert r.results[0].outcome is Outcome.ABANDONED and r.results[0].step == "f"


@pytest.mark.parametrize(
    "variant", [Variant.PBA_ERROR, Variant.POLICY_UPDATE_FAILS, Variant.NLMA_REFUSES]
)
def test_after_a_failure_the_bmag_keeps_routing_through_the_plma(variant: Variant) -> None:
    after: list[tuple[str, bool, IPv6Address | None]] = []

    def look(world: ReferenceNetwork) -> None:
        route = world.bmag.policy_routes.get(MN_ID)
        if route is not None:  # after the last handover the MN has left
            # Where the PLMA sends the MN's downlink: its tunnel to the bMAG again.
            downlink = world.lmas["plma"].prefix_routes.lookup(MN_ADDRESS)
            after.append(
                (
                    route.interface,
                    MN_ID in world.lmas["nlma"].bindings,
                    None if downlink is None else downlink.remote,
                )
            )

    def watch(world: ReferenceNetwork, tx: Transmission) -> None:
        payload = tx.packet.payload
        if isinstance(payload, Signal) and not payload.accepted and payload.is_response:
            # Look once the failing answer has arrived (links take a few ms).
            world.scheduler.after(50_000, look, world)

    run(variant, watch=watch, handovers=2)  # a second handover keeps the MN in the run
    # The MN stays with the PLMA, which routes its prefix to the bMAG (after the
    # re-registration, for the failures after (d)); the NLMA holds no binding for it.
    assert after and set(after) == {("Tunnel0", False, BMAG)}


STEP_MESSAGE = {
    "b": "LMA_HO_Req",
    "c": "LMA_HO_Init",
    "d": "LMA_HAck",
    "e": "LMA_HO_Resp",
    "f": "PBU",
    "g": "Update",
    "h": "Update_Ack",
    "i": "PBA",
}


REQUEST_OF = {
    "LMA_HAck": "LMA_HO_Init",
    "LMA_HO_Resp": "LMA_HO_Req",
    "Update_Ack": "Update",
    "PBA": "PBU",
}


@pytest.mark.parametrize("step", list(STEP_MESSAGE))
def test_a_lost_message_is_retransmitted_after_the_timeout(step: str) -> None:
    scenario = dataclasses.replace(SC, failures=dataclasses.replace(SC.failures, lost_step=step))
    r = run(Variant.LOST_MESSAGE, scenario=scenario)
    clean = run()
    assert r.results[0].outcome is Outcome.COMPLETED
    assert r.world.network.lost == 1
    # The lost copy is in no capture. What reaches the wire instead follows the timeout
    # of the request (the lost one, or the one the lost response answered).
    message = STEP_MESSAGE[step]
    request = REQUEST_OF.get(message, message)
    timer_started = clean.signals(request)[0][0].time
    copies = r.signals(message)
    assert copies and all(tx.time >= timer_started + 1_000_000 for tx, _ in copies)
    if step == "f":
        # A retransmitted PBU has a new Sequence Number and a fresh Timestamp.
        (tx, pbu), (_, first) = copies[0], clean.one("PBU")
        assert pbu.sequence == first.sequence + 1
        assert (
            pbu.option("timestamp").fields["timestamp"]
            > first.option("timestamp").fields["timestamp"]
        )
        assert tx.packet.trace.attempt == 1
    if step != "i" and step != "f":
        # The same request again, or the same answer again: equal to what was lost.
        assert copies[0][1] == clean.one(message)[1]
    # Every request seen more than once kept its Sequence Number (PBUs excepted).
    for msg in ("LMA_HO_Req", "LMA_HO_Init", "Update"):
        seqs = {s.sequence for _, s in r.signals(msg)}
        assert len(seqs) == 1
    assert [s.step for _, s in r.signals()][-1] == "i"


def test_a_request_is_abandoned_after_three_retransmissions() -> None:
    def lose_all_requests(packet: Packet, hop: Hop) -> bool:
        return isinstance(packet.payload, Signal) and packet.payload.message == "LMA_HO_Req"

    scheduler_start = SC.timing.first_report
    r = run(loss=lose_all_requests)
    assert r.results[0].outcome is Outcome.ABANDONED and r.results[0].step == "b"
    assert r.world.network.lost == 4
    assert not r.sent
    assert r.world.scheduler.now >= (scheduler_start + 15) * 1_000_000


def test_a_duplicate_request_is_answered_with_the_same_response() -> None:
    # Losing (d) makes the PLMA send LMA_HO_Init again; the NLMA must not act twice.
    scenario = dataclasses.replace(SC, failures=dataclasses.replace(SC.failures, lost_step="d"))
    r = run(Variant.LOST_MESSAGE, scenario=scenario)
    inits = r.signals("LMA_HO_Init")
    assert len(inits) == 2 and inits[0][1] is inits[1][1]
    _, hack = r.one("LMA_HAck")
    assert hack.sequence == inits[0][1].sequence
    assert r.one("LMA_HAck")[0].packet.trace.attempt == 1
    assert r.results[0].outcome is Outcome.COMPLETED


def test_many_mobiles_interleave_and_are_forgotten() -> None:
    r = run(mobiles=12, handovers=2)
    assert len(r.results) == 24 and all(res.completed for res in r.results)
    firsts = {}
    for tx, s in r.signals("LMA_HO_Req"):
        firsts.setdefault(s.mn_identifier, tx.time)
    assert len(firsts) == 12
    # Interleaved: some MN starts before the previous one's handover is over.
    assert r.campaign.peak_in_flight > 1
    world = r.world
    assert not world.bmag.mobiles and not world.store.profiles and not world.cn.flows
    for lma in world.lmas.values():
        assert not lma.bindings and not len(lma.prefix_routes) and not len(lma.answers)
    assert not world.bmag.policy_routes and not world.bmag.binding_update_list
    assert set(world.network.nodes) == {"cn", "plma", "nlma", "bmag", "store"}
    assert world.scheduler.pending == 0
