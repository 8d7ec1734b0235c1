"""The sending side of ``lmaho replay``: interface checks, the packet socket, pacing, stats.

Frames go out on one AF_PACKET SOCK_RAW socket bound to the interface. On
64-bit little-endian Linux they are handed to the kernel in batches with
``sendmmsg(2)`` (called through ctypes over message headers built once for the
whole capture), so a batch of up to ``batch`` due frames costs one system call
and no per-frame Python work; elsewhere it is one ``send()`` per frame. Pacing
is an absolute schedule from the first frame: a late frame goes out at once and
the delay is not carried over to the next ones.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import math
import os
import signal
import socket
import struct
import sys
import threading
import time
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Literal

from lmaho_wire.errors import LmahoError

from ._replay_frames import LoadedCapture

ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
IFF_UP = 0x1
SIOCGIFFLAGS = 0x8913
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927

DEFAULT_BATCH = 256
# Errors after which nothing more can be sent: stop, report what was sent.
FATAL_ERRNOS = frozenset({errno.ENETDOWN, errno.ENODEV, errno.ENXIO, errno.EBADF})
# Transient "queue full" errors: send the same frame again, like tcpreplay does.
RETRY_ERRNOS = frozenset({errno.ENOBUFS, errno.EAGAIN})
RETRY_GIVE_UP_S = 1.0  # a frame refused this long with ENOBUFS/EAGAIN counts as failed
MAX_SLEEP_S = 0.05  # sleep in slices this long so Ctrl-C is seen promptly
# Paced, the progress callback (a redraw: milliseconds) runs only in a wait this long
# before the next frame, so drawing never makes a frame late; when no wait is that
# long it runs anyway once this stale, and may delay one frame a second.
PROGRESS_ROOM_S = 0.02
PROGRESS_STALE_S = 1.0


class ReplayError(LmahoError):
    """The replay cannot start: bad interface, no privileges, unsupported platform."""


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    index: int
    mac: bytes
    mtu: int
    arptype: int
    up: bool


def _ifreq_ioctl(sock: socket.socket, request: int, name: bytes) -> bytes:
    return fcntl.ioctl(sock.fileno(), request, struct.pack("16s24x", name))


def resolve_interface(name: str) -> Interface:
    """Look the interface up (no privileges needed); ReplayError when it cannot take frames."""
    try:
        index = socket.if_nametoindex(name)
    except (OSError, ValueError):
        raise ReplayError(f"no such interface: {name}") from None
    raw = name.encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            flags = struct.unpack_from("H", _ifreq_ioctl(s, SIOCGIFFLAGS, raw), 16)[0]
            mtu = struct.unpack_from("i", _ifreq_ioctl(s, SIOCGIFMTU, raw), 16)[0]
            hw = _ifreq_ioctl(s, SIOCGIFHWADDR, raw)
        except OSError as e:
            if e.errno == errno.ENODEV:
                raise ReplayError(f"no such interface: {name}") from None
            raise ReplayError(f"cannot query interface {name}: {e.strerror}") from None
    arptype = struct.unpack_from("H", hw, 16)[0]
    iface = Interface(name, index, hw[18:24], mtu, arptype, bool(flags & IFF_UP))
    if arptype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
        raise ReplayError(
            f"interface {name} is not an Ethernet interface (hardware type {arptype}); "
            "replay sends Ethernet frames"
        )
    if not iface.up:
        raise ReplayError(f"interface {name} is down (bring it up: ip link set {name} up)")
    return iface


def open_packet_socket(iface: Interface) -> socket.socket:
    """An AF_PACKET SOCK_RAW socket bound to ``iface`` for sending only.

    Protocol 0 means the socket never receives, so it costs nothing on the way in.
    """
    if not hasattr(socket, "AF_PACKET"):
        raise ReplayError("replay needs Linux AF_PACKET sockets, not available on this system")
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise ReplayError(
            f"cannot open a raw packet socket on {iface.name}: operation not permitted; "
            "replay needs root or the CAP_NET_RAW capability (run it with sudo, or as root)"
        ) from None
    except OSError as e:
        raise ReplayError(f"cannot open a raw packet socket: {e.strerror}") from None
    try:
        sock.bind((iface.name, 0))
    except OSError as e:
        sock.close()
        if e.errno in (errno.ENODEV, errno.ENXIO):
            raise ReplayError(f"no such interface: {iface.name}") from None
        raise ReplayError(f"cannot bind to interface {iface.name}: {e.strerror}") from None
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return sock


# --- senders -------------------------------------------------------------------------------
# ``send_from(pos, n)`` tries frames pos .. pos+n-1 in order and returns
# (how many went out, errno of the next one or 0 when all went out).


class _PlainSender:
    """One ``send()`` per frame."""

    def __init__(self, sock: socket.socket, frames: list[bytes]) -> None:
        self._send = sock.send
        self._frames = frames

    def send_from(self, pos: int, n: int) -> tuple[int, int]:
        send, frames = self._send, self._frames
        k = pos
        try:
            for k in range(pos, pos + n):  # k tells how far it got
                send(frames[k])
        except OSError as e:
            return k - pos, e.errno or errno.EIO
        return n, 0


_MMSGHDR_SIZE = 64  # struct mmsghdr on 64-bit Linux (msghdr 56 + msg_len 4 + padding)
_MMSGHDR_WORDS = _MMSGHDR_SIZE // 8
_IOVEC_WORDS = 2


def sendmmsg_available() -> bool:
    """True where the batch sender's hand-built struct layout is the C one."""
    return (
        sys.platform.startswith("linux")
        and sys.byteorder == "little"
        and struct.calcsize("P") == 8
        and _libc_sendmmsg() is not None
    )


def _libc_sendmmsg() -> Callable[..., int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).sendmmsg
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


class _MmsgSender:
    """``sendmmsg()`` over message headers prepared once for every frame of the capture."""

    def __init__(self, sock: socket.socket, frames: list[bytes]) -> None:
        fn = _libc_sendmmsg()
        assert fn is not None
        self._fn = fn
        self._sock = sock  # keeps the descriptor alive
        self._fd = sock.fileno()
        m = len(frames)
        # All frame bytes in one buffer; iovec i points into it.
        self._data = bytearray(b"".join(frames) or b"\0")
        self._cdata = (ctypes.c_char * len(self._data)).from_buffer(self._data)
        data_addr = ctypes.addressof(self._cdata)
        lengths = array("Q", map(len, frames))
        starts = array("Q", accumulate(lengths, initial=0))
        iov = array("Q", bytes(8 * _IOVEC_WORDS * m))
        iov[0::2] = array("Q", (data_addr + s for s in starts[:m]))
        iov[1::2] = lengths
        iov_addr = iov.buffer_info()[0]
        msgs = array("Q", bytes(_MMSGHDR_SIZE * m))
        # struct msghdr: name, namelen, iov, iovlen, control, controllen, flags; then msg_len.
        msgs[2::_MMSGHDR_WORDS] = array("Q", range(iov_addr, iov_addr + 16 * m, 16))
        msgs[3::_MMSGHDR_WORDS] = array("Q", [1]) * m
        self._iov = iov  # referenced by msgs: must live as long as they do
        self._msgs = msgs
        self._base = msgs.buffer_info()[0]

    def send_from(self, pos: int, n: int) -> tuple[int, int]:
        r = self._fn(self._fd, self._base + pos * _MMSGHDR_SIZE, n, 0)
        if r >= n:
            return n, 0
        if r > 0:
            return r, 0  # stopped early; the caller asks again from there
        return 0, ctypes.get_errno() or errno.EIO


# --- pacing ----------------------------------------------------------------------------------

PacingMode = Literal["multiplier", "pps", "topspeed"]


@dataclass(frozen=True, slots=True)
class Pacing:
    """``multiplier``: capture timing divided by ``value``; ``pps``: ``value`` frames a
    second; ``topspeed``: as fast as the kernel takes them."""

    mode: PacingMode
    value: float = 1.0

    def describe(self) -> str:
        if self.mode == "topspeed":
            return "topspeed"
        if self.mode == "pps":
            return f"{self.value:g} pps"
        return "capture timing" if self.value == 1 else f"capture timing x{self.value:g}"


class _Schedule:
    """When global frame number g (counting across loops) is due, relative to the start."""

    def __init__(self, pacing: Pacing, cap: LoadedCapture) -> None:
        self.mode = pacing.mode
        self.value = pacing.value
        self.rel = cap.rel
        self.m = len(cap.rel)
        self.period = cap.duration

    def due_at(self, g: int) -> float:
        if self.mode == "pps":
            return g / self.value
        k, i = divmod(g, self.m)
        return (k * self.period + self.rel[i]) / self.value

    def due_by(self, g: int, elapsed: float) -> int:
        """How many frames of g's loop, from g on, are due after ``elapsed`` seconds."""
        if self.mode == "topspeed":
            return self.m - g % self.m
        if self.mode == "pps":
            return max(0, math.floor(elapsed * self.value) + 1 - g)
        k, i = divmod(g, self.m)
        return max(0, bisect_right(self.rel, elapsed * self.value - k * self.period) - i)


# --- the replay loop -------------------------------------------------------------------------


@dataclass(slots=True)
class ReplayStats:
    packets: int = 0  # sent
    bytes: int = 0
    failures: int = 0
    retried: int = 0  # sends repeated after ENOBUFS / EAGAIN
    seconds: float = 0.0
    loops: int = 0  # complete passes over the capture
    interrupted: bool = False
    aborted: str | None = None  # why sending stopped early, if it did
    errors: Counter[str] = field(default_factory=Counter)  # failures by errno name

    @property
    def attempted(self) -> int:
        return self.packets + self.failures

    @property
    def pps(self) -> float:
        return self.packets / self.seconds if self.seconds > 0 else 0.0

    @property
    def mbps(self) -> float:
        return self.bytes * 8 / self.seconds / 1e6 if self.seconds > 0 else 0.0


def planned_total(n_frames: int, loops: int, limit: int | None) -> int | None:
    """Frames a replay will try to send; None for forever (``loops=0`` without a limit)."""
    total = n_frames * loops if loops else None
    if limit is not None:
        total = limit if total is None else min(total, limit)
    return total


@contextlib.contextmanager
def _sigint_flag() -> Iterator[list[bool]]:
    """While active, Ctrl-C sets flag[0] instead of raising, so stats stay exact."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: object) -> None:
        flag[0] = True

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, old)


@contextlib.contextmanager
def _fine_timer_slack() -> Iterator[None]:
    """Let sleeps end within microseconds rather than the default 50 µs slack."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        yield
        return
    prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    prctl.restype = ctypes.c_int
    pr_set, pr_get = 29, 30  # PR_SET_TIMERSLACK, PR_GET_TIMERSLACK
    old = prctl(pr_get, 0, 0, 0, 0)
    prctl(pr_set, 1000, 0, 0, 0)
    try:
        yield
    finally:
        if old > 0:
            prctl(pr_set, old, 0, 0, 0)


def replay(
    cap: LoadedCapture,
    sock: socket.socket,
    pacing: Pacing,
    loops: int = 1,
    limit: int | None = None,
    on_progress: Callable[[ReplayStats], None] | None = None,
    batch: int = DEFAULT_BATCH,
    use_sendmmsg: bool = True,
) -> ReplayStats:
    """Send the capture's frames on ``sock``; ``loops=0`` means forever (until ``limit``
    or Ctrl-C). At most ``batch`` due frames go per step: one ``sendmmsg()`` call, or,
    with ``use_sendmmsg=False`` or where it is unavailable, one ``send()`` each.

    Failed frames are counted (by errno) and skipped; an error that ends all sending
    (interface gone or down) stops the replay with ``stats.aborted`` set.
    """
    m = len(cap.frames)
    total = planned_total(m, loops, limit)
    sender: _PlainSender | _MmsgSender
    batch = max(1, batch)
    if use_sendmmsg and sendmmsg_available():
        sender = _MmsgSender(sock, cap.frames)
    else:
        sender = _PlainSender(sock, cap.frames)
    lengths = array("Q", accumulate(map(len, cap.frames), initial=0))
    sched = _Schedule(pacing, cap)
    topspeed = pacing.mode == "topspeed"
    stats = ReplayStats()
    perf = time.perf_counter
    done = 0  # frames tried (sent or failed), across loops
    retry_since = 0.0
    reported_at, reported_done = 0.0, -1  # when on_progress last ran, and at what count
    with _sigint_flag() as interrupted, _fine_timer_slack():
        start = perf()
        while total is None or done < total:
            if interrupted[0]:
                stats.interrupted = True
                break
            i = done % m
            n = min(m - i, batch)
            if total is not None:
                n = min(n, total - done)
            if not topspeed:
                due = sched.due_by(done, perf() - start)
                if due <= 0:
                    wait = start + sched.due_at(done) - perf()
                    if on_progress is not None and wait > PROGRESS_ROOM_S and reported_done < done:
                        stats.seconds = reported_at = perf() - start
                        reported_done = done
                        on_progress(stats)
                        continue  # the wait is shorter now
                    if wait > 0.0002:
                        time.sleep(min(wait - 0.0001, MAX_SLEEP_S))
                    continue
                n = min(n, due)
            sent, err = sender.send_from(i, n)
            if sent:
                stats.packets += sent
                stats.bytes += lengths[i + sent] - lengths[i]
                done += sent
                retry_since = 0.0
            if err:
                if err == errno.EINTR:
                    continue
                if err in RETRY_ERRNOS:
                    stats.retried += 1
                    now = perf()
                    if not retry_since:
                        retry_since = now
                    if now - retry_since < RETRY_GIVE_UP_S:
                        if stats.retried % 64 == 0:
                            time.sleep(0.0001)
                        continue
                retry_since = 0.0
                name = errno.errorcode.get(err, str(err))
                if err in FATAL_ERRNOS:
                    stats.aborted = f"{name}: {os.strerror(err)}"
                    break
                stats.failures += 1
                stats.errors[name] += 1
                done += 1
            if on_progress is not None and (
                topspeed or perf() - start - reported_at > PROGRESS_STALE_S
            ):
                stats.seconds = reported_at = perf() - start
                reported_done = done
                on_progress(stats)
        stats.seconds = perf() - start
    stats.loops = done // m
    return stats
