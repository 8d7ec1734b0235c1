"""The remote policy store: the MNs' policy profiles, extended by the draft's section 4.1.

On the NLMA's Update (g) it sets the profile's LMAA to the NLMA and its
PLMAA to the previous LMA, and answers with Update_Ack (h), which names the
LMAA the profile holds afterwards.
"""

from __future__ import annotations

from lmaho_wire.schema import HANDOVER_STATUS

from .clock import Scheduler
from .context import address_of, lma_address_option
from .network import Network, Node
from .packets import IPv6Address, Packet, Signal, answering, options_tuple
from .state import AnswerCache, PolicyProfile


class PolicyStore(Node):
    """The remote policy store; ``profiles`` maps MN ID to :class:`PolicyProfile`.

    ``fail_updates``, when set, is the Status every Update is answered with
    instead of changing the profile (the policy-update-fails variant).
    """

    def __init__(
        self,
        name: str,
        address: IPv6Address,
        scheduler: Scheduler,
        network: Network,
        *,
        fail_updates: int | None = None,
    ) -> None:
        super().__init__(name, address, scheduler, network)
        self.fail_updates = fail_updates
        self.profiles: dict[str, PolicyProfile] = {}
        self.answers = AnswerCache()

    def add_profile(self, profile: PolicyProfile) -> None:
        self.profiles[profile.mn_id] = profile

    def forget(self, mn_id: str) -> None:
        self.profiles.pop(mn_id, None)
        self.answers.forget(mn_id)

    def receive(self, packet: Packet, link: str) -> None:
        update = packet.payload
        if not isinstance(update, Signal) or update.message != "Update":
            return
        mn_id = update.mn_identifier
        if mn_id is None or packet.dst != self.address:
            return
        answer = self.answers.lookup(mn_id, "Update", packet.src, update.sequence)
        if answer is not None:
            answer.resent += 1
            trace = answering(packet.trace, "h")
            self.send(Packet(self.address, packet.src, answer.response, trace=trace))
            return
        profile = self.profiles.get(mn_id)
        lma = update.option("lma_address")
        if profile is None:
            status = HANDOVER_STATUS["UNKNOWN_MOBILE_NODE"]
        elif lma is None:
            status = HANDOVER_STATUS["CONTEXT_INCOMPLETE"]
        elif self.fail_updates is not None:
            status = self.fail_updates
        else:
            status = 0
            profile.lmaa = address_of(lma)
            previous = update.option("previous_lma_address")
            profile.plmaa = None if previous is None else address_of(previous)
            if update.prefixes:
                profile.prefixes = update.prefixes
        ack = Signal(
            "Update_Ack",
            update.sequence,
            options_tuple(
                update.option("mn_identifier"),
                None if profile is None else lma_address_option(profile.lmaa),
            ),
            lifetime=update.lifetime,
            status=status,
        )
        trace = answering(packet.trace, "h")
        self.answers.remember(mn_id, "Update", packet.src, update.sequence, ack, trace)
        self.send(Packet(self.address, packet.src, ack, trace=trace))
