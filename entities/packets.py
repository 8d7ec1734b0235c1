"""What the entities exchange: IPv6 packets carrying a signal, a tunnelled packet or data.

The entities work at the decoded level: a :class:`Signal` is a Mobility
Header message as fields and ready-built :class:`lmaho_wire.Option` objects,
a :class:`Datagram` an upper-layer payload (UDP, ICMPv6) with its checksum
already right, and a :class:`Packet` the IPv6 header around either, or around
another Packet (IPv6-in-IPv6). :func:`encode_packet` and
:func:`decode_packet` convert to and from the bytes on the wire with
:mod:`lmaho_wire`; a transport calls them, an entity never needs to.

Options are immutable, so an entity forwards the Option objects it received
(the MN Identifier of an LMA_HO_Req goes into the LMA_HO_Init as the same
object) and builds each MN's options once.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Union

from lmaho_procedure import STEP_BY_MESSAGE
from lmaho_wire import Message, Option, build, decode
from lmaho_wire.checksum import upper_layer_checksum
from lmaho_wire.errors import MalformedPacket
from lmaho_wire.packet import IPPROTO_IPV6, IPPROTO_MH, IPV6_HEADER_LENGTH, ipv6_header
from lmaho_wire.registry import current_schema
from lmaho_wire.schema import is_success

IPv6Address = ipaddress.IPv6Address
IPv6Network = ipaddress.IPv6Network

IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129
DEFAULT_HOP_LIMIT = 64

#: Which step of the draft's section 4.2 sends each message (docs/wire-format.md 7).
STEP_OF_MESSAGE: dict[str, str] = {name: spec.letter for name, spec in STEP_BY_MESSAGE.items()}
#: The messages the schema declares as responses (a PBA by its proxy name).
RESPONSES = frozenset(
    name
    for body in current_schema().messages.values()
    if body.role == "response"
    for name in (body.name, body.proxy_name)
    if name
)


@dataclass(frozen=True, slots=True)
class Trace:
    """Where a packet belongs in the run; never on the wire.

    Like a socket mark, it travels with the packet through the entities so a
    capture comment or a log line can name the draft's step, the MN and the
    handover. ``attempt`` counts copies of an exchange: a request's
    retransmission n has attempt n, and so has the response answering it.
    A transport that reads packets off a real wire has no trace.
    """

    step: str
    mn: str
    handover: int
    attempt: int = 0
    label: str = ""


def traced(trace: Trace | None, step: str, label: str = "") -> Trace | None:
    """The trace of a new packet ``trace``'s packet causes (a new exchange: attempt 0)."""
    return None if trace is None else Trace(step, trace.mn, trace.handover, 0, label)


def answering(trace: Trace | None, step: str) -> Trace | None:
    """The trace of a response to the request traced ``trace`` (same attempt and label)."""
    return (
        None if trace is None else Trace(step, trace.mn, trace.handover, trace.attempt, trace.label)
    )


def answering_step(trace: Trace | None, request_step: str, response_step: str) -> Trace | None:
    """The trace of a response: step ``response_step`` when it answers the request of step
    ``request_step``, no step when it answers the same message outside the procedure."""
    step = response_step if trace is not None and trace.step == request_step else ""
    return answering(trace, step)


def retried(trace: Trace | None, attempt: int) -> Trace | None:
    """``trace`` for copy number ``attempt`` of the same request."""
    return None if trace is None else dataclasses.replace(trace, attempt=attempt)


@dataclass(frozen=True, slots=True)
class Signal:
    """One Mobility Header message, decoded: the codec's message name and its fields.

    ``message`` is a name :func:`lmaho_wire.build` knows ("LMA_HO_Req", "PBU",
    ...); ``flags`` are flag letters (a PBU and a PBA carry "P");
    ``lifetime`` is in seconds (a multiple of 4); ``status`` is set on
    responses only. Padding is not an option here: the encoder adds it.
    """

    message: str
    sequence: int
    options: tuple[Option, ...]
    flags: frozenset[str] = frozenset()
    lifetime: int = 0
    status: int | None = None

    @property
    def step(self) -> str:
        """The draft's step letter that sends this message ("" for other messages)."""
        return STEP_OF_MESSAGE.get(self.message, "")

    @property
    def is_response(self) -> bool:
        return self.message in RESPONSES

    @property
    def accepted(self) -> bool:
        """A response whose Status is success."""
        return self.status is not None and is_success(self.status)

    def option(self, key: str) -> Option | None:
        """The first option with schema key ``key``, or None."""
        for opt in self.options:
            if opt.key == key:
                return opt
        return None

    def options_of(self, key: str) -> tuple[Option, ...]:
        return tuple(opt for opt in self.options if opt.key == key)

    @property
    def mn_identifier(self) -> str | None:
        """The MN Identifier as text (an NAI), or None without the option."""
        opt = self.option("mn_identifier")
        return None if opt is None else str(opt.fields["identifier"])

    @property
    def prefixes(self) -> tuple[IPv6Network, ...]:
        return tuple(prefix_of(opt) for opt in self.options_of("home_network_prefix"))

    def encode(self, src: bytes, dst: bytes) -> bytes:
        """The Mobility Header bytes, padded, with the checksum for ``src`` -> ``dst``."""
        fields: dict[str, Any] = {"sequence": self.sequence, "lifetime": self.lifetime}
        if self.flags:
            fields["flags"] = self.flags
        if self.status is not None:
            fields["status"] = self.status
        return build(self.message, options=self.options, src=src, dst=dst, **fields)

    @classmethod
    def from_message(cls, msg: Message) -> Signal:
        """The Signal of a decoded message (padding dropped, option offsets forgotten)."""
        flags = msg.fields.get("flags")
        status = msg.fields.get("status")
        return cls(
            message=msg.name,
            sequence=int(msg.fields.get("sequence", 0)),
            options=tuple(
                dataclasses.replace(o, offset=None) for o in msg.options if not o.is_padding
            ),
            flags=frozenset(flags.names) if flags is not None else frozenset(),
            lifetime=int(msg.fields.get("lifetime", 0)),
            status=None if status is None else int(status),
        )


@dataclass(frozen=True, slots=True)
class Datagram:
    """An upper-layer payload (UDP datagram, ICMPv6 message) with its checksum filled in."""

    protocol: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Packet:
    """An IPv6 packet; its payload is a signal, an inner packet (IPv6-in-IPv6) or data."""

    src: IPv6Address
    dst: IPv6Address
    payload: Union[Signal, Packet, Datagram]  # noqa: UP007 (a forward reference)
    hop_limit: int = DEFAULT_HOP_LIMIT
    trace: Trace | None = field(default=None, compare=False)

    @property
    def next_header(self) -> int:
        payload = self.payload
        if isinstance(payload, Signal):
            return IPPROTO_MH
        if isinstance(payload, Packet):
            return IPPROTO_IPV6
        return payload.protocol

    @property
    def innermost(self) -> Packet:
        """The packet inside all tunnels (this one when not tunnelled)."""
        packet = self
        while isinstance(packet.payload, Packet):
            packet = packet.payload
        return packet

    def forwarded(self) -> Packet:
        """This packet as a router sends it on: Hop Limit one lower (RFC 8200 3)."""
        # Spelled out: dataclasses.replace costs more than the rest of a forwarding hop.
        return Packet(self.src, self.dst, self.payload, self.hop_limit - 1, self.trace)


def encapsulate(inner: Packet, src: IPv6Address, dst: IPv6Address) -> Packet:
    """``inner`` in an IPv6-in-IPv6 tunnel from ``src`` to ``dst`` (RFC 2473)."""
    return Packet(src, dst, inner, DEFAULT_HOP_LIMIT, inner.trace)


def prefix_of(opt: Option) -> IPv6Network:
    """The prefix a Home Network Prefix option carries."""
    return _prefix_of_data(opt.data)


@functools.lru_cache(maxsize=64)
def _prefix_of_data(data: bytes) -> IPv6Network:
    # Keyed by the option's octets (Reserved, Prefix Length, Prefix): the same MN's
    # prefix is read again at each entity, and IPv6Network() is slow. Sized for the
    # MNs in flight at once, so memory stays flat however many MNs a run has.
    return IPv6Network((int.from_bytes(data[2:18], "big"), data[1]), strict=False)


# --- bytes -------------------------------------------------------------------------


def encode_packet(packet: Packet) -> bytes:
    """The IPv6 packet as bytes: header, then the encoded payload."""
    src = packet.src.packed
    dst = packet.dst.packed
    payload = packet.payload
    if isinstance(payload, Signal):
        body, next_header = payload.encode(src, dst), IPPROTO_MH
    elif isinstance(payload, Packet):
        body, next_header = encode_packet(payload), IPPROTO_IPV6
    else:
        body, next_header = payload.data, payload.protocol
    return ipv6_header(src, dst, next_header, len(body), packet.hop_limit) + body


def decode_packet(data: bytes) -> Packet:
    """The Packet in IPv6 bytes (no extension headers); MalformedPacket when it is none.

    The inverse of :func:`encode_packet`: what a transport reading real
    sockets hands to an entity.
    """
    if len(data) < IPV6_HEADER_LENGTH or data[0] >> 4 != 6:
        raise MalformedPacket("not an IPv6 packet", 0)
    payload_length, next_header, hop_limit = struct.unpack_from("!HBB", data, 4)
    src = IPv6Address(data[8:24])
    dst = IPv6Address(data[24:40])
    body = data[IPV6_HEADER_LENGTH : IPV6_HEADER_LENGTH + payload_length]
    payload: Signal | Packet | Datagram
    if next_header == IPPROTO_MH:
        payload = Signal.from_message(decode(body, src, dst, strict=True))
    elif next_header == IPPROTO_IPV6:
        payload = decode_packet(body)
    else:
        payload = Datagram(next_header, body)
    return Packet(src, dst, payload, hop_limit)


# --- upper layers --------------------------------------------------------------------

_ECHO = struct.Struct("!BBHHH")
_UDP = struct.Struct("!HHHH")


def icmpv6_echo(
    src: IPv6Address, dst: IPv6Address, *, reply: bool, identifier: int, sequence: int, data: bytes
) -> Datagram:
    """An ICMPv6 Echo Request or Reply (RFC 4443 4.1, 4.2) with its checksum."""
    kind = ICMPV6_ECHO_REPLY if reply else ICMPV6_ECHO_REQUEST
    message = _ECHO.pack(kind, 0, 0, identifier & 0xFFFF, sequence & 0xFFFF) + data
    checksum = upper_layer_checksum(src.packed, dst.packed, message, IPPROTO_ICMPV6)
    return Datagram(IPPROTO_ICMPV6, message[:2] + checksum.to_bytes(2, "big") + message[4:])


def udp_datagram(
    src: IPv6Address, dst: IPv6Address, *, src_port: int, dst_port: int, data: bytes
) -> Datagram:
    """A UDP datagram (RFC 768) with its checksum, mandatory over IPv6 (RFC 8200 8.1)."""
    length = 8 + len(data)
    datagram = _UDP.pack(src_port, dst_port, length, 0) + data
    checksum = upper_layer_checksum(src.packed, dst.packed, datagram, IPPROTO_UDP)
    # A computed 0 is sent as 0xffff: 0 would mean "no checksum", which IPv6 forbids.
    checksum = checksum or 0xFFFF
    return Datagram(IPPROTO_UDP, datagram[:6] + checksum.to_bytes(2, "big") + data)


def parse_echo(datagram: Datagram) -> tuple[int, int, int, bytes] | None:
    """(type, identifier, sequence, data) of an ICMPv6 echo message, else None."""
    if datagram.protocol != IPPROTO_ICMPV6 or len(datagram.data) < _ECHO.size:
        return None
    kind, _code, _checksum, identifier, sequence = _ECHO.unpack_from(datagram.data)
    if kind not in (ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY):
        return None
    return kind, identifier, sequence, datagram.data[_ECHO.size :]


def parse_udp(datagram: Datagram) -> tuple[int, int, bytes] | None:
    """(source port, destination port, data) of a UDP datagram, else None."""
    if datagram.protocol != IPPROTO_UDP or len(datagram.data) < _UDP.size:
        return None
    src_port, dst_port, _length, _checksum = _UDP.unpack_from(datagram.data)
    return src_port, dst_port, datagram.data[_UDP.size :]


def options_tuple(*groups: Iterable[Option] | Option | None) -> tuple[Option, ...]:
    """Options in order from single options and iterables of them; None is skipped."""
    out: list[Option] = []
    for group in groups:
        if group is None:
            continue
        if isinstance(group, Option):
            out.append(group)
        else:
            out.extend(group)
    return tuple(out)
