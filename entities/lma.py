"""The Local Mobility Anchor in both of the draft's roles, PLMA and NLMA.

As PLMA it answers the bMAG's LMA_HO_Req (b): it picks the NLMA from the New
AP ID (c), sends it the MN's context in LMA_HO_Init, and on the LMA_HAck (d)
routes the MN's prefix into the PLMA-NLMA tunnel and answers with
LMA_HO_Resp (e). As NLMA it makes a binding cache entry from that context
(d), takes the bMAG's PBU (f), has the remote policy store point the MN's
profile at itself (g, h) and only then answers with the PBA (i). Data for an
MN's prefix is tunnelled wherever the prefix route points ((j), (k)).

Message contents follow docs/wire-format.md section 7; the per-MN state is
the binding cache (:class:`~lmaho_entities.state.BindingCacheEntry`), the
prefix routes and the tunnel interface table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lmaho_wire.schema import BA_STATUS, HANDOVER_STATUS, is_success

from .clock import Scheduler
from .context import (
    MobileContext,
    address_of,
    handoff_indicator_option,
    lma_address_option,
    mag_address_option,
    previous_lma_address_option,
    timestamp_option,
)
from .dataplane import NO_DATA_PLANE, DataPlane
from .network import Network, Node, Retransmission, SequenceCounters
from .packets import (
    IPv6Address,
    Packet,
    Signal,
    Trace,
    answering,
    answering_step,
    encapsulate,
    options_tuple,
    retried,
    traced,
)
from .state import (
    AnswerCache,
    BindingCacheEntry,
    BindingState,
    PrefixTable,
    TunnelInterface,
    TunnelTable,
)

ACCEPTED = 0
T_FLAG = frozenset({"T"})
P_FLAG = frozenset({"P"})

# What each request must carry (docs/wire-format.md 7, "MUST carry"), with the
# status a missing option earns. A missing MN Identifier cannot be answered at all.
_LMA_HO_REQ_NEEDS = ("home_network_prefix", "new_ap_id", "timestamp")
_LMA_HO_INIT_NEEDS = ("home_network_prefix", "mag_ipv6_address", "timestamp")
_PBU_NEEDS = {
    "home_network_prefix": BA_STATUS["MISSING_HOME_NETWORK_PREFIX_OPTION"],
    "handoff_indicator": BA_STATUS["MISSING_HANDOFF_INDICATOR_OPTION"],
    "access_technology_type": BA_STATUS["MISSING_ACCESS_TECH_TYPE_OPTION"],
    "timestamp": BA_STATUS["TIMESTAMP_MISMATCH"],
}
_NOT_CHANGED = handoff_indicator_option("NOT_CHANGED")


@dataclass(slots=True)
class OutgoingHandover:
    """PLMA side: an LMA_HO_Req being worked on, until the LMA_HO_Resp goes out."""

    mag: IPv6Address
    request: Signal
    trace: Trace | None
    nlma: IPv6Address
    init_sequence: int
    retransmission: Retransmission | None = None


@dataclass(slots=True)
class IncomingRegistration:
    """NLMA side: the bMAG's PBU waiting for the policy store's Update_Ack."""

    mag: IPv6Address
    pbu: Signal
    pbu_trace: Trace | None
    update_sequence: int
    retransmission: Retransmission | None = None


@dataclass(slots=True)
class ProfileUpdate:
    """An Update of this LMA's own to the policy store (no PBU waits for it)."""

    sequence: int
    retransmission: Retransmission | None = None


def _missing(signal: Signal, keys: tuple[str, ...]) -> bool:
    return any(signal.option(key) is None for key in keys)


def _missing_pbu_option(pbu: Signal) -> int | None:
    """The PBA Status for the first mandatory option ``pbu`` lacks, None when it has them all."""
    for key, status in _PBU_NEEDS.items():
        if pbu.option(key) is None:
            return status
    return None


def _re_registration(pbu: Signal) -> bool:
    """Handoff Indicator "not changed": a PBU renewing a binding, never opening one.

    The bMAG's PBU of step (f) carries it (docs/wire-format.md 7), so a handover's
    PBU reaching an LMA without the MN's context is refused, not taken as new.
    """
    indicator = pbu.option("handoff_indicator")
    return indicator is not None and indicator.data == _NOT_CHANGED.data


class Lma(Node):
    """An LMA; the same class plays the PLMA and the NLMA.

    ``access_points`` maps the data of a New AP Identifier option (ID Type
    and Identifier octets) to the address of the LMA serving that AP: the
    PLMA's choice of NLMA in step (c). ``upstream`` is the next hop for
    everything that is not an MN's prefix (the CN's side). ``store`` is the
    remote policy store's address.

    ``refuse_context`` and ``reject_pbu``, when set, are the Status this LMA
    answers every LMA_HO_Init, respectively every PBU (after the policy
    store's Update_Ack, as every PBA), with: the failure variants a test lab
    needs.

    ``data_plane`` is told of every tunnel and prefix route (a live runtime
    makes them real). ``max_mobiles``, when set, bounds the binding cache: a
    context for one more MN is refused with INSUFFICIENT_RESOURCES (counted
    in ``refused_full``), and answers are remembered for that many MNs.
    """

    def __init__(
        self,
        name: str,
        address: IPv6Address,
        scheduler: Scheduler,
        network: Network,
        *,
        store: IPv6Address,
        upstream: IPv6Address,
        access_points: Mapping[bytes, IPv6Address],
        max_lifetime: int,
        refuse_context: int | None = None,
        reject_pbu: int | None = None,
        data_plane: DataPlane = NO_DATA_PLANE,
        max_mobiles: int | None = None,
    ) -> None:
        super().__init__(name, address, scheduler, network)
        self.store = store
        self.upstream = upstream
        self.access_points = dict(access_points)
        self.max_lifetime = max_lifetime - max_lifetime % 4
        self.refuse_context = refuse_context
        self.reject_pbu = reject_pbu
        self.data_plane = data_plane
        self.max_mobiles = max_mobiles
        self.refused_full = 0
        self.bindings: dict[str, BindingCacheEntry] = {}
        self.tunnels = TunnelTable(address, data_plane.add_tunnel)
        self.prefix_routes: PrefixTable[TunnelInterface] = PrefixTable()
        self.outgoing: dict[str, OutgoingHandover] = {}
        self.incoming: dict[str, IncomingRegistration] = {}
        self.profile_updates: dict[str, ProfileUpdate] = {}
        self.answers = AnswerCache(max_mobiles)
        self.sequences = SequenceCounters()
        self._handlers = {
            "LMA_HO_Req": self._on_lma_ho_req,
            "LMA_HO_Init": self._on_lma_ho_init,
            "LMA_HAck": self._on_lma_hack,
            "PBU": self._on_pbu,
            "Update_Ack": self._on_update_ack,
        }

    # --- state set up outside the procedure ------------------------------------------

    def register(
        self, context: MobileContext, proxy_coa: IPv6Address, lifetime: int, registered_at: int
    ) -> BindingCacheEntry:
        """Hold a registered binding for an MN, as a PBU/PBA exchange before the run left it.

        The MN's prefixes are routed into the tunnel to its MAG. ValueError
        when the binding cache is full (``max_mobiles``).
        """
        if self._full(context.identifier):
            raise ValueError(f"{self.name}: binding cache full ({self.max_mobiles} MNs)")
        bce = BindingCacheEntry(context, proxy_coa, min(lifetime, self.max_lifetime), registered_at)
        self.bindings[context.identifier] = bce
        self._route(context, self.tunnels.to(proxy_coa))
        return bce

    def forget(self, mn_id: str) -> None:
        self._drop_binding(mn_id)
        for pending in (
            self.outgoing.pop(mn_id, None),
            self.incoming.pop(mn_id, None),
            self.profile_updates.pop(mn_id, None),
        ):
            if pending is not None and pending.retransmission is not None:
                pending.retransmission.stop()
        self.answers.forget(mn_id)

    def _full(self, mn_id: str) -> bool:
        """True when a BCE for ``mn_id`` would be one more than ``max_mobiles`` allows."""
        return (
            self.max_mobiles is not None
            and mn_id not in self.bindings
            and len(self.bindings) >= self.max_mobiles
        )

    def _route(self, context: MobileContext, tunnel: TunnelInterface) -> None:
        for prefix in context.prefixes:
            self.prefix_routes.add(prefix, tunnel)
            self.data_plane.route_prefix(prefix, tunnel)

    def _unroute(self, context: MobileContext) -> None:
        for prefix in context.prefixes:
            self.prefix_routes.remove(prefix)
            self.data_plane.unroute_prefix(prefix)

    # --- receiving ---------------------------------------------------------------------

    def receive(self, packet: Packet, link: str) -> None:
        payload = packet.payload
        if isinstance(payload, Signal):
            if packet.dst == self.address:
                handler = self._handlers.get(payload.message)
                if handler is not None and payload.mn_identifier is not None:
                    handler(packet, payload)
            return
        if isinstance(payload, Packet) and packet.dst == self.address:
            # The end of a tunnel (from a MAG or from the other LMA): decapsulate.
            self._forward(payload)
        else:
            self._forward(packet)

    def _forward(self, packet: Packet) -> None:
        """Route a data packet: into the tunnel its destination prefix points at, else upstream."""
        if packet.hop_limit <= 1:
            return
        out = packet.forwarded()
        tunnel = self.prefix_routes.lookup(out.dst)
        if tunnel is not None:
            self.send(encapsulate(out, self.address, tunnel.remote))
        else:
            self.send(out, self.upstream)

    def _reply(self, to: IPv6Address, response: Signal, trace: Trace | None, request: str) -> None:
        mn_id = response.mn_identifier
        assert mn_id is not None
        self.answers.remember(mn_id, request, to, response.sequence, response, trace)
        self.send(Packet(self.address, to, response, trace=trace))

    def _answer_again(self, packet: Packet, signal: Signal) -> bool:
        """Send the cached answer if ``signal`` repeats a request already answered."""
        mn_id = signal.mn_identifier
        assert mn_id is not None
        answer = self.answers.lookup(mn_id, signal.message, packet.src, signal.sequence)
        if answer is None:
            return False
        answer.resent += 1
        trace = answering(packet.trace, answer.response.step)
        self.send(Packet(self.address, answer.peer, answer.response, trace=trace))
        return True

    # --- PLMA: steps (b) -> (c), (d) -> (e) ----------------------------------------------

    def _on_lma_ho_req(self, packet: Packet, req: Signal) -> None:
        if self._answer_again(packet, req):
            return
        mn_id = req.mn_identifier
        assert mn_id is not None
        running = self.outgoing.get(mn_id)
        if running is not None:
            if running.mag == packet.src and running.request.sequence == req.sequence:
                return  # a retransmission of the request in hand: its answer is coming
            self._ho_resp(packet, req, HANDOVER_STATUS["HANDOVER_IN_PROGRESS"])
            return
        if _missing(req, _LMA_HO_REQ_NEEDS):
            self._ho_resp(packet, req, HANDOVER_STATUS["CONTEXT_INCOMPLETE"])
            return
        bce = self.bindings.get(mn_id)
        if bce is None or bce.state is not BindingState.REGISTERED or bce.proxy_coa != packet.src:
            self._ho_resp(packet, req, HANDOVER_STATUS["UNKNOWN_MOBILE_NODE"])
            return
        new_ap = req.option("new_ap_id")
        assert new_ap is not None
        nlma = self.access_points.get(new_ap.data)
        if nlma is None or nlma == self.address:
            self._ho_resp(packet, req, HANDOVER_STATUS["NO_NLMA_AVAILABLE"])
            return
        handover = OutgoingHandover(packet.src, req, packet.trace, nlma, self.sequences.next(nlma))
        self.outgoing[mn_id] = handover
        init = Signal(
            "LMA_HO_Init",
            handover.init_sequence,
            options_tuple(
                bce.context.mn_id,
                bce.context.prefix_options,
                mag_address_option(bce.proxy_coa),
                timestamp_option(self.scheduler.timestamp()),
                bce.context.link_layer,
                bce.context.access_technology,
                bce.context.link_local,
                new_ap,
            ),
            flags=T_FLAG,
            lifetime=bce.remaining_lifetime(self.scheduler.now),
        )
        trace = traced(packet.trace, "c")

        def transmit(attempt: int) -> None:
            self.send(Packet(self.address, nlma, init, trace=retried(trace, attempt)))

        def give_up() -> None:
            # docs/wire-format.md 9: the handover is abandoned; the bMAG's own timer
            # (started earlier) has given up by now, so there is nobody to tell.
            self.outgoing.pop(mn_id, None)

        handover.retransmission = Retransmission(self.scheduler, transmit, give_up).start()

    def _ho_resp(
        self,
        packet: Packet,
        req: Signal,
        status: int,
        *,
        lifetime: int = 0,
        nlma: IPv6Address | None = None,
    ) -> None:
        """Step (e): LMA_HO_Resp to the bMAG; the NLMA's address only on success."""
        resp = Signal(
            "LMA_HO_Resp",
            req.sequence,
            options_tuple(
                req.option("mn_identifier"),
                req.options_of("home_network_prefix"),
                None if nlma is None else lma_address_option(nlma),
                req.option("mn_link_layer_identifier"),
            ),
            lifetime=lifetime,
            status=status,
        )
        trace = answering(packet.trace, "e")
        self._reply(packet.src, resp, trace, "LMA_HO_Req")

    def _on_lma_hack(self, packet: Packet, hack: Signal) -> None:
        mn_id = hack.mn_identifier
        assert mn_id is not None
        handover = self.outgoing.get(mn_id)
        if (
            handover is None
            or handover.nlma != packet.src
            or handover.init_sequence != hack.sequence
        ):
            return  # late or stray: nothing waits for it
        if handover.retransmission is not None:
            handover.retransmission.stop()
        del self.outgoing[mn_id]
        request_packet = Packet(handover.mag, self.address, handover.request, trace=handover.trace)
        if not hack.accepted:
            self._ho_resp(
                request_packet, handover.request, HANDOVER_STATUS["NLMA_REJECTED_HANDOVER"]
            )
            return
        if "T" not in hack.flags:
            # Accepted without the tunnel the LMA_HO_Init asked for: no way to forward (j).
            self._ho_resp(request_packet, handover.request, HANDOVER_STATUS["TUNNEL_SETUP_FAILED"])
            return
        bce = self.bindings.get(mn_id)
        if bce is not None:
            bce.state = BindingState.HANDED_OVER
            bce.next_lma = handover.nlma
            # The PLMA stays the prefix's topological anchor: downlink data keeps
            # arriving here and now goes on through the PLMA-NLMA tunnel (j).
            self._route(bce.context, self.tunnels.to(handover.nlma))
        self._ho_resp(
            request_packet,
            handover.request,
            ACCEPTED,
            lifetime=hack.lifetime,
            nlma=handover.nlma,
        )

    # --- NLMA: steps (c) -> (d), (f) -> (g), (h) -> (i) ---------------------------------

    def _on_lma_ho_init(self, packet: Packet, init: Signal) -> None:
        if self._answer_again(packet, init):
            return
        trace = answering(packet.trace, "d")
        if _missing(init, _LMA_HO_INIT_NEEDS):
            self._hack(packet, init, HANDOVER_STATUS["CONTEXT_INCOMPLETE"], trace)
            return
        if self.refuse_context is not None:
            self._hack(packet, init, self.refuse_context, trace)
            return
        mn_id = init.mn_identifier
        assert mn_id is not None
        if self._full(mn_id):
            self.refused_full += 1
            self._hack(packet, init, HANDOVER_STATUS["INSUFFICIENT_RESOURCES"], trace)
            return
        mag_option = init.option("mag_ipv6_address")
        assert mag_option is not None
        context = MobileContext.from_signal(init)
        lifetime = min(init.lifetime, self.max_lifetime)
        bce = BindingCacheEntry(
            context,
            address_of(mag_option),
            lifetime,
            self.scheduler.now,
            BindingState.TRANSFERRED,
            previous_lma=packet.src,
        )
        self.bindings[context.identifier] = bce
        # Step (d): the bi-directional PLMA-NLMA tunnel, and (from the BCE) the
        # route of the MN's prefix into the tunnel to its MAG.
        self.tunnels.to(packet.src)
        self._route(context, self.tunnels.to(bce.proxy_coa))
        self._hack(packet, init, ACCEPTED, trace, lifetime=lifetime)

    def _hack(
        self,
        packet: Packet,
        init: Signal,
        status: int,
        trace: Trace | None,
        *,
        lifetime: int = 0,
    ) -> None:
        """Step (d): LMA_HAck to the PLMA, T set when the tunnel is up."""
        hack = Signal(
            "LMA_HAck",
            init.sequence,
            options_tuple(init.option("mn_identifier"), init.options_of("home_network_prefix")),
            flags=T_FLAG if is_success(status) else frozenset(),
            lifetime=lifetime,
            status=status,
        )
        self._reply(packet.src, hack, trace, "LMA_HO_Init")

    def _on_pbu(self, packet: Packet, pbu: Signal) -> None:
        if self._answer_again(packet, pbu):
            return
        mn_id = pbu.mn_identifier
        assert mn_id is not None
        # A PBU of step (f) is answered by (i); one outside the handover by a plain PBA.
        trace = answering_step(packet.trace, "f", "i")
        bce = self.bindings.get(mn_id)
        if bce is None and not _re_registration(pbu):
            self._initial_registration(packet, pbu, trace)
            return
        if bce is None or bce.proxy_coa != packet.src:
            # A re-registration (the handover's PBU among them) of a binding this LMA
            # does not hold for that MAG: RFC 5213 5.3.1's answer.
            self._pba(packet, pbu, BA_STATUS["NOT_LMA_FOR_THIS_MOBILE_NODE"], trace)
            return
        missing = _missing_pbu_option(pbu)
        if missing is not None:
            self._pba(packet, pbu, missing, trace)
            return
        if {o.data for o in pbu.options_of("home_network_prefix")} != {
            o.data for o in bce.context.prefix_options
        }:
            self._pba(packet, pbu, BA_STATUS["BCE_PBU_PREFIX_SET_DO_NOT_MATCH"], trace)
            return
        if bce.state is BindingState.HANDED_OVER:
            # This design's recovery from a failed (i) (docs/wire-format.md 8): the bMAG
            # re-registers the MN with the PLMA, which serves it again, its prefix routed
            # back into the bMAG's tunnel instead of the PLMA-NLMA tunnel.
            handed_to, bce.next_lma = bce.next_lma, None
            bce.state = BindingState.REGISTERED
            self._route(bce.context, self.tunnels.to(bce.proxy_coa))
            # The NLMA may have named itself in the MN's profile at (g): this LMA
            # serves the MN again, and says so (docs/wire-format.md 8).
            self._restore_profile(bce, handed_to, packet.trace)
        if bce.state is BindingState.REGISTERED:
            if pbu.lifetime == 0:
                # RFC 5213 5.3.5: a de-registration; the binding and its route go.
                self._drop_binding(mn_id)
                self._pba(packet, pbu, ACCEPTED, trace)
                return
            # A re-registration (a PBU retransmitted after its PBA was lost, or a
            # refresh): the policy store already names this LMA.
            self._accept_pbu(bce, packet, pbu, trace)
            return
        waiting = self.incoming.get(mn_id)
        if waiting is not None:
            # docs/wire-format.md 9: a retransmitted PBU has a new Sequence Number;
            # the PBA will answer the latest copy.
            waiting.pbu, waiting.pbu_trace, waiting.mag = pbu, packet.trace, packet.src
            return
        bce.state = BindingState.UPDATING
        assert bce.previous_lma is not None
        registration = IncomingRegistration(
            packet.src, pbu, packet.trace, self.sequences.next(self.store)
        )
        self.incoming[mn_id] = registration

        def give_up() -> None:
            self.incoming.pop(mn_id, None)
            self._fail_registration(mn_id, registration)

        registration.retransmission = self._send_update(
            bce,
            registration.update_sequence,
            bce.previous_lma,
            traced(packet.trace, "g"),
            give_up,
        )

    def _send_update(
        self,
        bce: BindingCacheEntry,
        sequence: int,
        previous_lma: IPv6Address | None,
        trace: Trace | None,
        give_up: Callable[[], None],
    ) -> Retransmission:
        """An Update naming this LMA the MN's LMA (and ``previous_lma``), resent by the timers."""
        update = Signal(
            "Update",
            sequence,
            options_tuple(
                bce.context.mn_id,
                lma_address_option(self.address),
                None if previous_lma is None else previous_lma_address_option(previous_lma),
                bce.context.prefix_options,
            ),
        )

        def transmit(attempt: int) -> None:
            self.send(Packet(self.address, self.store, update, trace=retried(trace, attempt)))

        return Retransmission(self.scheduler, transmit, give_up).start()

    def _restore_profile(
        self, bce: BindingCacheEntry, handed_to: IPv6Address | None, cause: Trace | None
    ) -> None:
        """An Update naming this LMA the MN's LMA again (and ``handed_to`` the previous one)."""
        mn_id = bce.context.identifier
        pending = self.profile_updates.pop(mn_id, None)
        if pending is not None and pending.retransmission is not None:
            pending.retransmission.stop()
        update = ProfileUpdate(self.sequences.next(self.store))
        self.profile_updates[mn_id] = update

        def give_up() -> None:
            self.profile_updates.pop(mn_id, None)

        update.retransmission = self._send_update(
            bce,
            update.sequence,
            handed_to,
            traced(cause, "", "profile back to the PLMA"),
            give_up,
        )

    def _initial_registration(self, packet: Packet, pbu: Signal, trace: Trace | None) -> None:
        """RFC 5213 5.3.2: a PBU for an MN with no binding here opens its mobility session.

        The binding is :meth:`register`'s (BCE, tunnel to the MAG, prefix route);
        the PBA grants the lifetime, at most ``max_lifetime``.
        """
        missing = _missing_pbu_option(pbu)
        if missing is not None:
            self._pba(packet, pbu, missing, trace)
            return
        if pbu.lifetime == 0:
            # A de-registration of a binding already gone (its PBA lost, say): done.
            self._pba(packet, pbu, ACCEPTED, trace)
            return
        context = MobileContext.from_signal(pbu)
        if any(
            prefix.prefixlen == 0 or prefix.network_address.is_unspecified
            for prefix in context.prefixes
        ):
            # RFC 5213 asks the LMA to assign a prefix here; this one assigns none.
            self._pba(packet, pbu, BA_STATUS["NOT_AUTHORIZED_FOR_HOME_NETWORK_PREFIX"], trace)
            return
        if self._full(context.identifier):
            self.refused_full += 1
            self._pba(packet, pbu, BA_STATUS["INSUFFICIENT_RESOURCES"], trace)
            return
        bce = self.register(context, packet.src, pbu.lifetime, self.scheduler.now)
        self._accept_pbu(bce, packet, pbu, trace)

    def _on_update_ack(self, packet: Packet, ack: Signal) -> None:
        mn_id = ack.mn_identifier
        assert mn_id is not None
        own = self.profile_updates.get(mn_id)
        if own is not None and packet.src == self.store and own.sequence == ack.sequence:
            # Accepted or not, nothing waits for this answer: the PBA has gone already.
            if own.retransmission is not None:
                own.retransmission.stop()
            del self.profile_updates[mn_id]
            return
        registration = self.incoming.get(mn_id)
        if (
            registration is None
            or packet.src != self.store
            or registration.update_sequence != ack.sequence
        ):
            return
        if registration.retransmission is not None:
            registration.retransmission.stop()
        del self.incoming[mn_id]
        bce = self.bindings.get(mn_id)
        if not ack.accepted or bce is None:
            self._fail_registration(mn_id, registration)
            return
        pbu_packet = Packet(registration.mag, self.address, registration.pbu)
        trace = answering(registration.pbu_trace, "i")
        if self.reject_pbu is not None:
            # docs/wire-format.md 7: the PBA follows the Update_Ack, even a refusing one.
            # The draft has no message to take the profile back to the PLMA.
            self._drop_binding(mn_id)
            self._pba(pbu_packet, registration.pbu, self.reject_pbu, trace)
            return
        self._accept_pbu(bce, pbu_packet, registration.pbu, trace)

    def _accept_pbu(
        self, bce: BindingCacheEntry, packet: Packet, pbu: Signal, trace: Trace | None
    ) -> None:
        lifetime = min(pbu.lifetime, self.max_lifetime)
        bce.state = BindingState.REGISTERED
        bce.lifetime = lifetime
        bce.registered_at = self.scheduler.now
        bce.last_pbu_sequence = pbu.sequence
        self._pba(packet, pbu, ACCEPTED, trace, lifetime=lifetime)

    def _fail_registration(self, mn_id: str, registration: IncomingRegistration) -> None:
        """docs/wire-format.md 7: a failed Update yields a PBA with status 128."""
        self._drop_binding(mn_id)
        packet = Packet(registration.mag, self.address, registration.pbu)
        trace = answering(registration.pbu_trace, "i")
        self._pba(packet, registration.pbu, BA_STATUS["REASON_UNSPECIFIED"], trace)

    def _drop_binding(self, mn_id: str) -> None:
        """Delete the MN's BCE and the route of its prefixes.

        When a registration fails this is all the NLMA can do: the draft has
        no message telling the PLMA, which keeps its tunnel route until the
        bMAG re-registers the MN there (docs/wire-format.md 8).
        """
        bce = self.bindings.pop(mn_id, None)
        if bce is not None:
            self._unroute(bce.context)

    def _pba(
        self,
        packet: Packet,
        pbu: Signal,
        status: int,
        trace: Trace | None,
        *,
        lifetime: int = 0,
    ) -> None:
        """Step (i): the PBA, echoing the PBU's options (its Timestamp included)."""
        pba = Signal(
            "PBA",
            pbu.sequence,
            options_tuple(
                pbu.option("mn_identifier"),
                pbu.options_of("home_network_prefix"),
                pbu.option("handoff_indicator"),
                pbu.option("access_technology_type"),
                pbu.option("timestamp"),
                pbu.option("mn_link_layer_identifier"),
            ),
            flags=P_FLAG,
            lifetime=lifetime,
            status=status,
        )
        self._reply(packet.src, pba, trace, "PBU")
