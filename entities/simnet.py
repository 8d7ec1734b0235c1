"""An in-process network of point-to-point Ethernet links on the virtual clock.

Each link joins two nodes, with one MAC address at each end and a one-way
delay (varied by a seeded random jitter). Sending puts the packet on the
link now and delivers it to the neighbour a delay later. When a frame sink
is attached, every transmission is also encoded to its Ethernet frame and
handed to the sink at the moment it leaves the sender, which is what a
capture taken on all links at once would record. A loss rule can drop a
packet before it is on the wire (it then reaches neither the sink nor the
neighbour).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lmaho_wire.packet import ETHERTYPE_IPV6, ethernet_header

from .clock import Scheduler
from .network import ApReport, Node
from .packets import IPv6Address, Packet, encode_packet


@dataclass(frozen=True, slots=True)
class Hop:
    """One direction of one link: who sends, who receives, the frame header, the delay."""

    link: str
    sender: Node
    receiver: Node
    header: bytes
    delay: int


@dataclass(slots=True)
class Transmission:
    """One packet leaving one node on one link: what a capture on that link records."""

    time: int
    frame: bytes
    packet: Packet
    hop: Hop


FrameSink = Callable[[Transmission], None]
#: ``loss(packet, hop)`` is True for a packet the link must lose.
LossRule = Callable[[Packet, Hop], bool]


class SimulatedNetwork:
    """Links between nodes, with neighbour resolution from next-hop address to link.

    ``jitter`` is the largest relative change of a hop's delay: 0.1 makes
    each delay vary uniformly within +-10 %, drawn from ``rng`` so that a
    seed reproduces the run.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        rng: random.Random | None = None,
        jitter: float = 0.0,
        sink: FrameSink | None = None,
        loss: LossRule | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.rng = rng or random.Random(0)
        self.jitter = jitter
        self.sink = sink
        self.loss = loss
        self.nodes: dict[str, Node] = {}
        self.lost = 0
        self._hops: dict[tuple[str, IPv6Address], Hop] = {}
        self._keys_of: dict[str, list[tuple[str, IPv6Address]]] = {}

    def add(self, node: Node) -> Node:
        if node.name in self.nodes:
            raise ValueError(f"there is already a node named {node.name!r}")
        self.nodes[node.name] = node
        return node

    def remove(self, name: str) -> None:
        """Take a node and all its links away."""
        self.nodes.pop(name, None)
        for key in self._keys_of.pop(name, []):
            hop = self._hops.pop(key, None)
            if hop is not None:
                other = hop.receiver.name if hop.sender.name == name else hop.sender.name
                keys = self._keys_of.get(other)
                if keys is not None and key in keys:
                    keys.remove(key)

    def connect(
        self,
        link: str,
        a: Node,
        a_mac: bytes,
        b: Node,
        b_mac: bytes,
        *,
        delay: int,
        a_addresses: Iterable[IPv6Address] | None = None,
        b_addresses: Iterable[IPv6Address] | None = None,
    ) -> None:
        """Join ``a`` and ``b`` by ``link``; each reaches the other at its addresses.

        ``a_addresses`` are the addresses of ``a`` its neighbour resolves to
        this link (default: its global address); likewise ``b_addresses``.
        """
        forward = Hop(link, a, b, ethernet_header(b_mac, a_mac, ETHERTYPE_IPV6), delay)
        backward = Hop(link, b, a, ethernet_header(a_mac, b_mac, ETHERTYPE_IPV6), delay)
        for address in b_addresses or (b.address,):
            self._add_hop((a.name, address), forward)
        for address in a_addresses or (a.address,):
            self._add_hop((b.name, address), backward)

    def _add_hop(self, key: tuple[str, IPv6Address], hop: Hop) -> None:
        self._hops[key] = hop
        self._keys_of.setdefault(hop.sender.name, []).append(key)
        self._keys_of.setdefault(hop.receiver.name, []).append(key)

    def hop(self, sender: str, next_hop: IPv6Address) -> Hop:
        try:
            return self._hops[(sender, next_hop)]
        except KeyError:
            raise LookupError(f"{sender} has no link to a neighbour at {next_hop}") from None

    def _delay(self, hop: Hop) -> int:
        if not self.jitter:
            return hop.delay
        return max(0, hop.delay + round(hop.delay * self.jitter * (2 * self.rng.random() - 1)))

    def send(self, sender: str, next_hop: IPv6Address, packet: Packet) -> None:
        hop = self.hop(sender, next_hop)
        if self.loss is not None and self.loss(packet, hop):
            self.lost += 1
            return
        if self.sink is not None:
            self.sink(
                Transmission(self.scheduler.now, hop.header + encode_packet(packet), packet, hop)
            )
        self.scheduler.after(self._delay(hop), hop.receiver.receive, packet, hop.link)

    def report(self, sender: str, next_hop: IPv6Address, report: ApReport) -> None:
        # Link-layer signalling (step (a)): it takes the link's time but is no IPv6 frame.
        hop = self.hop(sender, next_hop)
        self.scheduler.after(self._delay(hop), hop.receiver.on_report, report, hop.link)
