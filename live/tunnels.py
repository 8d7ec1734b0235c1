"""Userspace IPv6-in-IPv6 tunnels: a TUN interface per tunnel, one raw socket of protocol 41.

Where the kernel has no ``ip6tnl``, a tunnel is a TUN interface the routes
point at. What the kernel routes into it the relay reads and sends to the
tunnel's remote end through a raw IPv6 socket of protocol 41: the kernel
adds the outer header (agent's address -> remote, Next Header 41), exactly
what a kernel ip6ip6 tunnel puts on the wire (RFC 2473). What arrives on
that socket is the inner packet; the relay writes it into the TUN of the
tunnel whose remote sent it, and the kernel routes it on.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address

from .events import EventLog
from .sockets import raw_socket, source_of

IPPROTO_IPV6 = 41
TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
#: The TUN's MTU: a 1500-octet link less the outer IPv6 header.
TUNNEL_MTU = 1460
READ_BATCH = 64
MAX_PACKET = 65535

Watch = Callable[[int, Callable[[], None]], None]
Unwatch = Callable[[int], None]


@dataclass(slots=True)
class TunDevice:
    """One open TUN interface: its name, file descriptor, remote end and packet counts."""

    name: str
    fd: int
    remote: IPv6Address
    packets_out: int = 0
    packets_in: int = 0


def open_tun(name: str) -> int:
    """Create TUN interface ``name`` (no packet information header); its descriptor.

    The interface lives as long as the descriptor is open: an agent that dies
    leaves no TUN behind.
    """
    fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def _link_scoped_or_multicast(packet: bytes) -> bool:
    """True for what the kernel says on an interface itself (ND, MLD): not tunnel traffic."""
    if len(packet) < 40:
        return True
    src_hi, dst_hi = packet[8:10], packet[24:26]
    return (
        dst_hi[0] == 0xFF or dst_hi == b"\xfe\x80" or src_hi == b"\xfe\x80" or not any(packet[8:24])
    )


class TunnelRelay:
    """Moves packets between the TUN interfaces and the raw protocol-41 socket."""

    def __init__(
        self,
        local: IPv6Address,
        watch: Watch,
        unwatch: Unwatch,
        events: EventLog,
        counters: Counter[str],
    ) -> None:
        self.local = local
        self.watch = watch
        self.unwatch = unwatch
        self.events = events
        self.counters = counters
        self.devices: dict[IPv6Address, TunDevice] = {}
        self.sock = raw_socket(IPPROTO_IPV6, local)
        watch(self.sock.fileno(), self._from_wire)

    def add(self, name: str, remote: IPv6Address) -> TunDevice:
        device = TunDevice(name, open_tun(name), remote)
        self.devices[remote] = device
        self.watch(device.fd, lambda: self._from_tun(device))
        return device

    def close(self) -> None:
        for device in self.devices.values():
            self.unwatch(device.fd)
            os.close(device.fd)
        self.devices.clear()
        self.unwatch(self.sock.fileno())
        self.sock.close()

    def _from_tun(self, device: TunDevice) -> None:
        destination = (str(device.remote), 0)
        for _ in range(READ_BATCH):
            try:
                packet = os.read(device.fd, MAX_PACKET)
            except BlockingIOError:
                return
            if _link_scoped_or_multicast(packet):
                continue
            try:
                self.sock.sendto(packet, destination)
            except OSError as e:
                self.counters["errors"] += 1
                self.events.emit("error", message=f"{device.name}: sending to {device.remote}: {e}")
                continue
            device.packets_out += 1
            self.counters["tunnel-packets-out"] += 1

    def _from_wire(self) -> None:
        for _ in range(READ_BATCH):
            try:
                packet, source = self.sock.recvfrom(MAX_PACKET)
            except BlockingIOError:
                return
            remote = source_of(source)
            device = self.devices.get(remote)
            if device is None:
                self.counters["dropped-not-a-tunnel"] += 1
                self.events.dropped("not-a-tunnel", str(remote))
                continue
            try:
                os.write(device.fd, packet)
            except OSError:
                # The kernel refuses what is not an IPv6 packet: a drop, like ip6tnl's.
                self.counters["malformed"] += 1
                continue
            device.packets_in += 1
            self.counters["tunnel-packets-in"] += 1
