"""The reference network of a scenario, and a run of handovers through it.

:class:`ReferenceNetwork` makes the entities of the draft's Figure 1 and
joins them with links. :class:`Campaign` then moves N MNs through K
handovers each, back and forth between the two LMAs, interleaved in time:

* MN n arrives (already registered at its anchor LMA through the bMAG, the
  state a PBU/PBA exchange before the run would have left), and at once
  schedules MN n+1's arrival, so the event heap never holds more than the
  MNs in flight;
* it reports the AP of the other LMA (step (a)), the entities do (b)-(i),
  and after a completed handover the CN and the MN exchange data ((j), (k));
* after its last handover the MN leaves and every entity forgets it.

Memory therefore follows the number of MNs in flight at one time, not N.

A handover that takes the MN back to its anchor LMA has no PLMA-NLMA leg in
(j): downlink data reaches the anchor, now the NLMA, which tunnels it
straight to the bMAG.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from lmaho_wire import Option, option
from lmaho_wire.packet import mac_bytes
from lmaho_wire.schema import BA_STATUS, HANDOVER_STATUS

from .clock import Scheduler, microseconds
from .context import MobileContext
from .hosts import CorrespondentNode, DataProtocol, MobileNode
from .lma import Lma
from .mag import BoundaryMag, HandoverResult, RegistrationResult
from .packets import IPv6Address, Packet, Signal, Trace
from .policy_store import PolicyStore
from .scenario import LMA_ROLES, MobileSpec, Scenario, link_local, mobile_spec
from .simnet import Hop, SimulatedNetwork
from .state import PolicyProfile

#: How long after its last data packet the CN stops waiting for the MN's answers.
DATA_TIMEOUT_US = 2_000_000


class Variant(enum.Enum):
    """What goes wrong in every handover of a run (nothing, by default)."""

    NONE = "none"
    #: The NLMA refuses the context: LMA_HAck with an error Status, LMA_HO_Resp
    #: NLMA_REJECTED_HANDOVER, no PBU.
    NLMA_REFUSES = "nlma-refuses"
    #: The NLMA answers the PBU with an error Status (and updates no profile).
    PBA_ERROR = "pba-error"
    #: The policy store fails the Update: Update_Ack POLICY_UPDATE_FAILED, PBA status 128.
    POLICY_UPDATE_FAILS = "policy-update-fails"
    #: The first copy of one step's message is lost; its retransmission follows the timeout.
    LOST_MESSAGE = "lost-message"


class ReferenceNetwork:
    """CN, PLMA, NLMA, bMAG and remote policy store, linked as the scenario says.

    ``lmas`` maps the roles "plma" and "nlma" (the roles of the first
    handover) to the two LMAs; ``ap_options`` holds the New AP Identifier
    option of each AP, built once.
    """

    def __init__(
        self,
        scenario: Scenario,
        scheduler: Scheduler,
        network: SimulatedNetwork,
        variant: Variant = Variant.NONE,
    ) -> None:
        self.scenario = scenario
        self.scheduler = scheduler
        self.network = network
        failures = scenario.failures
        # NAME identifiers are text, the other ID types octets written in hex: the
        # codec's field types take either as written.
        self.ap_options: dict[str, Option] = {
            name: option("new_ap_id", id_type=ap.id_type, identifier=ap.identifier)
            for name, ap in scenario.access_points.items()
        }
        ap_lmas = {
            self.ap_options[name].data: scenario.lma(ap.lma).address
            for name, ap in scenario.access_points.items()
        }
        self.store = PolicyStore(
            "store",
            scenario.store.address,
            scheduler,
            network,
            fail_updates=HANDOVER_STATUS[failures.policy_update_status]
            if variant is Variant.POLICY_UPDATE_FAILS
            else None,
        )
        self.lmas: dict[str, Lma] = {
            role: Lma(
                role,
                scenario.lma(role).address,
                scheduler,
                network,
                store=scenario.store.address,
                upstream=scenario.cn.address,
                access_points=ap_lmas,
                max_lifetime=scenario.lma(role).max_lifetime,
                refuse_context=HANDOVER_STATUS[failures.nlma_refuses_status]
                if variant is Variant.NLMA_REFUSES
                else None,
                reject_pbu=BA_STATUS[failures.pba_error_status]
                if variant is Variant.PBA_ERROR
                else None,
            )
            for role in LMA_ROLES
        }
        self.bmag_access_mac = mac_bytes(scenario.bmag.access_mac)
        self.bmag = BoundaryMag(
            "bmag",
            scenario.bmag.address,
            scheduler,
            network,
            link_local=link_local(self.bmag_access_mac),
            binding_lifetime=scenario.bmag.binding_lifetime,
        )
        traffic = scenario.traffic
        self.cn = CorrespondentNode(
            "cn",
            scenario.cn.address,
            scheduler,
            network,
            protocol=DataProtocol(traffic.protocol),
            payload=_payload(traffic.payload_size),
            ports=(traffic.cn_port, traffic.mn_port),
        )
        self.labels: dict[str, str] = {
            "cn": scenario.cn.label,
            "plma": scenario.plma.label,
            "nlma": scenario.nlma.label,
            "bmag": scenario.bmag.label,
            "store": scenario.store.label,
        }
        nodes = {"cn": self.cn, "bmag": self.bmag, "store": self.store, **self.lmas}
        for node in nodes.values():
            network.add(node)
        for name, link in scenario.links.items():
            a, b = name.split("-")
            network.connect(
                name,
                nodes[a],
                mac_bytes(link.macs[0]),
                nodes[b],
                mac_bytes(link.macs[1]),
                delay=microseconds(link.delay),
            )

    def label(self, node_name: str) -> str:
        """How comments and reports name a node ("MN" for every mobile)."""
        return self.labels.get(node_name, "MN")

    def ap_towards(self, lma_address: IPv6Address) -> Option:
        """The New AP option of the first AP served by the LMA at ``lma_address``."""
        for name, ap in self.scenario.access_points.items():
            if self.scenario.lma(ap.lma).address == lma_address:
                return self.ap_options[name]
        raise LookupError(f"no AP is served by {lma_address}")

    def other_lma(self, address: IPv6Address) -> Lma:
        """The LMA that is not at ``address``: where an MN served there moves to."""
        plma, nlma = self.lmas["plma"], self.lmas["nlma"]
        return nlma if address == plma.address else plma

    def arrive(self, spec: MobileSpec) -> MobileNode:
        """MN ``spec`` joins, registered at its anchor LMA through the bMAG (no signalling)."""
        scenario = self.scenario
        anchor = self.lmas[scenario.mobiles.anchor]
        context = MobileContext.build(
            spec.identifier,
            (spec.prefix,),
            link_layer=spec.mac,
            access_technology=scenario.mobiles.access_technology,
            link_local=self.bmag.link_local,
        )
        now = self.scheduler.now
        lifetime = min(scenario.bmag.binding_lifetime, anchor.max_lifetime)
        anchor.register(context, self.bmag.address, lifetime, now)
        self.store.add_profile(PolicyProfile(spec.identifier, anchor.address, None, (spec.prefix,)))
        self.bmag.attach(
            context,
            spec.mac,
            spec.address,
            anchor.address,
            sequence=0,
            lifetime=lifetime,
            registered_at=now,
        )
        self.cn.add_route(spec.prefix, anchor.address)
        mn = MobileNode(
            f"mn{spec.n}",
            spec.address,
            self.scheduler,
            self.network,
            identifier=spec.identifier,
            mac=spec.mac,
            gateway=self.bmag.link_local,
        )
        self.network.add(mn)
        self.network.connect(
            "access",
            mn,
            spec.mac,
            self.bmag,
            self.bmag_access_mac,
            delay=microseconds(scenario.access.delay),
            a_addresses=(spec.address,),
            b_addresses=(self.bmag.link_local,),
        )
        return mn

    def leave(self, mn: MobileNode, spec: MobileSpec) -> None:
        """The run is done with this MN: every entity forgets it (no signalling)."""
        for node in (self.bmag, self.store, *self.lmas.values()):
            node.forget(spec.identifier)
        self.cn.stop_flow(spec.address)
        self.cn.forget_route(spec.prefix)
        self.network.remove(mn.name)


def _payload(size: int) -> bytes:
    """The data the CN sends: a recognisable text, repeated to ``size`` octets."""
    text = b"lmaho draft-lim-netext-lma-handover-01 "
    return (text * (size // len(text) + 1))[:size]


def lost_message_rule(step: str) -> Callable[[Packet, Hop], bool]:
    """Lose the first copy of step ``step``'s message in every handover."""

    def lose(packet: Packet, hop: Hop) -> bool:
        trace = packet.trace
        return (
            isinstance(packet.payload, Signal)
            and trace is not None
            and trace.step == step
            and trace.attempt == 0
        )

    return lose


@dataclass(slots=True)
class _Mobile:
    spec: MobileSpec
    node: MobileNode
    handovers_started: int = 0
    #: A failed (i) left the bMAG re-registering the MN with the PLMA: next after that.
    recovering: bool = False


@dataclass
class CampaignResult:
    """Counts of a finished run."""

    mobiles: int = 0
    handovers: int = 0
    completed: int = 0
    failed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class Campaign:
    """N MNs, K handovers each, interleaved, streamed (see the module docstring).

    ``rng`` draws each MN's random start offset (the network draws its
    jitter from its own). ``on_handover`` is told of every finished handover.
    """

    def __init__(
        self,
        world: ReferenceNetwork,
        *,
        mobiles: int,
        handovers: int,
        rng: random.Random,
        on_handover: Callable[[HandoverResult], None] | None = None,
    ) -> None:
        if mobiles < 1 or handovers < 1:
            raise ValueError("a campaign needs at least one MN and one handover")
        self.world = world
        self.mobiles = mobiles
        self.handovers = handovers
        self.rng = rng
        self.on_handover = on_handover
        self.result = CampaignResult()
        self.in_flight: dict[str, _Mobile] = {}
        self.peak_in_flight = 0
        timing = world.scenario.timing
        self._first = microseconds(timing.first_report)
        self._spacing = microseconds(timing.mobile_spacing)
        self._interval = microseconds(timing.handover_interval)
        traffic = world.scenario.traffic
        self._traffic_delay = microseconds(traffic.start_after)
        self._traffic_interval = microseconds(traffic.interval)
        self._traffic_packets = traffic.packets
        world.bmag.observers.append(self._handover_done)
        world.bmag.registration_observers.append(self._registration_done)

    def start(self) -> None:
        """Schedule MN 1's arrival; :meth:`Scheduler.run` does the rest."""
        self._schedule_arrival(1)

    def run(self) -> CampaignResult:
        self.start()
        self.world.scheduler.run()
        return self.result

    def _schedule_arrival(self, n: int) -> None:
        offset = round(self._spacing * self.rng.random())
        self.world.scheduler.at(self._first + (n - 1) * self._spacing + offset, self._arrive, n)

    def _arrive(self, n: int) -> None:
        if n < self.mobiles:
            self._schedule_arrival(n + 1)
        spec = mobile_spec(self.world.scenario.mobiles, n)
        mobile = _Mobile(spec, self.world.arrive(spec))
        self.in_flight[spec.identifier] = mobile
        self.peak_in_flight = max(self.peak_in_flight, len(self.in_flight))
        self.result.mobiles += 1
        self._report(mobile)

    def _report(self, mobile: _Mobile) -> None:
        """Step (a): the MN names the AP of the LMA it does not use now."""
        world = self.world
        serving = world.bmag.mobiles[mobile.spec.identifier].serving_lma
        mobile.handovers_started += 1
        mobile.node.report_new_ap(
            world.ap_towards(world.other_lma(serving).address), mobile.handovers_started
        )

    def _handover_done(self, result: HandoverResult) -> None:
        mobile = self.in_flight.get(result.mn_id)
        if mobile is None:
            return
        self.result.handovers += 1
        self.result.outcomes[result.outcome.value] = (
            self.result.outcomes.get(result.outcome.value, 0) + 1
        )
        if result.completed:
            self.result.completed += 1
        else:
            self.result.failed += 1
        if self.on_handover is not None:
            self.on_handover(result)
        if result.completed and self._traffic_packets:
            self.world.scheduler.after(self._traffic_delay, self._send_data, mobile, result)
        elif self.world.bmag.mobiles[result.mn_id].registration is None:
            self._next(mobile)
        else:
            mobile.recovering = True

    def _registration_done(self, result: RegistrationResult) -> None:
        # Only the recovery after a failed (i) holds the MN back; a refresh does not.
        mobile = self.in_flight.get(result.mn_id)
        if mobile is not None and mobile.recovering:
            mobile.recovering = False
            self._next(mobile)

    def _send_data(self, mobile: _Mobile, result: HandoverResult) -> None:
        scheduler = self.world.scheduler
        # Should an answer never come back, the MN still moves on after this long.
        deadline = scheduler.after(
            self._traffic_packets * self._traffic_interval + DATA_TIMEOUT_US, self._next, mobile
        )

        def answered() -> None:
            deadline.cancel()
            self._next(mobile)

        self.world.cn.start_flow(
            mobile.spec.address,
            Trace("j", result.mn_id, result.handover),
            count=self._traffic_packets,
            interval=self._traffic_interval,
            on_done=answered,
        )

    def _next(self, mobile: _Mobile) -> None:
        if mobile.handovers_started < self.handovers:
            self.world.scheduler.after(self._interval, self._report, mobile)
        else:
            self.in_flight.pop(mobile.spec.identifier, None)
            self.world.leave(mobile.node, mobile.spec)
