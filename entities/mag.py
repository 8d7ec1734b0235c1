"""The boundary MAG (bMAG): the MAG with connections to more than one LMA.

It triggers the LMA handover when an MN reports a new AP (a) by sending
LMA_HO_Req to the LMA serving the MN (b); on a successful LMA_HO_Resp (e) it
registers the MN with the NLMA named there (f), and on a successful PBA (i)
switches the MN's policy-based route from the tunnel towards the PLMA to the
tunnel towards the NLMA (draft Appendix A). Uplink data from an MN goes
wherever that route points (k); downlink data from any of its tunnels is
decapsulated and delivered on the access link (j).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from lmaho_procedure import INITIAL_TIMEOUT, REFRESH_AT
from lmaho_wire import Option

from .clock import Scheduler, Timer, microseconds
from .context import (
    MobileContext,
    address_of,
    handoff_indicator_option,
    timestamp_option,
)
from .dataplane import NO_DATA_PLANE, DataPlane
from .network import ApReport, Network, Node, Retransmission, SequenceCounters
from .packets import (
    IPv6Address,
    Packet,
    Signal,
    Trace,
    encapsulate,
    options_tuple,
    retried,
    traced,
)
from .state import (
    BindingUpdateListEntry,
    PolicyRoute,
    PrefixTable,
    TunnelInterface,
    TunnelTable,
)

PBU_FLAGS = frozenset({"A", "H", "P"})


class Outcome(enum.Enum):
    """How a handover ended, as the bMAG sees it."""

    COMPLETED = "completed"
    #: LMA_HO_Resp with an error Status (step (e)).
    REFUSED = "refused"
    #: PBA with an error Status (step (i)).
    REJECTED = "rejected"
    #: No answer after every retransmission (docs/wire-format.md 9).
    ABANDONED = "abandoned"


@dataclass(frozen=True, slots=True)
class HandoverResult:
    """The end of one handover of one MN, reported to the bMAG's observers."""

    mn_id: str
    handover: int
    outcome: Outcome
    previous_lma: IPv6Address
    new_lma: IPv6Address | None
    status: int | None
    step: str

    @property
    def completed(self) -> bool:
        return self.outcome is Outcome.COMPLETED


@dataclass(slots=True)
class MagHandover:
    """A handover the bMAG is running for one MN."""

    number: int
    request: Signal
    trace: Trace | None
    previous_lma: IPv6Address
    new_lma: IPv6Address | None = None
    pbu_sequences: list[int] = field(default_factory=list)
    retransmission: Retransmission | None = None


@dataclass(frozen=True, slots=True)
class RegistrationResult:
    """The end of a PBU/PBA exchange the bMAG made outside a handover (RFC 5213 6.9)."""

    mn_id: str
    lma: IPv6Address
    outcome: Outcome
    status: int | None
    lifetime: int

    @property
    def completed(self) -> bool:
        return self.outcome is Outcome.COMPLETED


@dataclass(slots=True)
class Registration:
    """A PBU outside a handover's step (f), until its PBA.

    The LMA, the lifetime asked for (0: a de-registration) and its copies' numbers.
    """

    lma: IPv6Address
    lifetime: int
    sequences: list[int] = field(default_factory=list)
    retransmission: Retransmission | None = None


@dataclass(slots=True)
class AttachedMobile:
    """An MN on the bMAG's access link: its context, where it is, who serves it.

    ``serving_lma`` is the LMA it is registered with, or (while ``registration``
    runs for the first time) the one it is being registered with. ``refresh``
    is the timer of its binding's next refresh; ``waiting`` its step (a) report
    while the bMAG runs as many handovers as it may at once.
    """

    context: MobileContext
    mac: bytes
    address: IPv6Address
    serving_lma: IPv6Address
    handover: MagHandover | None = None
    registration: Registration | None = None
    refresh: Timer | None = None
    waiting: ApReport | None = None


class BoundaryMag(Node):
    """The bMAG; ``address`` is its Proxy-CoA, ``link_local`` its address on the access link.

    Tables (Appendix A): ``tunnels`` is the tunnel interface table (Tunnel0
    towards the first LMA it needed, Tunnel1 towards the next, ...),
    ``policy_routes`` the policy-based route of each MN, and
    ``binding_update_list`` the RFC 5213 binding update list.
    ``binding_lifetime`` is the lifetime (seconds) it asks for in
    LMA_HO_Req and PBU. ``data_plane`` is told of every tunnel and policy
    route (a live runtime makes them real); ``max_mobiles``, when set, is
    the most MNs :meth:`attach` takes. ``max_handovers``, when set, is the
    most handovers it runs at once: further step (a) reports wait their turn
    in order, so that a burst of them does not outlast the retransmission
    timers and end in abandoned handovers.
    """

    def __init__(
        self,
        name: str,
        address: IPv6Address,
        scheduler: Scheduler,
        network: Network,
        *,
        link_local: IPv6Address,
        binding_lifetime: int,
        data_plane: DataPlane = NO_DATA_PLANE,
        max_mobiles: int | None = None,
        max_handovers: int | None = None,
    ) -> None:
        super().__init__(name, address, scheduler, network)
        self.data_plane = data_plane
        self.max_mobiles = max_mobiles
        self.max_handovers = max_handovers
        self.handovers_running: set[str] = set()
        self._waiting: deque[AttachedMobile] = deque()
        self.link_local = link_local
        self.binding_lifetime = binding_lifetime - binding_lifetime % 4
        self.mobiles: dict[str, AttachedMobile] = {}
        self.tunnels = TunnelTable(address, data_plane.add_tunnel)
        self.policy_routes: dict[str, PolicyRoute] = {}
        self.binding_update_list: dict[str, BindingUpdateListEntry] = {}
        self.sequences = SequenceCounters()
        self.observers: list[Callable[[HandoverResult], None]] = []
        self.registration_observers: list[Callable[[RegistrationResult], None]] = []
        self._by_prefix: PrefixTable[AttachedMobile] = PrefixTable()
        self._tunnel_remotes: set[IPv6Address] = set()
        self._not_changed = handoff_indicator_option("NOT_CHANGED")
        self._new_interface = handoff_indicator_option("NEW_INTERFACE")

    # --- MNs arriving and leaving ----------------------------------------------------

    def attach(
        self,
        context: MobileContext,
        mac: bytes,
        address: IPv6Address,
        serving_lma: IPv6Address,
        *,
        sequence: int,
        lifetime: int,
        registered_at: int,
    ) -> AttachedMobile:
        """An MN already registered with ``serving_lma`` through this bMAG (before the run).

        ValueError when ``max_mobiles`` MNs are attached already.
        """
        mobile = self._add_mobile(context, mac, address, serving_lma)
        self.binding_update_list[context.identifier] = BindingUpdateListEntry(
            serving_lma, sequence, lifetime, registered_at
        )
        self._point_route(mobile, self._tunnel(serving_lma))
        self._schedule_refresh(mobile, registered_at, lifetime)
        return mobile

    def register(
        self, context: MobileContext, mac: bytes, address: IPv6Address, lma: IPv6Address
    ) -> AttachedMobile:
        """An MN attaches: register it with ``lma`` by PBU/PBA (RFC 5213 6.9.1.1).

        Its policy route and binding update list entry follow the accepting
        PBA; until then its uplink goes nowhere and a step (a) for it is
        ignored. ``registration_observers`` learn the outcome. ValueError
        when ``max_mobiles`` MNs are attached already.
        """
        mobile = self._add_mobile(context, mac, address, lma)
        self._update_binding(mobile, lma, self._new_interface, None, self.binding_lifetime)
        return mobile

    def deregister(self, mn_id: str) -> bool:
        """The MN left the access link: de-register it by PBU with lifetime 0 (RFC 5213 6.9.1.2).

        Its uplink stops at once; the bMAG forgets it at the PBA, or when the
        PBU's retransmissions are spent (``registration_observers`` learn which).
        False when the MN is unknown or has no binding to end.
        """
        mobile = self.mobiles.get(mn_id)
        entry = self.binding_update_list.get(mn_id)
        if mobile is None or entry is None:
            return False
        self._stop_exchanges(mobile)
        self._drop_policy_route(mn_id)
        self._update_binding(mobile, entry.lma, self._not_changed, None, 0)
        return True

    def _add_mobile(
        self, context: MobileContext, mac: bytes, address: IPv6Address, lma: IPv6Address
    ) -> AttachedMobile:
        if (
            self.max_mobiles is not None
            and context.identifier not in self.mobiles
            and len(self.mobiles) >= self.max_mobiles
        ):
            raise ValueError(f"{self.name}: {self.max_mobiles} MNs attached already")
        mobile = AttachedMobile(context, mac, address, lma)
        self.mobiles[context.identifier] = mobile
        for prefix in context.prefixes:
            self._by_prefix.add(prefix, mobile)
        return mobile

    def forget(self, mn_id: str) -> None:
        mobile = self.mobiles.pop(mn_id, None)
        if mobile is None:
            return
        self._stop_exchanges(mobile)
        for prefix in mobile.context.prefixes:
            self._by_prefix.remove(prefix)
        self._drop_policy_route(mn_id)
        self.binding_update_list.pop(mn_id, None)

    def _drop_policy_route(self, mn_id: str) -> None:
        """The MN's uplink goes nowhere from now on."""
        route = self.policy_routes.pop(mn_id, None)
        if route is not None:
            self.data_plane.remove_policy_route(mn_id, route)

    def _stop_exchanges(self, mobile: AttachedMobile) -> None:
        """No more copies of the MN's pending requests, no refresh, no handover waiting."""
        for pending in (mobile.handover, mobile.registration):
            if pending is not None and pending.retransmission is not None:
                pending.retransmission.stop()
        if mobile.refresh is not None:
            mobile.refresh.cancel()
            mobile.refresh = None
        mobile.waiting = None  # skipped when its turn comes
        if mobile.context.identifier in self.handovers_running:
            self.handovers_running.discard(mobile.context.identifier)
            self._next_waiting()

    def _schedule_refresh(self, mobile: AttachedMobile, bound_at: int, lifetime: int) -> None:
        """Refresh the binding when REFRESH_AT of its lifetime has passed (none for lifetime 0)."""
        if mobile.refresh is not None:
            mobile.refresh.cancel()
        mobile.refresh = None
        if lifetime > 0:
            when = max(bound_at + microseconds(lifetime * REFRESH_AT), self.scheduler.now)
            mobile.refresh = self.scheduler.at(when, self._refresh, mobile)

    def _refresh(self, mobile: AttachedMobile) -> None:
        """A PBU to the serving LMA renewing the binding (Handoff Indicator 5, RFC 5213 5.4.1).

        A handover or registration under way, or waiting its turn, renews it
        itself when it succeeds; the refresh waits for it to end.
        """
        mobile.refresh = None
        if (
            mobile.handover is not None
            or mobile.registration is not None
            or mobile.waiting is not None
        ):
            mobile.refresh = self.scheduler.after(
                microseconds(INITIAL_TIMEOUT), self._refresh, mobile
            )
            return
        self._update_binding(
            mobile, mobile.serving_lma, self._not_changed, None, self.binding_lifetime
        )

    def _tunnel(self, lma: IPv6Address) -> TunnelInterface:
        self._tunnel_remotes.add(lma)
        return self.tunnels.to(lma)

    def _point_route(self, mobile: AttachedMobile, tunnel: TunnelInterface) -> None:
        mn_id = mobile.context.identifier
        route = PolicyRoute(mobile.mac, mobile.context.prefixes, tunnel.name)
        self.policy_routes[mn_id] = route
        self.data_plane.point_policy_route(mn_id, route)

    def route_of(self, mn_id: str) -> TunnelInterface:
        """The tunnel interface the MN's policy route points at."""
        return self.tunnels.by_name[self.policy_routes[mn_id].interface]

    # --- step (a) -> (b) ---------------------------------------------------------------

    def on_report(self, report: ApReport, link: str) -> None:
        mobile = self.mobiles.get(report.mn_id)
        if mobile is None or not self._may_hand_over(mobile):
            return  # not ours, not registered (yet), or busy with a handover or a PBU
        if self.max_handovers is not None and len(self.handovers_running) >= self.max_handovers:
            mobile.waiting = report
            self._waiting.append(mobile)
            return
        self._request_handover(mobile, report.new_ap, report.handover)

    def _may_hand_over(self, mobile: AttachedMobile) -> bool:
        return (
            mobile.handover is None
            and mobile.waiting is None
            and mobile.registration is None
            and mobile.context.identifier in self.binding_update_list
        )

    def _next_waiting(self) -> None:
        """A handover ended: start the reports waiting, in order, while there is room."""
        while self._waiting and (
            self.max_handovers is None or len(self.handovers_running) < self.max_handovers
        ):
            mobile = self._waiting.popleft()
            report, mobile.waiting = mobile.waiting, None
            # Forgotten, or de-registered, while it waited: nothing to start.
            if (
                report is not None
                and self.mobiles.get(report.mn_id) is mobile
                and self._may_hand_over(mobile)
            ):
                self._request_handover(mobile, report.new_ap, report.handover)

    def _request_handover(self, mobile: AttachedMobile, new_ap: Option, number: int) -> None:
        lma = mobile.serving_lma
        context = mobile.context
        request = Signal(
            "LMA_HO_Req",
            self.sequences.next(lma),
            options_tuple(
                context.mn_id,
                context.prefix_options,
                new_ap,
                timestamp_option(self.scheduler.timestamp()),
                context.link_layer,
                context.access_technology,
            ),
            lifetime=self.binding_lifetime,
        )
        trace = Trace("b", context.identifier, number)
        handover = MagHandover(number, request, trace, lma)
        mobile.handover = handover
        self.handovers_running.add(context.identifier)

        def transmit(attempt: int) -> None:
            self.send(Packet(self.address, lma, request, trace=retried(trace, attempt)))

        handover.retransmission = Retransmission(
            self.scheduler, transmit, lambda: self._finish(mobile, Outcome.ABANDONED, None, "b")
        ).start()

    # --- receiving ---------------------------------------------------------------------

    def receive(self, packet: Packet, link: str) -> None:
        payload = packet.payload
        if isinstance(payload, Signal):
            if packet.dst == self.address:
                if payload.message == "LMA_HO_Resp":
                    self._on_lma_ho_resp(packet, payload)
                elif payload.message == "PBA":
                    self._on_pba(packet, payload)
            return
        if isinstance(payload, Packet):
            if packet.dst == self.address and packet.src in self._tunnel_remotes:
                self._deliver(payload)  # step (j): out of a tunnel, onto the access link
            return
        self._uplink(packet)

    def _deliver(self, packet: Packet) -> None:
        mobile = self._by_prefix.lookup(packet.dst)
        if mobile is None or packet.hop_limit <= 1:
            return
        self.send(packet.forwarded(), mobile.address)

    def _uplink(self, packet: Packet) -> None:
        """Step (k): whatever the destination, into the tunnel of the MN's policy route."""
        mobile = self._by_prefix.lookup(packet.src)
        if mobile is None or packet.hop_limit <= 1:
            return
        route = self.policy_routes.get(mobile.context.identifier)
        if route is None:
            return  # not registered yet: no tunnel serves it
        tunnel = self.tunnels.by_name[route.interface]
        self.send(encapsulate(packet.forwarded(), self.address, tunnel.remote))

    # --- step (e) -> (f) ---------------------------------------------------------------

    def _on_lma_ho_resp(self, packet: Packet, resp: Signal) -> None:
        mobile = self._mobile_for(resp)
        handover = None if mobile is None else mobile.handover
        if (
            mobile is None
            or handover is None
            or handover.new_lma is not None
            or packet.src != handover.previous_lma
            or resp.sequence != handover.request.sequence
        ):
            return
        if handover.retransmission is not None:
            handover.retransmission.stop()
        lma_option = resp.option("lma_address")
        if not resp.accepted or lma_option is None:
            self._finish(mobile, Outcome.REFUSED, resp.status, "e")
            return
        new_lma = address_of(lma_option)
        handover.new_lma = new_lma
        self._register(mobile, handover, new_lma)

    def _register(self, mobile: AttachedMobile, handover: MagHandover, lma: IPv6Address) -> None:
        """Step (f): PBU to the NLMA, the prefixes unchanged, handoff state not changed."""
        self._tunnel(lma)
        handover.retransmission = self._send_pbu(
            mobile,
            lma,
            self._not_changed,
            handover.pbu_sequences,
            self.binding_lifetime,
            traced(handover.trace, "f"),
            lambda: self._fall_back(mobile, handover, Outcome.ABANDONED, None),
        )

    def _update_binding(
        self,
        mobile: AttachedMobile,
        lma: IPv6Address,
        indicator: Option,
        trace: Trace | None,
        lifetime: int,
    ) -> None:
        """A PBU of the bMAG's own to ``lma`` (outside step (f)), resent until its PBA."""
        registration = Registration(lma, lifetime)
        mobile.registration = registration
        registration.retransmission = self._send_pbu(
            mobile,
            lma,
            indicator,
            registration.sequences,
            lifetime,
            trace,
            lambda: self._registered(mobile, Outcome.ABANDONED, None, 0),
        )

    def _send_pbu(
        self,
        mobile: AttachedMobile,
        lma: IPv6Address,
        indicator: Option,
        sequences: list[int],
        lifetime: int,
        trace: Trace | None,
        give_up: Callable[[], None],
    ) -> Retransmission:
        """PBU copies to ``lma`` by the timers; each copy's Sequence Number joins ``sequences``."""
        context = mobile.context

        def transmit(attempt: int) -> None:
            # docs/wire-format.md 9: each PBU copy has a new Sequence Number and Timestamp.
            sequence = self.sequences.next(lma)
            sequences.append(sequence)
            pbu = Signal(
                "PBU",
                sequence,
                options_tuple(
                    context.mn_id,
                    context.prefix_options,
                    indicator,
                    context.access_technology,
                    timestamp_option(self.scheduler.timestamp()),
                    context.link_layer,
                ),
                flags=PBU_FLAGS,
                lifetime=lifetime,
            )
            self.send(Packet(self.address, lma, pbu, trace=retried(trace, attempt)))

        return Retransmission(self.scheduler, transmit, give_up).start()

    # --- step (i) ----------------------------------------------------------------------

    def _on_pba(self, packet: Packet, pba: Signal) -> None:
        mobile = self._mobile_for(pba)
        if mobile is None:
            return
        registration = mobile.registration
        if (
            registration is not None
            and registration.lma == packet.src
            and pba.sequence in registration.sequences
        ):
            self._on_registration_pba(mobile, registration, pba)
            return
        handover = mobile.handover
        if (
            handover is None
            or handover.new_lma != packet.src
            or pba.sequence not in handover.pbu_sequences
        ):
            return
        if handover.retransmission is not None:
            handover.retransmission.stop()
        if not pba.accepted:
            self._fall_back(mobile, handover, Outcome.REJECTED, pba.status)
            return
        # Appendix A: from now on everything from the MN goes through the NLMA's tunnel.
        self._bound(mobile, handover.new_lma, pba)
        self._finish(mobile, Outcome.COMPLETED, pba.status, "i")

    def _fall_back(
        self, mobile: AttachedMobile, handover: MagHandover, outcome: Outcome, status: int | None
    ) -> None:
        """Step (f) failed, refused or unanswered: the MN stays with the PLMA.

        Its policy route keeps pointing at Tunnel0. The PLMA tunnels its
        downlink to the NLMA since (d): re-registering the MN with the PLMA
        takes it back (docs/wire-format.md 8, this design's recovery).
        """
        self._update_binding(
            mobile,
            handover.previous_lma,
            self._not_changed,
            traced(handover.trace, "", "re-registration"),
            self.binding_lifetime,
        )
        self._finish(mobile, outcome, status, "i" if outcome is Outcome.REJECTED else "f")

    def _on_registration_pba(
        self, mobile: AttachedMobile, registration: Registration, pba: Signal
    ) -> None:
        if registration.retransmission is not None:
            registration.retransmission.stop()
        if not pba.accepted:
            self._registered(mobile, Outcome.REJECTED, pba.status, 0)
            return
        if registration.lifetime > 0:
            self._bound(mobile, registration.lma, pba)
        self._registered(mobile, Outcome.COMPLETED, pba.status, pba.lifetime)

    def _bound(self, mobile: AttachedMobile, lma: IPv6Address, pba: Signal) -> None:
        """``lma`` accepted the MN's binding: it serves the MN, whose uplink goes its tunnel."""
        self.binding_update_list[mobile.context.identifier] = BindingUpdateListEntry(
            lma, pba.sequence, pba.lifetime, self.scheduler.now
        )
        self._point_route(mobile, self._tunnel(lma))
        mobile.serving_lma = lma
        self._schedule_refresh(mobile, self.scheduler.now, pba.lifetime)

    def _registered(
        self, mobile: AttachedMobile, outcome: Outcome, status: int | None, lifetime: int
    ) -> None:
        registration = mobile.registration
        assert registration is not None
        mobile.registration = None
        result = RegistrationResult(
            mobile.context.identifier, registration.lma, outcome, status, lifetime
        )
        if registration.lifetime == 0:
            # A de-registration's end, answered or not: the MN is gone.
            self.forget(result.mn_id)
        for observer in self.registration_observers:
            observer(result)

    def _mobile_for(self, signal: Signal) -> AttachedMobile | None:
        mn_id = signal.mn_identifier
        return None if mn_id is None else self.mobiles.get(mn_id)

    def _finish(
        self, mobile: AttachedMobile, outcome: Outcome, status: int | None, step: str
    ) -> None:
        handover = mobile.handover
        assert handover is not None
        mobile.handover = None
        self.handovers_running.discard(mobile.context.identifier)
        result = HandoverResult(
            mobile.context.identifier,
            handover.number,
            outcome,
            handover.previous_lma,
            handover.new_lma,
            status,
            step,
        )
        for observer in self.observers:
            observer(result)
        self._next_waiting()
