"""The remote policy store: the MNs' policy profiles, extended by the draft's section 4.1.

On the NLMA's Update (g) it sets the profile's LMAA to the NLMA and its
PLMAA to the previous LMA, and answers with Update_Ack (h), which names the
LMAA the profile holds afterwards.
"""

from __future__ import annotations

import dataclasses
from collections.abc import MutableMapping

from lmaho_wire.schema import HANDOVER_STATUS

from .clock import Scheduler
from .context import address_of, lma_address_option
from .network import Network, Node
from .packets import IPv6Address, Packet, Signal, answering_step, options_tuple
from .state import AnswerCache, PolicyProfile


class PolicyStore(Node):
    """The remote policy store; ``profiles`` maps MN ID to :class:`PolicyProfile`.

    ``fail_updates``, when set, is the Status every Update is answered with
    instead of changing the profile (the policy-update-fails variant).
    ``profiles`` is where profiles live: a dict by default, a database in a
    live runtime. A changed profile is stored (``profiles[mn_id] = ...``)
    before its Update_Ack is sent, so a database commits it first.
    ``max_mobiles``, when set, bounds the answers remembered.
    """

    def __init__(
        self,
        name: str,
        address: IPv6Address,
        scheduler: Scheduler,
        network: Network,
        *,
        fail_updates: int | None = None,
        profiles: MutableMapping[str, PolicyProfile] | None = None,
        max_mobiles: int | None = None,
    ) -> None:
        super().__init__(name, address, scheduler, network)
        self.fail_updates = fail_updates
        self.profiles: MutableMapping[str, PolicyProfile] = {} if profiles is None else profiles
        self.answers = AnswerCache(max_mobiles)

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
            trace = answering_step(packet.trace, "g", "h")
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
            previous = update.option("previous_lma_address")
            profile = dataclasses.replace(
                profile,
                lmaa=address_of(lma),
                plmaa=None if previous is None else address_of(previous),
                prefixes=update.prefixes or profile.prefixes,
            )
            self.profiles[mn_id] = profile
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
        trace = answering_step(packet.trace, "g", "h")
        self.answers.remember(mn_id, "Update", packet.src, update.sequence, ack, trace)
        self.send(Packet(self.address, packet.src, ack, trace=trace))
