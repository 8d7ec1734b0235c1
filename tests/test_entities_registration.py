"""RFC 5213 initial registration: an LMA opening a binding from a PBU, the bMAG sending one."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

import pytest

from lmaho_entities import (
    INITIAL_TIMEOUT_US,
    ApReport,
    BoundaryMag,
    Lma,
    Outcome,
    Packet,
    RegistrationResult,
    Scheduler,
    Signal,
)
from lmaho_entities.context import MobileContext, handoff_indicator_option, timestamp_option
from lmaho_entities.state import BindingState
from lmaho_wire import Timestamp
from lmaho_wire.schema import BA_STATUS
from support.entities import AP_NLMA, CTX, MN_MAC, NLMA, PLMA, PREFIX, Recorder, make_lma
from support.entities import BMAG as A

SECOND = 1_000_000  # the scheduler counts microseconds
OTHER_MAG = IPv6Address("2001:db8:b::2")
MN_ADDRESS = IPv6Address("2001:db8:100::1")
OTHER_MN = MobileContext.build(
    "mn2@x", (IPv6Network("2001:db8:101::/64"),), access_technology="IEEE_802_11"
)


def pbu(
    seq: int = 7,
    *,
    lifetime: int = 400,
    indicator: str = "NEW_INTERFACE",
    drop: str | None = None,
    context: MobileContext = CTX,
) -> Signal:
    opts = [
        context.mn_id,
        *context.prefix_options,
        handoff_indicator_option(indicator),
        context.access_technology,
        timestamp_option(Timestamp(1, 0)),
        context.link_layer,
    ]
    return Signal(
        "PBU",
        seq,
        tuple(o for o in opts if o is not None and o.key != drop),
        frozenset({"A", "H", "P"}),
        lifetime,
    )


def send(lma: Lma, net: Recorder, signal: Signal, src: IPv6Address = A) -> Signal:
    """Deliver ``signal`` from ``src`` to the LMA; its one answer."""
    net.sent.clear()
    lma.receive(Packet(src, lma.address, signal), "bmag-plma")
    assert len(net.sent) == 1
    answer = net.sent[0].payload
    assert isinstance(answer, Signal) and answer.message == "PBA"
    assert net.sent[0].dst == src and answer.sequence == signal.sequence
    return answer


def test_lma_takes_an_initial_pbu_as_a_new_binding() -> None:
    lma, net = make_lma()
    pba = send(lma, net, pbu(lifetime=7200))
    assert pba.status == BA_STATUS["ACCEPTED"] and pba.lifetime == 3600  # capped by max_lifetime
    assert "P" in pba.flags and pba.option("timestamp") is not None
    bce = lma.bindings["mn1@x"]
    assert (bce.state, bce.proxy_coa, bce.lifetime) == (BindingState.REGISTERED, A, 3600)
    assert bce.context.prefixes == (PREFIX,) and bce.context.link_layer is not None
    assert [(t.name, t.remote) for t in lma.tunnels.rows()] == [("Tunnel0", A)]
    assert lma.prefix_routes.routes == {PREFIX: lma.tunnels.to(A)}


def test_the_registered_mn_can_be_handed_over() -> None:
    lma, net = make_lma()
    send(lma, net, pbu())
    net.sent.clear()
    req = Signal(
        "LMA_HO_Req",
        1,
        (CTX.mn_id, *CTX.prefix_options, AP_NLMA, timestamp_option(Timestamp(1, 0))),
        lifetime=400,
    )
    lma.receive(Packet(A, PLMA, req), "bmag-plma")
    assert [p.payload.message for p in net.sent] == ["LMA_HO_Init"]


@pytest.mark.parametrize(
    ("drop", "status"),
    [
        ("home_network_prefix", "MISSING_HOME_NETWORK_PREFIX_OPTION"),
        ("handoff_indicator", "MISSING_HANDOFF_INDICATOR_OPTION"),
        ("access_technology_type", "MISSING_ACCESS_TECH_TYPE_OPTION"),
        ("timestamp", "TIMESTAMP_MISMATCH"),
    ],
)
def test_an_initial_pbu_without_a_mandatory_option_is_refused(drop: str, status: str) -> None:
    lma, net = make_lma()
    pba = send(lma, net, pbu(drop=drop))
    assert pba.status == BA_STATUS[status] and pba.lifetime == 0
    assert not lma.bindings and not lma.prefix_routes.routes and not lma.tunnels.rows()


def test_a_full_binding_cache_refuses_an_initial_pbu() -> None:
    lma, net = make_lma(max_mobiles=1)
    assert send(lma, net, pbu(context=OTHER_MN)).status == BA_STATUS["ACCEPTED"]
    pba = send(lma, net, pbu(8))
    assert pba.status == BA_STATUS["INSUFFICIENT_RESOURCES"]
    assert list(lma.bindings) == ["mn2@x"] and lma.refused_full == 1


def test_a_handover_pbu_to_an_lma_without_the_context_is_still_not_its_mn() -> None:
    lma, net = make_lma()
    pba = send(lma, net, pbu(indicator="NOT_CHANGED"))
    assert pba.status == BA_STATUS["NOT_LMA_FOR_THIS_MOBILE_NODE"]
    assert not lma.bindings


def test_an_initial_pbu_asking_for_a_prefix_is_refused() -> None:
    lma, net = make_lma()
    unspecified = MobileContext.build(
        "mn1@x", (IPv6Network("::/0"),), access_technology="IEEE_802_11"
    )
    pba = send(lma, net, pbu(context=unspecified))
    assert pba.status == BA_STATUS["NOT_AUTHORIZED_FOR_HOME_NETWORK_PREFIX"]
    assert not lma.bindings


def test_refresh_updates_the_lifetime_and_another_mag_is_refused() -> None:
    lma, net = make_lma()
    send(lma, net, pbu(7, lifetime=400))
    lma.scheduler.at(100_000_000, lambda: None)
    lma.scheduler.run()
    pba = send(lma, net, pbu(8, lifetime=1000, indicator="NOT_CHANGED"))
    assert pba.status == BA_STATUS["ACCEPTED"] and pba.lifetime == 1000
    bce = lma.bindings["mn1@x"]
    assert (bce.lifetime, bce.registered_at, bce.last_pbu_sequence) == (1000, 100_000_000, 8)
    # A retransmitted copy is answered again, not acted on twice.
    assert send(lma, net, pbu(8, lifetime=1000)) == pba
    pba = send(lma, net, pbu(9), src=OTHER_MAG)
    assert pba.status == BA_STATUS["NOT_LMA_FOR_THIS_MOBILE_NODE"]
    assert lma.bindings["mn1@x"].proxy_coa == A


def test_lifetime_zero_deregisters() -> None:
    lma, net = make_lma()
    send(lma, net, pbu(7))
    pba = send(lma, net, pbu(8, lifetime=0, indicator="NOT_CHANGED"))
    assert pba.status == BA_STATUS["ACCEPTED"] and pba.lifetime == 0
    assert not lma.bindings and not lma.prefix_routes.routes
    # Again (its PBA lost, say): nothing left to remove, still accepted.
    assert send(lma, net, pbu(9, lifetime=0)).status == BA_STATUS["ACCEPTED"]
    assert not lma.bindings


def test_plma_takes_back_a_handed_over_mn_its_mag_re_registers() -> None:
    """This design's recovery from a failed (i) (docs/wire-format.md 8)."""
    lma, net = make_lma()
    send(lma, net, pbu(7))
    req = Signal(
        "LMA_HO_Req",
        1,
        (CTX.mn_id, *CTX.prefix_options, AP_NLMA, timestamp_option(Timestamp(1, 0))),
        lifetime=400,
    )
    lma.receive(Packet(A, PLMA, req), "bmag-plma")
    hack = Signal("LMA_HAck", 1, (CTX.mn_id, *CTX.prefix_options), frozenset({"T"}), 400, 0)
    lma.receive(Packet(NLMA, PLMA, hack), "plma-nlma")
    bce = lma.bindings["mn1@x"]
    assert bce.state is BindingState.HANDED_OVER
    assert lma.prefix_routes.lookup(MN_ADDRESS).remote == NLMA
    # Only the MAG of the binding may take it back.
    pba = send(lma, net, pbu(8, indicator="NOT_CHANGED"), src=OTHER_MAG)
    assert pba.status == BA_STATUS["NOT_LMA_FOR_THIS_MOBILE_NODE"]
    assert bce.state is BindingState.HANDED_OVER
    net.sent.clear()
    lma.receive(Packet(A, lma.address, pbu(9, indicator="NOT_CHANGED")), "bmag-plma")
    update, pba = (p.payload for p in net.sent)
    assert isinstance(update, Signal) and isinstance(pba, Signal)
    # It names itself in the MN's profile again, which the NLMA may have changed at (g).
    assert (update.message, net.sent[0].dst) == ("Update", lma.store)
    assert update.option("lma_address").fields["address"] == PLMA
    assert update.option("previous_lma_address").fields["address"] == NLMA
    assert pba.message == "PBA" and pba.status == BA_STATUS["ACCEPTED"] and pba.lifetime == 400
    assert (bce.state, bce.next_lma) == (BindingState.REGISTERED, None)
    assert lma.prefix_routes.lookup(MN_ADDRESS).remote == A


# --- the bMAG's side --------------------------------------------------------------------


class Wire:
    """A network delivering each packet to the node owning its destination, after 1 ms."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.nodes: dict[IPv6Address, BoundaryMag | Lma] = {}
        self.sent: list[Packet] = []
        self.lose: set[str] = set()

    def send(self, sender: str, next_hop: IPv6Address, packet: Packet) -> None:
        self.sent.append(packet)
        node = self.nodes.get(packet.dst)
        if node is not None and sender not in self.lose:
            self.scheduler.after(1000, node.receive, packet, sender)

    def report(self, *_: object) -> None:
        pass


def bmag_and_plma(**lma_settings: object) -> tuple[BoundaryMag, Lma, Wire]:
    scheduler = Scheduler()
    wire = Wire(scheduler)
    bmag = BoundaryMag(
        "bmag", A, scheduler, wire, link_local=IPv6Address("fe80::1"), binding_lifetime=3600
    )
    lma = Lma(
        "plma",
        PLMA,
        scheduler,
        wire,
        store=IPv6Address("2001:db8:f::1"),
        upstream=IPv6Address("2001:db8:c::1"),
        access_points={},
        max_lifetime=1200,
        **lma_settings,  # type: ignore[arg-type]
    )
    wire.nodes = {A: bmag, PLMA: lma}
    return bmag, lma, wire


def test_bmag_registers_an_mn_by_pbu_and_routes_it_after_the_pba() -> None:
    bmag, lma, wire = bmag_and_plma()
    results: list[RegistrationResult] = []
    bmag.registration_observers.append(results.append)
    bmag.register(CTX, MN_MAC, MN_ADDRESS, PLMA)
    assert "mn1@x" not in bmag.policy_routes and bmag.mobiles["mn1@x"].registration is not None
    bmag.scheduler.run(until=SECOND)
    sent = wire.sent[0].payload
    assert isinstance(sent, Signal) and sent.message == "PBU"
    assert sent.option("handoff_indicator") == handoff_indicator_option("NEW_INTERFACE")
    assert results == [RegistrationResult("mn1@x", PLMA, Outcome.COMPLETED, 0, 1200)]
    assert bmag.policy_routes["mn1@x"].interface == "Tunnel0"
    assert bmag.binding_update_list["mn1@x"].lifetime == 1200
    assert bmag.mobiles["mn1@x"].registration is None
    assert lma.bindings["mn1@x"].state is BindingState.REGISTERED


def test_bmag_retransmits_an_unanswered_pbu_then_gives_up() -> None:
    bmag, _, wire = bmag_and_plma()
    wire.lose.add("bmag")
    results: list[RegistrationResult] = []
    bmag.registration_observers.append(results.append)
    bmag.register(CTX, MN_MAC, MN_ADDRESS, PLMA)
    bmag.scheduler.run()
    copies = [p.payload for p in wire.sent]
    assert [c.sequence for c in copies if isinstance(c, Signal)] == [1, 2, 3, 4]
    assert bmag.scheduler.now == 15 * INITIAL_TIMEOUT_US
    assert [r.outcome for r in results] == [Outcome.ABANDONED]
    assert "mn1@x" not in bmag.policy_routes and "mn1@x" not in bmag.binding_update_list


def test_bmag_refused_registration_leaves_the_mn_unrouted() -> None:
    bmag, lma, wire = bmag_and_plma(max_mobiles=1)
    lma.register(OTHER_MN, OTHER_MAG, 400, 0)
    results: list[RegistrationResult] = []
    bmag.registration_observers.append(results.append)
    bmag.register(CTX, MN_MAC, MN_ADDRESS, PLMA)
    bmag.scheduler.run()
    assert [(r.outcome, r.status) for r in results] == [
        (Outcome.REJECTED, BA_STATUS["INSUFFICIENT_RESOURCES"])
    ]
    assert "mn1@x" not in bmag.policy_routes
    # Without a binding there is nothing to hand over: step (a) is ignored.
    before = len(wire.sent)
    bmag.on_report(ApReport("mn1@x", AP_NLMA, 1), "access")
    assert len(wire.sent) == before


def test_bmag_refreshes_the_binding_at_four_fifths_of_its_lifetime() -> None:
    bmag, lma, wire = bmag_and_plma()  # the PLMA grants 1,200 s of the 3,600 asked for
    results: list[RegistrationResult] = []
    bmag.registration_observers.append(results.append)
    bmag.register(CTX, MN_MAC, MN_ADDRESS, PLMA)
    bmag.scheduler.run(until=2500 * SECOND)
    pbus = [(p.payload, p.dst) for p in wire.sent if p.payload.message == "PBU"]
    # Bound at 2 ms (PBU, PBA over the 1 ms wire): refreshed 960 s after each binding.
    assert [p.sequence for p, _ in pbus] == [1, 2, 3]
    assert all(dst == PLMA and p.lifetime == 3600 for p, dst in pbus)
    refresh = pbus[1][0]
    # RFC 5213 5.4.1: a refresh from the same interface is Handoff Indicator 5.
    assert refresh.option("handoff_indicator") == handoff_indicator_option("NOT_CHANGED")
    # Each exchange takes 2 ms, so the third binding starts at 1,920 s + 6 ms.
    assert bmag.binding_update_list["mn1@x"].registered_at == 1920 * SECOND + 6000
    assert lma.bindings["mn1@x"].registered_at == 1920 * SECOND + 5000  # the PBU's arrival
    assert [r.outcome for r in results] == [Outcome.COMPLETED] * 3
    assert bmag.policy_routes["mn1@x"].interface == "Tunnel0"


def test_bmag_refresh_waits_for_a_handover_under_way() -> None:
    bmag, _, wire = bmag_and_plma()
    bmag.register(CTX, MN_MAC, MN_ADDRESS, PLMA)
    bmag.scheduler.run(until=SECOND)
    wire.lose.add("bmag")  # the handover's requests go unanswered for its 15 s
    bmag.scheduler.run(until=959 * SECOND)
    bmag.on_report(ApReport("mn1@x", AP_NLMA, 1), "access")
    bmag.scheduler.run(until=975 * SECOND)
    kinds = [p.payload.message for p in wire.sent]
    # The refresh due at 960 s waits until the abandoned handover is over at 974 s.
    assert kinds == ["PBU", "PBA", "LMA_HO_Req", "LMA_HO_Req", "LMA_HO_Req", "LMA_HO_Req", "PBU"]


def test_bmag_deregisters_a_departed_mn_and_forgets_it_at_the_pba() -> None:
    bmag, lma, wire = bmag_and_plma()
    results: list[RegistrationResult] = []
    bmag.registration_observers.append(results.append)
    bmag.register(CTX, MN_MAC, MN_ADDRESS, PLMA)
    bmag.scheduler.run(until=SECOND)
    assert bmag.deregister("mn1@x")
    assert "mn1@x" not in bmag.policy_routes  # its uplink stops at once
    bmag.scheduler.run()  # nothing is left to refresh: the run ends
    deregistration = wire.sent[-2].payload
    assert deregistration.message == "PBU" and deregistration.lifetime == 0
    assert results[-1] == RegistrationResult("mn1@x", PLMA, Outcome.COMPLETED, 0, 0)
    assert "mn1@x" not in bmag.mobiles and "mn1@x" not in bmag.binding_update_list
    assert "mn1@x" not in lma.bindings
    assert not bmag.deregister("mn1@x")


def test_bmag_forgets_a_departed_mn_whose_lma_never_answers() -> None:
    bmag, _, wire = bmag_and_plma()
    bmag.register(CTX, MN_MAC, MN_ADDRESS, PLMA)
    bmag.scheduler.run(until=SECOND)
    wire.lose.add("bmag")
    bmag.deregister("mn1@x")
    bmag.scheduler.run()
    assert [p.payload.lifetime for p in wire.sent[2:]] == [0, 0, 0, 0]
    assert "mn1@x" not in bmag.mobiles


def test_bmag_runs_at_most_max_handovers_and_starts_the_waiting_in_order() -> None:
    bmag, _, wire = bmag_and_plma()
    bmag.max_handovers = 2
    contexts = [
        MobileContext.build(f"mn{n}@x", (IPv6Network(f"2001:db8:10{n}::/64"),)) for n in range(1, 5)
    ]
    for n, context in enumerate(contexts, 1):
        bmag.attach(
            context,
            bytes([2, 0, 0, 1, 0, n]),
            IPv6Address(f"2001:db8:10{n}::1"),
            PLMA,
            sequence=0,
            lifetime=3600,
            registered_at=0,
        )
    wire.lose.add("bmag")  # no request is answered: each handover lasts its 15 s
    for context in contexts:
        bmag.on_report(ApReport(context.identifier, AP_NLMA, 1), "access")
    bmag.on_report(ApReport("mn3@x", AP_NLMA, 1), "access")  # waiting already: ignored
    bmag.forget("mn4@x")  # leaves while it waits: never started

    def started() -> list[str]:
        """The MNs whose handover began, in order (a retransmission keeps its number)."""
        requests = [p.payload for p in wire.sent if p.payload.message == "LMA_HO_Req"]
        return list(dict.fromkeys((r.mn_identifier, r.sequence) for r in requests))

    assert [mn for mn, _ in started()] == ["mn1@x", "mn2@x"]
    assert bmag.handovers_running == {"mn1@x", "mn2@x"}
    bmag.scheduler.run(until=16 * SECOND)  # both abandoned after 15 s: mn3's turn
    assert [mn for mn, _ in started()] == ["mn1@x", "mn2@x", "mn3@x"]
    assert bmag.handovers_running == {"mn3@x"}
    bmag.scheduler.run(until=40 * SECOND)
    assert bmag.handovers_running == set() and len(started()) == 3  # mn4 never started
