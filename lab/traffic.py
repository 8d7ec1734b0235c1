"""The lab's traffic, as helper processes run inside the namespaces.

``python -m lmaho_lab.traffic MODE ...``, one of:

* ``echo --targets A[,B...] --interval S``: ICMPv6 Echo Requests to each target
  at a fixed rate from a raw socket (protocol 58), recording when each was
  sent and when its reply came back;
* ``tcp-sink --port P --seed N``: accepts one TCP connection and verifies every
  byte against the deterministic pattern of ``--seed``;
* ``tcp-source --to A --port P --rate B --seed N``: connects and sends that
  pattern at ``B`` octets per second.

Each prints one JSON line ``{"event": "ready"}`` once it is running, runs
until its standard input closes (the sink: until the source closes), and
prints one JSON line ``{"event": "report", ...}`` with what it measured.
Times are Unix seconds, comparable with the agents' events.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129
#: The pattern repeats with a prime period, so no power-of-two slip goes unnoticed.
PATTERN_PERIOD = 65521
#: Progress samples are kept at most this often (seconds).
SAMPLE_EVERY = 0.02
#: Seconds the echo sender waits for the last replies after it stops sending.
ECHO_DRAIN = 0.5
#: Seconds the TCP ends wait, after being told to stop, for the rest of the stream.
TCP_DRAIN = 1.5


def pattern(seed: int) -> bytes:
    """One period of the TCP stream's bytes for ``seed``."""
    return random.Random(seed).randbytes(PATTERN_PERIOD)


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def stdin_closed() -> threading.Event:
    """An event set when standard input reaches end of file (the lab's stop signal)."""
    closed = threading.Event()

    def wait() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        closed.set()

    threading.Thread(target=wait, daemon=True, name="stdin").start()
    return closed


class Progress:
    """Cumulative octet counts sampled over time: [[time, octets], ...]."""

    def __init__(self) -> None:
        self.total = 0
        self.samples: list[list[float]] = []
        self._last = 0.0

    def add(self, octets: int) -> None:
        self.total += octets
        now = time.time()
        if now - self._last >= SAMPLE_EVERY:
            self.samples.append([round(now, 6), self.total])
            self._last = now

    def finish(self) -> list[list[float]]:
        self.samples.append([round(time.time(), 6), self.total])
        return self.samples


# --- ICMPv6 echo ---------------------------------------------------------------------


@dataclass
class EchoTarget:
    address: str
    ident: int
    sent: list[float] = field(default_factory=list)
    replied: list[float | None] = field(default_factory=list)


def run_echo(targets: Sequence[str], interval: float, size: int) -> dict[str, Any]:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    base = os.getpid() & 0xFF00
    echo = [EchoTarget(a, (base + i) & 0xFFFF) for i, a in enumerate(targets)]
    by_ident = {t.ident: t for t in echo}
    payload = bytes(range(256)) * (size // 256 + 1)
    stop = stdin_closed()
    receiving = threading.Event()
    receiving.set()

    def receive() -> None:
        while receiving.is_set():
            ready, _, _ = select.select([sock], [], [], 0.05)
            if not ready:
                continue
            data, _ = sock.recvfrom(65535)
            now = time.time()
            if len(data) < 8 or data[0] != ICMPV6_ECHO_REPLY:
                continue
            ident, seq = struct.unpack_from("!HH", data, 4)
            target = by_ident.get(ident)
            if target is None:
                continue
            # The sequence number wraps at 2**16: the reply answers the latest such request.
            k = len(target.sent) - 1 - ((len(target.sent) - 1 - seq) % 65536)
            if 0 <= k < len(target.replied) and target.replied[k] is None:
                target.replied[k] = round(now, 6)

    receiver = threading.Thread(target=receive, daemon=True, name="echo replies")
    receiver.start()
    emit("ready")
    start = time.monotonic()
    tick = 0
    while not stop.is_set():
        for target in echo:
            seq = len(target.sent) & 0xFFFF
            header = struct.pack("!BBHHH", ICMPV6_ECHO_REQUEST, 0, 0, target.ident, seq)
            target.sent.append(round(time.time(), 6))
            target.replied.append(None)
            with contextlib.suppress(OSError):  # no route for a moment: counted as lost
                sock.sendto(header + payload[:size], (target.address, 0))
        tick += 1
        stop.wait(max(0.0, start + tick * interval - time.monotonic()))
    time.sleep(ECHO_DRAIN)
    receiving.clear()
    receiver.join()
    return {
        "mode": "echo",
        "interval": interval,
        "targets": {t.address: {"sent": t.sent, "replied": t.replied} for t in echo},
    }


# --- TCP stream ----------------------------------------------------------------------


def run_tcp_sink(port: int, seed: int) -> dict[str, Any]:
    """Verify the stream until the source closes it, or until standard input closes
    and nothing more arrives for TCP_DRAIN seconds (a broken path)."""
    expected = pattern(seed) * 2
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("::", port))
    listener.listen(1)
    stop = stdin_closed()
    emit("ready")
    peer = None
    received = Progress()
    verified = Progress()
    mismatch: int | None = None
    connection: socket.socket | None = None
    closed_by_source = False
    quiet_since = time.monotonic()
    while True:
        waiting_on = connection or listener
        if not select.select([waiting_on], [], [], 0.05)[0]:
            if stop.is_set() and time.monotonic() - quiet_since > TCP_DRAIN:
                break
            continue
        if connection is None:
            connection, address = listener.accept()
            peer = address[0]
            continue
        data = connection.recv(PATTERN_PERIOD)
        if not data:
            closed_by_source = True
            break
        quiet_since = time.monotonic()
        if mismatch is None:
            offset = received.total % PATTERN_PERIOD
            if data == expected[offset : offset + len(data)]:
                verified.add(len(data))
            else:
                good = next(i for i, b in enumerate(data) if b != expected[offset + i])
                verified.add(good)
                mismatch = received.total + good
        received.add(len(data))
    if connection is not None:
        connection.close()
    return {
        "mode": "tcp-sink",
        "peer": peer,
        "received": received.total,
        "verified": verified.total,
        "first_mismatch": mismatch,
        "closed_by_source": closed_by_source,
        "verified_samples": verified.finish(),
    }


def run_tcp_source(to: str, port: int, rate: int, seed: int) -> dict[str, Any]:
    """Send the pattern at ``rate`` until standard input closes, then close and wait
    (TCP_DRAIN seconds at most) for the sink to close: everything was delivered."""
    stream = pattern(seed) * 2
    stop = stdin_closed()
    deadline = time.monotonic() + 5.0
    while True:
        try:
            sock = socket.create_connection((to, port), timeout=1.0)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    sock.setblocking(False)
    emit("ready")
    sent = Progress()
    start = time.monotonic()
    while not stop.is_set():
        due = int(rate * (time.monotonic() - start)) - sent.total
        # A stalled path fills the send buffer: the stream waits, intact, and the
        # source still notices when to stop.
        if due > 0 and select.select([], [sock], [], 0.005)[1]:
            offset = sent.total % PATTERN_PERIOD
            with contextlib.suppress(BlockingIOError):
                sent.add(sock.send(stream[offset : offset + min(due, 16384)]))
        else:
            stop.wait(0.005)
    sock.shutdown(socket.SHUT_WR)
    delivered = False
    drain_until = time.monotonic() + TCP_DRAIN
    while time.monotonic() < drain_until:
        if select.select([sock], [], [], 0.05)[0]:
            try:
                if not sock.recv(4096):
                    delivered = True
                    break
            except OSError:
                break
    sock.close()
    return {
        "mode": "tcp-source",
        "sent": sent.total,
        "delivered": delivered,
        "sent_samples": sent.finish(),
    }


# --- command line --------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmaho_lab.traffic")
    modes = parser.add_subparsers(dest="mode", required=True)
    echo = modes.add_parser("echo")
    echo.add_argument("--targets", required=True)
    echo.add_argument("--interval", type=float, default=0.01)
    echo.add_argument("--size", type=int, default=56)
    sink = modes.add_parser("tcp-sink")
    sink.add_argument("--port", type=int, required=True)
    sink.add_argument("--seed", type=int, default=0)
    source = modes.add_parser("tcp-source")
    source.add_argument("--to", required=True)
    source.add_argument("--port", type=int, required=True)
    source.add_argument("--rate", type=int, default=100_000)
    source.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.mode == "echo":
            report = run_echo(args.targets.split(","), args.interval, args.size)
        elif args.mode == "tcp-sink":
            report = run_tcp_sink(args.port, args.seed)
        else:
            report = run_tcp_source(args.to, args.port, args.rate, args.seed)
    except OSError as e:
        emit("error", error=f"{args.mode}: {e}")
        return 1
    emit("report", **report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
