"""The network interface the entities talk through, and what every entity shares.

An entity never touches bytes, files or sockets: it hands a :class:`Packet`
and the next hop's address to a :class:`Network`, and the network calls the
neighbour's :meth:`Node.receive` when the packet arrives. The crafting run's
network (:mod:`lmaho_entities.simnet`) delays packets on virtual links and
encodes each to an Ethernet frame for a capture; a live network would write
them to sockets and read the neighbours' packets back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lmaho_procedure import INITIAL_TIMEOUT, MAX_RETRANSMISSIONS
from lmaho_wire import Option

from .clock import Scheduler, Timer
from .packets import IPv6Address, Packet

# The timers of docs/wire-format.md 9, the procedure's: the first timeout,
# doubled on each retransmission; MAX_RETRANSMISSIONS resends after the first copy,
# then the request is abandoned.
INITIAL_TIMEOUT_US = round(INITIAL_TIMEOUT * 1_000_000)


@dataclass(frozen=True, slots=True)
class ApReport:
    """Step (a): the MN names itself and the AP it is about to move to.

    The draft leaves the mechanism to the access link, so this never becomes
    a Mobility Header packet; a transport delivers it out of band.
    """

    mn_id: str
    new_ap: Option
    handover: int


class Network(Protocol):
    """How entities reach their neighbours."""

    def send(self, sender: str, next_hop: IPv6Address, packet: Packet) -> None:
        """Put ``packet`` on the link from node ``sender`` to the neighbour ``next_hop``."""

    def report(self, sender: str, next_hop: IPv6Address, report: ApReport) -> None:
        """Deliver a link-layer report (step (a)) to the neighbour ``next_hop``."""


class Node:
    """Base of every entity: a name, an address, the clock and the network.

    ``address`` is the node's global address (an LMA's LMAA, the bMAG's
    Proxy-CoA). Subclasses implement :meth:`receive`; :meth:`forget` drops
    all state about one MN when a run is done with it.
    """

    def __init__(
        self, name: str, address: IPv6Address, scheduler: Scheduler, network: Network
    ) -> None:
        self.name = name
        self.address = address
        self.scheduler = scheduler
        self.network = network

    def receive(self, packet: Packet, link: str) -> None:
        """A packet arrived on ``link`` (the link's name)."""
        raise NotImplementedError

    def on_report(self, report: ApReport, link: str) -> None:
        """A link-layer report arrived; only a MAG listens to them."""

    def forget(self, mn_id: str) -> None:
        """Drop all state about ``mn_id`` (its timers included)."""

    def send(self, packet: Packet, next_hop: IPv6Address | None = None) -> None:
        self.network.send(self.name, packet.dst if next_hop is None else next_hop, packet)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.address}>"


class SequenceCounters:
    """Sequence Numbers per peer, increasing modulo 2^16 (docs/wire-format.md 3.1)."""

    def __init__(self, first: int = 1) -> None:
        self.first = first & 0xFFFF
        self._last: dict[IPv6Address, int] = {}

    def next(self, peer: IPv6Address) -> int:
        last = self._last.get(peer)
        value = self.first if last is None else (last + 1) & 0xFFFF
        self._last[peer] = value
        return value


def _nothing(*_: object) -> None:
    pass


class Retransmission:
    """One outstanding request, resent until answered (docs/wire-format.md 9).

    ``transmit(attempt)`` sends copy number ``attempt`` (0 is the first);
    after :data:`MAX_RETRANSMISSIONS` unanswered resends ``give_up()`` is
    called. The timeout starts at :data:`INITIAL_TIMEOUT_US` and doubles.
    """

    __slots__ = ("_give_up", "_scheduler", "_timeout", "_timer", "_transmit", "attempt")

    def __init__(
        self,
        scheduler: Scheduler,
        transmit: Callable[[int], None],
        give_up: Callable[[], None],
    ) -> None:
        self._scheduler = scheduler
        self._transmit = transmit
        self._give_up = give_up
        self._timeout = INITIAL_TIMEOUT_US
        self._timer: Timer | None = None
        self.attempt = 0

    def start(self) -> Retransmission:
        self._transmit(0)
        self._timer = self._scheduler.after(self._timeout, self._expired)
        return self

    def stop(self) -> None:
        """The answer came (or the request no longer matters): no more copies."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._forget_callbacks()

    def _forget_callbacks(self) -> None:
        # The callbacks close over the state that holds this object: dropping them
        # breaks the cycle, so a finished handover is freed at once, not by the
        # cyclic garbage collector much later (memory would grow with the run).
        self._transmit = self._give_up = _nothing

    @property
    def active(self) -> bool:
        return self._timer is not None

    def _expired(self) -> None:
        if self.attempt >= MAX_RETRANSMISSIONS:
            self._timer = None
            give_up = self._give_up
            self._forget_callbacks()
            give_up()
            return
        self.attempt += 1
        self._timeout *= 2
        self._transmit(self.attempt)
        self._timer = self._scheduler.after(self._timeout, self._expired)
