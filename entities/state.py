"""The tables the entities keep, as plain inspectable records.

Binding cache entries and binding update list entries follow RFC 5213; the
policy profile is the draft's extended profile of section 4.1 (LMAA and the
optional PLMAA); the tunnel interface table and the policy-based route table
are those of the draft's Appendix A.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .clock import MICROSECONDS_PER_SECOND
from .context import MobileContext
from .packets import IPv6Address, IPv6Network, Signal, Trace

ENCAPSULATION_IPV6_IN_IPV6 = "IPv6-in-IPv6"

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class TunnelInterface:
    """A row of Appendix A's tunnel interface table: name, endpoints, encapsulation."""

    name: str
    local: IPv6Address
    remote: IPv6Address
    encapsulation: str = ENCAPSULATION_IPV6_IN_IPV6


class TunnelTable:
    """Tunnel interfaces by remote endpoint, named Tunnel0, Tunnel1, ... in creation order.

    RFC 5213 shares one tunnel between a MAG and an LMA among all MNs, so a
    tunnel is made the first time a remote is needed and kept; ``on_new`` is
    told of each new one (a live data plane creates the interface).
    """

    def __init__(
        self,
        local: IPv6Address,
        on_new: Callable[[TunnelInterface], None] | None = None,
    ) -> None:
        self.local = local
        self.on_new = on_new
        self.by_remote: dict[IPv6Address, TunnelInterface] = {}
        self.by_name: dict[str, TunnelInterface] = {}

    def to(self, remote: IPv6Address) -> TunnelInterface:
        """The tunnel to ``remote``, set up now if there is none."""
        tunnel = self.by_remote.get(remote)
        if tunnel is None:
            tunnel = TunnelInterface(f"Tunnel{len(self.by_remote)}", self.local, remote)
            self.by_remote[remote] = tunnel
            self.by_name[tunnel.name] = tunnel
            if self.on_new is not None:
                self.on_new(tunnel)
        return tunnel

    def get(self, remote: IPv6Address) -> TunnelInterface | None:
        return self.by_remote.get(remote)

    def rows(self) -> list[TunnelInterface]:
        return list(self.by_remote.values())


class BindingState(enum.Enum):
    """Where a binding cache entry stands in the handover."""

    #: Registered by a PBU and answered with a successful PBA: the LMA serves the MN.
    REGISTERED = "registered"
    #: NLMA: made from the PLMA's context at step (d), waiting for the bMAG's PBU.
    TRANSFERRED = "transferred"
    #: NLMA: the PBU of step (f) arrived, waiting for the policy store's Update_Ack.
    UPDATING = "updating"
    #: PLMA: the NLMA accepted the context (step (d)); traffic goes through the LMA tunnel.
    HANDED_OVER = "handed over"


@dataclass(slots=True)
class BindingCacheEntry:
    """An LMA's binding cache entry (RFC 5213 5.1) for one MN, extended for the handover.

    ``proxy_coa`` is the MAG serving the MN; ``previous_lma`` (at the NLMA)
    is the PLMA that handed the context over; ``next_lma`` (at the PLMA) is
    where the context went. ``lifetime`` is in seconds from
    ``registered_at`` (virtual microseconds).
    """

    context: MobileContext
    proxy_coa: IPv6Address
    lifetime: int
    registered_at: int
    state: BindingState = BindingState.REGISTERED
    previous_lma: IPv6Address | None = None
    next_lma: IPv6Address | None = None
    last_pbu_sequence: int | None = None

    def remaining_lifetime(self, now: int) -> int:
        """Seconds left, rounded down to the 4-second unit the wire carries."""
        left = self.lifetime - (now - self.registered_at) // MICROSECONDS_PER_SECOND
        return max(0, left - left % 4)


@dataclass(slots=True)
class BindingUpdateListEntry:
    """The bMAG's binding update list entry (RFC 5213 6.1) for one MN."""

    lma: IPv6Address
    sequence: int
    lifetime: int
    registered_at: int


@dataclass(slots=True)
class PolicyProfile:
    """The MN's policy profile in the remote policy store (draft 4.1).

    Mandatory: the MN ID and the LMAA, the address of the LMA serving the
    MN now (the NLMAA after a handover). Optional, added by the draft: the
    PLMAA, the address of the previous LMA.
    """

    mn_id: str
    lmaa: IPv6Address
    plmaa: IPv6Address | None = None
    prefixes: tuple[IPv6Network, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyRoute:
    """The bMAG's policy-based route for one MN (Appendix A).

    Packets from the MN, matched by its MAC address or source prefix, go to
    ``interface`` whatever their destination (``_ANY_DESTINATION_``), and
    locally connected destinations too: a PMIPv6 MAG does not route locally
    by default (RFC 5213 6.10.3).
    """

    source_mac: bytes
    source_prefixes: tuple[IPv6Network, ...]
    interface: str
    destination: str = "_ANY_DESTINATION_"


class PrefixTable(Generic[V]):
    """Longest-prefix-match routes from IPv6 prefixes to ``V``.

    Lookups try each prefix length in use, longest first: MNs' prefixes
    share one or two lengths, so a lookup is a dictionary probe or two.
    ``routes`` is the table as people read it; the probes go to integer
    keys, as building an IPv6Network per packet would cost more than the rest.
    """

    def __init__(self) -> None:
        self.routes: dict[IPv6Network, V] = {}
        self._by_bits: dict[tuple[int, int], V] = {}
        self._masks: list[tuple[int, int]] = []

    def add(self, prefix: IPv6Network, value: V) -> None:
        self.routes[prefix] = value
        self._by_bits[(int(prefix.network_address), prefix.prefixlen)] = value
        lengths = {length for _, length in self._masks} | {prefix.prefixlen}
        self._masks = [(((1 << n) - 1) << (128 - n), n) for n in sorted(lengths, reverse=True)]

    def remove(self, prefix: IPv6Network) -> None:
        self.routes.pop(prefix, None)
        self._by_bits.pop((int(prefix.network_address), prefix.prefixlen), None)

    def lookup(self, address: IPv6Address) -> V | None:
        value = int(address)
        for mask, length in self._masks:
            found = self._by_bits.get((value & mask, length))
            if found is not None:
                return found
        return None

    def __len__(self) -> int:
        return len(self.routes)


@dataclass(slots=True)
class Answer:
    """A response as sent, kept to be sent again if its request comes again."""

    peer: IPv6Address
    request_sequence: int
    response: Signal
    trace: Trace | None
    resent: int = 0


class AnswerCache:
    """The last response per MN and request kind (docs/wire-format.md 7, last note).

    A responder that gets a request whose Sequence Number it already
    answered sends the same response again, rather than acting twice.
    ``limit``, when set, is the most MNs it keeps answers for: the oldest
    MN's answers go first, so requests for ever new MNs cannot grow it.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self._by_mn: dict[str, dict[str, Answer]] = {}

    def remember(
        self,
        mn_id: str,
        request: str,
        peer: IPv6Address,
        sequence: int,
        response: Signal,
        trace: Trace | None,
    ) -> None:
        answers = self._by_mn.get(mn_id)
        if answers is None:
            if self.limit is not None and len(self._by_mn) >= self.limit:
                del self._by_mn[next(iter(self._by_mn))]
            answers = self._by_mn[mn_id] = {}
        answers[request] = Answer(peer, sequence, response, trace)

    def lookup(self, mn_id: str, request: str, peer: IPv6Address, sequence: int) -> Answer | None:
        answer = self._by_mn.get(mn_id, {}).get(request)
        if answer is None or answer.peer != peer or answer.request_sequence != sequence:
            return None
        return answer

    def forget(self, mn_id: str) -> None:
        self._by_mn.pop(mn_id, None)

    def __len__(self) -> int:
        return len(self._by_mn)
