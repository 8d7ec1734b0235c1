"""The two hosts of the reference network: the mobile node and the correspondent node.

The CN sends data to an MN (downlink, step (j)) as ICMPv6 Echo Requests or
UDP datagrams; the MN answers each (uplink, step (k)) with an Echo Reply or
the datagram sent back. Neither knows about mobility: the CN routes the MN's
prefix to its topological anchor, the MN sends everything to its default
router, the bMAG. The MN also makes the link-layer report of step (a).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from lmaho_wire import Option

from .clock import Scheduler, Timer
from .network import ApReport, Network, Node
from .packets import (
    ICMPV6_ECHO_REQUEST,
    Datagram,
    IPv6Address,
    IPv6Network,
    Packet,
    Trace,
    icmpv6_echo,
    parse_echo,
    parse_udp,
    traced,
    udp_datagram,
)
from .state import PrefixTable


class DataProtocol(enum.Enum):
    """What the data plane of steps (j) and (k) carries."""

    ICMPV6 = "icmpv6"
    UDP = "udp"


class MobileNode(Node):
    """An MN: ``address`` is in its home network prefix, ``gateway`` the bMAG's link-local."""

    def __init__(
        self,
        name: str,
        address: IPv6Address,
        scheduler: Scheduler,
        network: Network,
        *,
        identifier: str,
        mac: bytes,
        gateway: IPv6Address,
    ) -> None:
        super().__init__(name, address, scheduler, network)
        self.identifier = identifier
        self.mac = mac
        self.gateway = gateway

    def report_new_ap(self, new_ap: Option, handover: int) -> None:
        """Step (a): tell the MAG which AP the MN is about to move to."""
        self.network.report(self.name, self.gateway, ApReport(self.identifier, new_ap, handover))

    def receive(self, packet: Packet, link: str) -> None:
        data = packet.payload
        if packet.dst != self.address or not isinstance(data, Datagram):
            return
        answer: Datagram | None = None
        label = ""
        echo = parse_echo(data)
        if echo is not None and echo[0] == ICMPV6_ECHO_REQUEST:
            _, identifier, sequence, payload = echo
            answer = icmpv6_echo(
                self.address,
                packet.src,
                reply=True,
                identifier=identifier,
                sequence=sequence,
                data=payload,
            )
            label = f"echo reply {sequence}"
        udp = parse_udp(data)
        if udp is not None:
            src_port, dst_port, payload = udp
            answer = udp_datagram(
                self.address, packet.src, src_port=dst_port, dst_port=src_port, data=payload
            )
            label = f"UDP reply {int.from_bytes(payload[:4], 'big')}"
        if answer is None:
            return
        trace = traced(packet.trace, "k", label)
        self.send(Packet(self.address, packet.src, answer, trace=trace), self.gateway)


@dataclass(slots=True)
class Flow:
    """Data the CN sends one MN after one handover, and how many answers came back."""

    mn_address: IPv6Address
    trace: Trace
    remaining: int
    expected: int
    answered: int = 0
    on_done: Callable[[], None] | None = None
    timer: Timer | None = None


class CorrespondentNode(Node):
    """The CN: sends downlink data to MNs and counts their answers.

    ``routes`` maps each MN prefix to the next hop towards its topological
    anchor (the LMA the prefix belongs to), as the Internet's routing would.
    """

    def __init__(
        self,
        name: str,
        address: IPv6Address,
        scheduler: Scheduler,
        network: Network,
        *,
        protocol: DataProtocol,
        payload: bytes,
        ports: tuple[int, int],
    ) -> None:
        super().__init__(name, address, scheduler, network)
        self.protocol = protocol
        self.payload = payload
        self.cn_port, self.mn_port = ports
        self.routes: PrefixTable[IPv6Address] = PrefixTable()
        self.flows: dict[IPv6Address, Flow] = {}

    def add_route(self, prefix: IPv6Network, next_hop: IPv6Address) -> None:
        self.routes.add(prefix, next_hop)

    def forget_route(self, prefix: IPv6Network) -> None:
        self.routes.remove(prefix)

    def start_flow(
        self,
        mn_address: IPv6Address,
        trace: Trace,
        *,
        count: int,
        interval: int,
        on_done: Callable[[], None] | None = None,
    ) -> Flow:
        """Send ``count`` packets to ``mn_address``, ``interval`` microseconds apart.

        ``on_done`` runs when every packet has been answered.
        """
        flow = Flow(mn_address, trace, count, count, on_done=on_done)
        self.flows[mn_address] = flow
        self._send_next(flow, interval)
        return flow

    def stop_flow(self, mn_address: IPv6Address) -> None:
        flow = self.flows.pop(mn_address, None)
        if flow is not None and flow.timer is not None:
            flow.timer.cancel()

    def _send_next(self, flow: Flow, interval: int) -> None:
        number = flow.expected - flow.remaining + 1
        flow.remaining -= 1
        if self.protocol is DataProtocol.ICMPV6:
            data = icmpv6_echo(
                self.address,
                flow.mn_address,
                reply=False,
                identifier=flow.trace.handover,
                sequence=number,
                data=self.payload,
            )
            label = f"echo request {number}"
        else:
            data = udp_datagram(
                self.address,
                flow.mn_address,
                src_port=self.cn_port,
                dst_port=self.mn_port,
                # The packet's number leads the data, so the MN's echo can be matched.
                data=number.to_bytes(4, "big") + self.payload[4:],
            )
            label = f"UDP {number}"
        next_hop = self.routes.lookup(flow.mn_address)
        if next_hop is not None:
            trace = traced(flow.trace, "j", label)
            self.send(Packet(self.address, flow.mn_address, data, trace=trace), next_hop)
        flow.timer = (
            self.scheduler.after(interval, self._send_next, flow, interval)
            if flow.remaining
            else None
        )

    def receive(self, packet: Packet, link: str) -> None:
        flow = self.flows.get(packet.src)
        if flow is None or packet.dst != self.address:
            return
        flow.answered += 1
        if flow.answered >= flow.expected:
            del self.flows[packet.src]
            if flow.on_done is not None:
                flow.on_done()
