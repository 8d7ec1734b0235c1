"""The entities' :class:`~lmaho_entities.Network` on a raw IPv6 socket of protocol 135.

Signals are encoded and decoded by :mod:`lmaho_wire` (through
:class:`lmaho_entities.Signal`); the kernel computes the Mobility Header
checksum of what is sent and drops what arrives with a wrong one
(``IPV6_CHECKSUM`` at offset 4). The socket is bound to the agent's
address, so the kernel picks that address as the source and hands the
socket only packets sent to it.

Only signalling travels here: in a live run the kernel forwards the MNs'
data through the tunnels and routes the data plane sets up, so the
entities' own forwarding (which the simulated run uses) never sees a packet.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable, Collection
from ipaddress import IPv6Address

from lmaho_entities import STEP_OF_MESSAGE, ApReport, Node, Packet, Signal
from lmaho_wire import decode
from lmaho_wire.packet import IPPROTO_MH

from .events import EventLog
from .sockets import raw_socket, source_of

#: Mobility Header checksum offset (RFC 6275 6.1.1) for IPV6_CHECKSUM.
MH_CHECKSUM_OFFSET = 4
#: Packets read per wake-up before the loop looks at its other sockets.
READ_BATCH = 64


class LiveNetwork:
    """Sends the entity's signals to their destinations and delivers what arrives from peers.

    ``peers`` are the addresses signalling is accepted from; anything else
    is counted (``dropped-not-a-peer``), reported rate-limited and dropped.
    ``lose_step``, when set, drops the first copy of each message of that
    step this agent sends (a fault for tests: the retransmission follows).
    ``before_delivery`` runs before each packet reaches the entity (the
    agent moves the clock to the present there).
    """

    def __init__(
        self,
        address: IPv6Address,
        peers: Collection[IPv6Address],
        events: EventLog,
        counters: Counter[str],
        *,
        lose_step: str | None = None,
        before_delivery: Callable[[], object] = lambda: None,
    ) -> None:
        self.address = address
        self.peers = frozenset(peers)
        self.events = events
        self.counters = counters
        self.lose_step = lose_step
        self.before_delivery = before_delivery
        self.node: Node | None = None
        self._lost: set[tuple[str, str | None]] = set()
        self.sock = raw_socket(
            IPPROTO_MH,
            address,
            [(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, MH_CHECKSUM_OFFSET)],
        )

    def close(self) -> None:
        self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    # --- the Network protocol ----------------------------------------------------------

    def send(self, sender: str, next_hop: IPv6Address, packet: Packet) -> None:
        signal = packet.payload
        if not isinstance(signal, Signal):
            # The entities forward data only when a simulated network hands them data.
            self.counters["errors"] += 1
            self.events.emit("error", message=f"{sender} tried to send data to {packet.dst}")
            return
        if self._lose(signal):
            self.events.emit(
                "lost", message=signal.message, peer=str(packet.dst), mn_id=signal.mn_identifier
            )
            return
        data = signal.encode(packet.src.packed, packet.dst.packed)
        try:
            self.sock.sendto(data, (str(packet.dst), 0))
        except OSError as e:
            self.counters["errors"] += 1
            self.events.emit("error", message=f"sending {signal.message} to {packet.dst}: {e}")
            return
        self.counters["sent"] += 1
        self._log("sent", signal, packet.dst)

    def report(self, sender: str, next_hop: IPv6Address, report: ApReport) -> None:
        # Step (a) reaches a live bMAG through its control socket, never from an entity.
        raise NotImplementedError("link-layer reports are delivered by the control socket")

    # --- receiving --------------------------------------------------------------------------

    def on_readable(self) -> None:
        for _ in range(READ_BATCH):
            try:
                data, source = self.sock.recvfrom(65535)
            except BlockingIOError:
                return
            except OSError as e:
                self.counters["errors"] += 1
                self.events.emit("error", message=f"receiving: {e}")
                return
            self._receive(data, source_of(source))

    def _receive(self, data: bytes, src: IPv6Address) -> None:
        if src not in self.peers:
            self.counters["dropped-not-a-peer"] += 1
            self.events.dropped("not-a-peer", str(src))
            return
        try:
            signal = Signal.from_message(decode(data, src, self.address, strict=True))
        except Exception:
            self.counters["malformed"] += 1
            self.events.dropped("malformed", str(src))
            return
        self.counters["received"] += 1
        self._log("received", signal, src)
        assert self.node is not None
        self.before_delivery()
        try:
            self.node.receive(Packet(src, self.address, signal), "live")
        except Exception as e:
            self.counters["errors"] += 1
            self.events.emit(
                "error", message=f"{signal.message} from {src}: {type(e).__name__}: {e}"
            )

    def _lose(self, signal: Signal) -> bool:
        if self.lose_step is None or STEP_OF_MESSAGE.get(signal.message) != self.lose_step:
            return False
        # Copies alternate: the first of each is lost, its retransmission goes out.
        key = (signal.message, signal.mn_identifier)
        if key in self._lost:
            self._lost.discard(key)
            return False
        self._lost.add(key)
        return True

    def _log(self, event: str, signal: Signal, peer: IPv6Address) -> None:
        self.events.emit(
            event,
            message=signal.message,
            peer=str(peer),
            sequence=signal.sequence,
            mn_id=signal.mn_identifier,
            status=signal.status,
        )
