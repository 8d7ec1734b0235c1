"""Raw IPv6 sockets as the agent uses them: bound to its address, non-blocking, deep buffers."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from ipaddress import IPv6Address

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
#: Receive buffer: a burst (of signalling, of tunnelled data, of garbage) waits here
#: instead of being dropped by the kernel.
RECEIVE_BUFFER = 4 << 20


def raw_socket(
    protocol: int, address: IPv6Address, options: Iterable[tuple[int, int, int]] = ()
) -> socket.socket:
    """A raw IPv6 socket of ``protocol`` bound to ``address``, with ``options`` set first.

    Bound, the kernel sends from ``address`` and hands the socket only packets
    sent to it. OSError as the kernel gives it (EADDRNOTAVAIL: the address is
    not configured here; EPERM: no CAP_NET_RAW).
    """
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, protocol)
    try:
        for level, name, value in options:
            sock.setsockopt(level, name, value)
        # Root may exceed net.core.rmem_max (SO_RCVBUFFORCE, Linux); others get what they get.
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((str(address), 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def source_of(peer: tuple[object, ...]) -> IPv6Address:
    """The sender's address in a ``recvfrom`` result (a zone, if any, dropped)."""
    return IPv6Address(str(peer[0]).split("%")[0])
