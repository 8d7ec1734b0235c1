"""Tests of ``lmaho replay``.

Root tests build their own veth pair (IPv6 off on both ends, so the kernel puts
nothing of its own on it), send on one end and capture on the other with a raw
AF_PACKET socket that is bound before the replay starts (no start-up race; the
socket buffer holds the frames until they are read), then compare byte for byte.
Engine tests without root send over a Unix datagram socket pair instead.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from lmaho_cli._replay_engine import Pacing, _Schedule, planned_total, replay
from lmaho_cli._replay_frames import LoadedCapture, load_capture
from lmaho_cli.main import main
from lmaho_wire.capture import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    CaptureWriter,
)
from lmaho_wire.errors import CaptureError
from lmaho_wire.packet import mac_bytes
from support import root
from support.cli import LMAHO_COMMAND, collector_kept
from support.paths import SAMPLE_CAPTURES
from support.root import IS_ROOT

needs_root = root.needs_root("creates a veth pair and sends on AF_PACKET sockets")


ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35
CLI_COMMAND = [*LMAHO_COMMAND, "replay"]

SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")
SRC_IP = bytes.fromhex("20010db8000000000000000000000001")
DST_IP = bytes.fromhex("20010db8000000000000000000000002")
SIZES = (54, 60, 61, 64, 90, 128, 255, 512, 1000, 1280, 1514)


def ipv6_packet(i: int, size: int, dst: bytes = DST_IP) -> bytes:
    """An IPv6 packet of ``size`` bytes (no next header), unique thanks to ``i``."""
    plen = size - 40
    head = struct.pack("!IHBB16s16s", 0x60000000 | (i & 0xFFFFF), plen, 59, 64, SRC_IP, dst)
    return head + bytes((i + k) & 0xFF for k in range(plen))


def eth_frame(i: int, size: int) -> bytes:
    """An Ethernet frame of ``size`` bytes carrying IPv6, explicit MACs."""
    return DST_MAC + SRC_MAC + b"\x86\xdd" + ipv6_packet(i, size - 14)


def write_capture(
    path: Path,
    frames: list[bytes],
    gap: float = 0.001,
    fmt: str = "pcap",
    linktype: int = LINKTYPE_ETHERNET,
) -> Path:
    with CaptureWriter(path, fmt=fmt, linktype=linktype) as w:  # type: ignore[arg-type]
        for k, f in enumerate(frames):
            w.write(f, 1_700_000_000.0 + k * gap)
    return path


def numbered_frames(n: int) -> list[bytes]:
    return [eth_frame(i, SIZES[i % len(SIZES)]) for i in range(n)]


class Cli:
    """``lmaho replay ARGS`` in this process, through the real entry point (``main``)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def __call__(self, *args: object) -> tuple[int, str, str]:
        self._capsys.readouterr()
        code = 0
        with (
            mock.patch.object(sys, "argv", ["lmaho", "replay", *map(str, args)]),
            collector_kept(),
        ):
            try:
                main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = self._capsys.readouterr()
        return code, out, err

    def json(self, *args: object) -> dict[str, Any]:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        report: dict[str, Any] = json.loads(out)
        return report


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


# --- veth pair and sniffer -------------------------------------------------------------------


@dataclass(frozen=True)
class Veth:
    send: str  # the end replay sends on
    peer: str  # the end the tests capture on
    send_mac: bytes


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture(scope="module")
def veth() -> Iterator[Veth]:
    if not IS_ROOT:
        pytest.skip("needs root: creates a veth pair")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip command to create a veth pair")
    a, b = f"lmr{os.getpid()}a", f"lmr{os.getpid()}b"
    try:
        _ip("link", "add", a, "type", "veth", "peer", "name", b)
    except subprocess.CalledProcessError as e:
        pytest.skip(f"cannot create a veth pair: {e.stderr.decode().strip()}")
    keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for n in (a, b):
            sysctl = Path(f"/proc/sys/net/ipv6/conf/{n}/disable_ipv6")
            if sysctl.exists():
                sysctl.write_text("1")
        for n in (a, b):
            _ip("link", "set", n, "up")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            states = [Path(f"/sys/class/net/{n}/operstate").read_text().strip() for n in (a, b)]
            if states == ["up", "up"]:
                break
            time.sleep(0.01)
        # Receive timestamps get switched on for the whole system through deferred
        # work; one socket asking for them from here on makes later ones immediate.
        keeper.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        mac = bytes.fromhex(
            Path(f"/sys/class/net/{a}/address").read_text().strip().replace(":", "")
        )
        yield Veth(a, b, mac)
    finally:
        keeper.close()
        subprocess.run(["ip", "link", "del", a], capture_output=True, timeout=10)


class Sniffer:
    """Frames arriving on an interface, with kernel receive timestamps."""

    def __init__(self, ifname: str) -> None:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        # Bound with a protocol only now, so it sees nothing from other interfaces.
        s.bind((ifname, ETH_P_ALL))
        self.sock = s

    def frames(self, expect: int, timeout: float = 5.0) -> list[tuple[bytes, float]]:
        """Everything received, waiting until ``expect`` frames came (then a little more)."""
        got: list[tuple[bytes, float]] = []
        deadline = time.monotonic() + timeout
        extra = False
        while True:
            if len(got) >= expect and not extra:
                extra = True  # then wait a little for any frame too many
                deadline = min(deadline, time.monotonic() + 0.05)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return got
            data, anc, _flags, addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(16))
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            ts = 0.0
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    ts = sec + nsec / 1e9
            got.append((data, ts))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sniffer(veth: Veth) -> Iterator[Sniffer]:
    s = Sniffer(veth.peer)
    yield s
    s.close()


# --- on the wire -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@needs_root
def test_topspeed_delivers_every_frame_identical_and_in_order(
    fmt: str, veth: Veth, sniffer: Sniffer, tmp_path: Path, cli: Cli
) -> None:
    frames = numbered_frames(300)
    cap = write_capture(tmp_path / f"in.{fmt}", frames, fmt=fmt)
    report = cli.json(cap, "--iface", veth.send, "--topspeed")
    got = [d for d, _ in sniffer.frames(len(frames))]
    assert len(got) == len(frames)
    assert got == frames
    assert report["packets"] == 300
    assert report["bytes"] == sum(map(len, frames))
    assert report["failures"] == 0
    assert report["pps"] > 0 and report["mbps"] > 0


@needs_root
def test_statistics_block(veth: Veth, sniffer: Sniffer, tmp_path: Path, cli: Cli) -> None:
    frames = numbered_frames(10)
    cap = write_capture(tmp_path / "in.pcap", frames)
    code, out, err = cli(cap, "-i", veth.send, "-t")
    assert code == 0, err
    assert f"Replayed {cap} on {veth.send} (topspeed, 1 of 1 loop)" in out
    assert "  packets:  10\n" in out
    assert f"  bytes:    {sum(map(len, frames))}\n" in out
    assert "  failures: 0" in out
    assert " pps, " in out and " Mbps" in out and "  seconds:  " in out
    assert [d for d, _ in sniffer.frames(10)] == frames


@pytest.mark.parametrize(("args", "expected"), [((), 0.2), (("--multiplier", "2"), 0.1)])
@needs_root
def test_capture_timing_scaled_by_multiplier(
    args: tuple[str, ...], expected: float, veth: Veth, sniffer: Sniffer, tmp_path: Path, cli: Cli
) -> None:
    frames = numbered_frames(5)
    cap = write_capture(tmp_path / "in.pcap", frames, gap=0.05)  # 0.2 s from first to last
    cli.json(cap, "-i", veth.send, *args)
    got = sniffer.frames(5)
    assert [d for d, _ in got] == frames
    times = [t for _, t in got]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 0.8 * expected <= times[-1] - times[0] <= expected + 0.15
    # Spread out, not one burst (loose: a late frame shortens the gap after it).
    assert all(g >= 0.3 * expected / 4 for g in gaps), gaps


@needs_root
def test_pps_roughly_honoured(veth: Veth, sniffer: Sniffer, tmp_path: Path, cli: Cli) -> None:
    frames = numbered_frames(41)
    cap = write_capture(tmp_path / "in.pcap", frames, gap=1.0)  # capture timing is ignored
    report = cli.json(cap, "-i", veth.send, "--pps", "400")
    got = sniffer.frames(41)
    assert [d for d, _ in got] == frames
    span = got[-1][1] - got[0][1]
    assert 0.08 <= span <= 0.3  # 40 gaps at 400 pps = 0.1 s
    assert 0.08 <= float(report["seconds"]) <= 0.3  # type: ignore[arg-type]


@needs_root
def test_limit_stops_after_n_packets(
    veth: Veth, sniffer: Sniffer, tmp_path: Path, cli: Cli
) -> None:
    frames = numbered_frames(20)
    cap = write_capture(tmp_path / "in.pcap", frames)
    report = cli.json(cap, "-i", veth.send, "-t", "--limit", "7")
    assert [d for d, _ in sniffer.frames(7)] == frames[:7]
    assert report["packets"] == 7
    assert report["limit_reached"] is True


@pytest.mark.parametrize(
    ("args", "expected"),
    [(("--loop", "3"), 15), (("--loop", "0", "--limit", "12"), 12)],
    ids=["loop-3", "loop-forever-limit-12"],
)
@needs_root
def test_loop(
    args: tuple[str, ...], expected: int, veth: Veth, sniffer: Sniffer, tmp_path: Path, cli: Cli
) -> None:
    frames = numbered_frames(5)
    cap = write_capture(tmp_path / "in.pcapng", frames, fmt="pcapng")
    report = cli.json(cap, "-i", veth.send, "-t", *args)
    assert [d for d, _ in sniffer.frames(expected)] == (frames * 3)[:expected]
    assert report["packets"] == expected
    assert report["loops_completed"] == expected // 5


@needs_root
def test_ctrl_c_stops_a_forever_loop_and_prints_statistics(
    veth: Veth, sniffer: Sniffer, tmp_path: Path
) -> None:
    frames = numbered_frames(5)
    cap = write_capture(tmp_path / "in.pcap", frames)
    proc = subprocess.Popen(
        [*CLI_COMMAND, str(cap), "-i", veth.send, "--pps", "200", "--loop", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        got = sniffer.frames(3, timeout=10)  # sending has begun
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["interrupted"] is True
    got += sniffer.frames(report["packets"] - len(got), timeout=1)
    assert [d for d, _ in got] == (frames * (len(got) // 5 + 1))[: len(got)]
    assert report["packets"] == len(got)


@needs_root
def test_raw_ipv6_capture_gets_an_ethernet_header(
    veth: Veth, sniffer: Sniffer, tmp_path: Path, cli: Cli
) -> None:
    multicast = ipv6_packet(1, 80, dst=bytes.fromhex("ff020000000000000000000000010002"))
    unicast = ipv6_packet(2, 120)
    cap = write_capture(tmp_path / "raw.pcap", [multicast, unicast], linktype=LINKTYPE_RAW)
    cli.json(cap, "-i", veth.send, "-t")
    et = b"\x86\xdd"
    assert [d for d, _ in sniffer.frames(2)] == [
        bytes.fromhex("333300010002") + veth.send_mac + et + multicast,
        b"\xff" * 6 + veth.send_mac + et + unicast,
    ]
    cli.json(cap, "-i", veth.send, "-t", "--dst-mac", "02:00:5e:00:00:09")
    dst = bytes.fromhex("02005e000009")
    assert [d for d, _ in sniffer.frames(2)] == [
        dst + veth.send_mac + et + multicast,
        dst + veth.send_mac + et + unicast,
    ]


@needs_root
def test_linux_cooked_capture_gets_an_ethernet_header(
    veth: Veth, sniffer: Sniffer, tmp_path: Path, cli: Cli
) -> None:
    pkt = ipv6_packet(3, 100)
    sll = struct.pack("!HHH8sH", 4, 1, 6, SRC_MAC + b"\0\0", 0x86DD) + pkt
    cap = write_capture(tmp_path / "sll.pcap", [sll], linktype=LINKTYPE_LINUX_SLL)
    cli.json(cap, "-i", veth.send, "-t", "--dst-mac", "02-00-00-00-00-02")
    assert [d for d, _ in sniffer.frames(1)] == [DST_MAC + veth.send_mac + b"\x86\xdd" + pkt]


@needs_root
def test_frame_over_the_mtu_is_a_counted_failure(
    veth: Veth, sniffer: Sniffer, tmp_path: Path, cli: Cli
) -> None:
    frames = numbered_frames(4)
    frames.insert(2, eth_frame(99, 3000))
    cap = write_capture(tmp_path / "in.pcap", frames)
    code, out, err = cli(cap, "-i", veth.send, "-t", "--json")
    assert code == 1
    assert "1 of 5 frames are longer than" in err
    report = json.loads(out)
    assert report["packets"] == 4
    assert report["failures"] == 1
    assert report["failures_by_error"] == {"EMSGSIZE": 1}
    assert [d for d, _ in sniffer.frames(4)] == frames[:2] + frames[3:]


@needs_root
def test_project_sample_pcap(veth: Veth, sniffer: Sniffer, cli: Cli) -> None:
    samples = [p for p in SAMPLE_CAPTURES if p.suffix == ".pcap"]
    if not samples:
        pytest.skip("no pcaps/*.pcap in the project yet")
    cap = samples[0]
    frames = load_capture(cap, veth.send_mac).frames
    if any(f[12:14] in (b"\x81\x00", b"\x88\xa8") for f in frames):
        pytest.skip(f"{cap.name} has VLAN-tagged frames; the receiving end strips their tags")
    fits = [f for f in frames if len(f) <= 1514]  # the others are refused by the veth's MTU
    code, out, err = cli(cap, "-i", veth.send, "-t", "--json")
    assert code == (0 if len(fits) == len(frames) else 1), err
    report = json.loads(out)
    assert (report["packets"], report["failures"]) == (len(fits), len(frames) - len(fits))
    assert [d for d, _ in sniffer.frames(len(fits))] == fits


@needs_root
def test_truncated_capture_sends_nothing(
    veth: Veth, sniffer: Sniffer, tmp_path: Path, cli: Cli
) -> None:
    cap = write_capture(tmp_path / "in.pcap", numbered_frames(5))
    data = cap.read_bytes()
    # Cut inside the last record's 16-byte header, then inside the last frame's data.
    for cut, message in (
        (90 + 4, "truncated record header after frame 4"),
        (10, "frame 5 cut off"),
    ):
        cap.write_bytes(data[:-cut])
        code, _out, err = cli(cap, "-i", veth.send, "-t")
        assert code == 2
        assert "lmaho: error:" in err and message in err
        assert sniffer.frames(1, timeout=0.2) == []


# --- errors (no root needed) -----------------------------------------------------------------


@pytest.fixture
def small_capture(tmp_path: Path) -> Path:
    return write_capture(tmp_path / "small.pcap", numbered_frames(3))


@pytest.mark.parametrize(
    "rate",
    [("--pps", "10", "--topspeed"), ("-x", "2", "-p", "5"), ("-x", "1", "-p", "1", "-t")],
)
def test_rate_options_are_mutually_exclusive(
    rate: tuple[str, ...], small_capture: Path, cli: Cli
) -> None:
    code, out, err = cli(small_capture, "-i", "lo", *rate)
    assert code == 2
    assert "mutually exclusive" in err
    assert out == ""


@pytest.mark.parametrize("bad", [("--pps", "0"), ("--multiplier", "-1"), ("--loop", "-1")])
def test_bad_numbers_are_usage_errors(bad: tuple[str, ...], small_capture: Path, cli: Cli) -> None:
    code, _out, err = cli(small_capture, "-i", "lo", *bad)
    assert code == 2
    assert err.startswith(f"lmaho: error: {bad[0]}: ") and err.count("\n") == 1


def test_missing_interface(small_capture: Path, cli: Cli) -> None:
    code, _out, err = cli(small_capture, "--iface", "lmahonosuch0")
    assert code == 2
    assert err.strip() == "lmaho: error: no such interface: lmahonosuch0"


def test_missing_interface_from_the_console_script(small_capture: Path) -> None:
    proc = subprocess.run(
        [*CLI_COMMAND, str(small_capture), "--iface", "lmahonosuch0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "lmaho: error: no such interface: lmahonosuch0" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty or truncated file"),
        (b"this is not a capture at all", "not a pcap or pcapng file"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated pcap file header"),
        (None, "no such file"),
    ],
    ids=["empty", "garbage", "short-header", "missing"],
)
def test_unreadable_capture(content: bytes | None, message: str, tmp_path: Path, cli: Cli) -> None:
    cap = tmp_path / "bad.pcap"
    if content is not None:
        cap.write_bytes(content)
    code, out, err = cli(cap, "-i", "lo")
    assert code == 2
    assert err.startswith("lmaho: error:") and message in err
    assert out == ""


def test_capture_without_packets(tmp_path: Path, cli: Cli) -> None:
    cap = write_capture(tmp_path / "none.pcap", [])
    code, _out, err = cli(cap, "-i", "lo")
    assert code == 2
    assert "holds no packets" in err


def test_dst_mac_refused_for_ethernet_captures(small_capture: Path, cli: Cli) -> None:
    code, _out, err = cli(small_capture, "-i", "lo", "--dst-mac", "02:00:00:00:00:01")
    assert code == 2
    assert "--dst-mac only applies to captures without an Ethernet header" in err


def test_unsupported_link_type(tmp_path: Path, cli: Cli) -> None:
    cap = write_capture(tmp_path / "wifi.pcap", [b"\x80\x00" + bytes(30)], linktype=105)
    code, _out, err = cli(cap, "-i", "lo")
    assert code == 2
    assert "frame 1: link type 105 frames cannot be replayed" in err


def _without_net_raw() -> list[str] | None:
    """A command prefix that runs a program without CAP_NET_RAW, or None."""
    if not IS_ROOT:
        return []
    if shutil.which("setpriv"):
        return ["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw", "--"]
    if shutil.which("capsh"):
        return ["capsh", "--drop=cap_net_raw", "--"]
    return None


def test_without_privileges(small_capture: Path) -> None:
    prefix = _without_net_raw()
    if prefix is None:
        pytest.skip("running as root and neither setpriv nor capsh can drop CAP_NET_RAW")
    cmd = [*CLI_COMMAND, str(small_capture), "-i", "lo", "-t"]
    if prefix[:1] == ["capsh"]:
        cmd = [*prefix, "-c", " ".join(f"'{c}'" for c in cmd)]
    else:
        cmd = prefix + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "lmaho: error: cannot open a raw packet socket on lo" in proc.stderr
    assert "needs root or the CAP_NET_RAW capability" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_has_examples(cli: Cli) -> None:
    code, out, _err = cli("--help")
    assert code == 0
    for text in ("Examples", "--topspeed", "--multiplier", "--pps", "--loop", "--limit", "--json"):
        assert text in out


# --- the engine, over a Unix socket pair (no root needed) ------------------------------------


class _Drain:
    """Reads every datagram arriving on a socket, in a thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.got: list[bytes] = []
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while True:
            try:
                d = self.sock.recv(65536)
            except OSError:
                return
            if not d:
                return
            self.got.append(d)

    def result(self) -> list[bytes]:
        self.sock.shutdown(socket.SHUT_RDWR)
        self._t.join(5)
        return self.got


def _loaded(frames: list[bytes], gap: float = 0.0) -> LoadedCapture:
    from array import array

    return LoadedCapture(
        Path("x.pcap"),
        (LINKTYPE_ETHERNET,),
        frames,
        array("d", [k * gap for k in range(len(frames))]),
    )


@pytest.mark.parametrize(
    ("batch", "mmsg"),
    [(1, False), (4, False), (1, True), (4, True), (256, True)],
    ids=["send-1", "send-4", "sendmmsg-1", "sendmmsg-4", "sendmmsg-256"],
)
@pytest.mark.parametrize(
    ("loops", "limit", "n"), [(1, None, 10), (3, None, 30), (0, 25, 25), (2, 7, 7)]
)
def test_engine_order_loop_limit(
    batch: int, mmsg: bool, loops: int, limit: int | None, n: int
) -> None:
    frames = numbered_frames(10)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        drain = _Drain(b)
        stats = replay(
            _loaded(frames), a, Pacing("topspeed"), loops, limit, batch=batch, use_sendmmsg=mmsg
        )
        got = drain.result()
    assert got == (frames * 3)[:n]
    assert (stats.packets, stats.failures, stats.loops) == (n, 0, n // 10)
    assert stats.bytes == sum(map(len, got))


@pytest.mark.parametrize("mmsg", [False, True], ids=["send", "sendmmsg"])
def test_engine_counts_failures_and_goes_on(mmsg: bool) -> None:
    frames = numbered_frames(4)
    frames.insert(1, bytes(200_000))  # over the socket's send buffer: EMSGSIZE
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        drain = _Drain(b)
        stats = replay(_loaded(frames), a, Pacing("topspeed"), use_sendmmsg=mmsg)
        got = drain.result()
    assert got == frames[:1] + frames[2:]
    assert (stats.packets, stats.failures) == (4, 1)
    assert dict(stats.errors) == {"EMSGSIZE": 1}


def test_engine_pps_pacing() -> None:
    frames = numbered_frames(21)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        drain = _Drain(b)
        t0 = time.perf_counter()
        stats = replay(_loaded(frames), a, Pacing("pps", 200.0))
        wall = time.perf_counter() - t0
        assert drain.result() == frames
    assert 0.09 <= stats.seconds <= wall <= 0.4  # 20 gaps at 200 pps = 0.1 s


def test_schedule() -> None:
    cap = _loaded(numbered_frames(4), gap=0.5)  # frames at 0, 0.5, 1.0, 1.5 s; period 1.5 s
    s = _Schedule(Pacing("multiplier", 2.0), cap)
    assert [s.due_at(g) for g in range(6)] == [0.0, 0.25, 0.5, 0.75, 0.75, 1.0]
    assert s.due_by(0, 0.0) == 1
    assert s.due_by(0, 0.6) == 3
    assert s.due_by(4, 0.74) == 0
    assert s.due_by(4, 1.0) == 2
    p = _Schedule(Pacing("pps", 10.0), cap)
    assert p.due_at(5) == 0.5
    assert p.due_by(3, 0.55) == 3
    assert _Schedule(Pacing("topspeed"), cap).due_by(1, 0.0) == 3
    assert planned_total(4, 3, None) == 12
    assert planned_total(4, 0, None) is None
    assert planned_total(4, 0, 9) == 9
    assert planned_total(4, 2, 100) == 8


def test_link_layer_framing(tmp_path: Path) -> None:
    src = bytes.fromhex("0a0000000001")
    pkt6 = ipv6_packet(7, 60, dst=bytes.fromhex("ff0200000000000000000001ff000001"))
    pkt4 = bytes.fromhex("45000014000000004001f0000a000001e0000005")  # to 224.0.0.5
    cases = [
        (LINKTYPE_RAW, pkt6, bytes.fromhex("3333ff000001") + src + b"\x86\xdd" + pkt6),
        (LINKTYPE_RAW, pkt4, bytes.fromhex("01005e000005") + src + b"\x08\x00" + pkt4),
        (0, b"\x1e\x00\x00\x00" + pkt6, bytes.fromhex("3333ff000001") + src + b"\x86\xdd" + pkt6),
        (
            LINKTYPE_LINUX_SLL2,
            struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, bytes(8)) + pkt4,
            bytes.fromhex("01005e000005") + src + b"\x08\x00" + pkt4,
        ),
    ]
    for k, (lt, data, expected) in enumerate(cases):
        cap = write_capture(tmp_path / f"c{k}.pcap", [data], linktype=lt)
        assert load_capture(cap, src).frames == [expected], lt
    bad = write_capture(tmp_path / "bad.pcap", [b"\x00\x01\x02"], linktype=LINKTYPE_RAW)
    with pytest.raises(CaptureError, match="frame 1: raw-IP frame is neither IPv4 nor IPv6"):
        load_capture(bad, src)


def test_capture_timing_never_goes_backwards(tmp_path: Path) -> None:
    path = tmp_path / "t.pcap"
    with CaptureWriter(path) as w:
        for t in (10.0, 10.5, 10.2, 11.0):
            w.write(eth_frame(0, 60), t)
    assert list(load_capture(path, SRC_MAC).rel) == pytest.approx([0.0, 0.5, 0.5, 1.0])


def test_mac_spellings() -> None:
    # One parser for every MAC lmaho reads: --dst-mac here, scenario files, MN identifiers.
    assert mac_bytes("02:00:5E:00:00:0a") == bytes.fromhex("02005e00000a")
    assert mac_bytes("2-0-0-0-0-1") == bytes.fromhex("020000000001")
    bad_ones = ("", "02:00:00:00:00", "02:00:00:00:00:0g", "02:00:00:00:00:+1", "002:0:0:0:0:0")
    for bad in (*bad_ones, "020000000001", "0200.0000.0001", "02 00 00 00 00 01"):
        with pytest.raises(ValueError, match="not a MAC address"):
            mac_bytes(bad)


def test_mixed_link_types_are_framed_frame_by_frame(tmp_path: Path) -> None:
    # mergecap gives each input its own pcapng interface: here Ethernet and raw IP.
    if shutil.which("mergecap") is None:
        pytest.skip("mergecap is not installed")
    src = bytes.fromhex("0a0000000001")
    pkt6 = ipv6_packet(7, 60, dst=bytes.fromhex("ff0200000000000000000001ff000001"))
    eth = write_capture(tmp_path / "eth.pcap", [eth_frame(1, 60)])
    raw = write_capture(tmp_path / "raw.pcap", [pkt6], linktype=LINKTYPE_RAW)
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-a", "-w", str(merged), str(eth), str(raw)], check=True)
    cap = load_capture(merged, src)
    framed6 = bytes.fromhex("3333ff000001") + src + b"\x86\xdd" + pkt6
    assert cap.frames == [eth_frame(1, 60), framed6]
    assert cap.linktypes == (LINKTYPE_ETHERNET, LINKTYPE_RAW) and cap.framed
    assert cap.link_name == "Ethernet + raw IP"
    # --dst-mac has frames to apply to.
    assert load_capture(merged, src, bytes(6)).frames[1][:6] == bytes(6)


# --- issue 11: pacing kept while a progress bar draws; a summary that says the truth --------


class _SendTimes:
    """A socket stand-in that notes when each frame was handed over."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def send(self, frame: bytes) -> int:
        self.times.append(time.perf_counter())
        return len(frame)


def test_a_slow_progress_redraw_never_makes_a_paced_frame_late() -> None:
    # 20 frames 1 ms apart, a redraw of 5 ms: drawn after every frame, as before the
    # fix, the run took over 100 ms; drawn only in waits with room for it, ~19 ms.
    redraws: list[int] = []

    def slow_redraw(stats: Any) -> None:
        redraws.append(stats.packets)
        time.sleep(0.005)

    out = _SendTimes()
    replay(
        _loaded(numbered_frames(20), gap=0.001),
        out,
        Pacing("multiplier", 1.0),  # type: ignore[arg-type]
        on_progress=slow_redraw,
        use_sendmmsg=False,
    )
    assert len(out.times) == 20 and redraws == []
    assert out.times[-1] - out.times[0] < 0.06


def test_progress_is_drawn_in_a_wait_with_room_for_it() -> None:
    frames = numbered_frames(3)
    cap = LoadedCapture(Path("x.pcap"), (LINKTYPE_ETHERNET,), frames, array("d", [0, 0.06, 0.061]))
    redraws: list[tuple[int, float]] = []
    out = _SendTimes()
    replay(
        cap,
        out,
        Pacing("multiplier", 1.0),  # type: ignore[arg-type]
        on_progress=lambda s: redraws.append((s.packets, time.perf_counter())),
        use_sendmmsg=False,
    )
    # Once, after the first frame, in the 60 ms gap, well before the second frame.
    assert [n for n, _ in redraws] == [1]
    assert out.times[1] - redraws[0][1] > 0.03


def test_the_progress_bar_draws_in_the_caller_s_thread() -> None:
    from lmaho_cli.progress import StderrProgress

    threads = threading.active_count()
    with StderrProgress("x", 10, "packets", forced=False) as bar:
        bar.update(5)
        assert threading.active_count() == threads


@pytest.mark.parametrize(
    ("loops", "limit", "words"),
    [
        (0, 25, "(topspeed, 2 loops and 5 packet(s) of the next, stopped by --limit 25)"),
        (3, 12, "(topspeed, 1 of 3 loops and 2 packet(s) of the next, stopped by --limit 12)"),
        (2, 20, "(topspeed, 2 of 2 loops)"),  # the loops ended it, not the limit
        (2, 50, "(topspeed, 2 of 2 loops)"),
    ],
)
def test_the_summary_says_what_stopped_the_replay(
    loops: int, limit: int, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from lmaho_cli.replay import _print_block, _report

    cap = _loaded(numbered_frames(10))
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        drain = _Drain(b)
        stats = replay(cap, a, Pacing("topspeed"), loops, limit)
        drain.result()
    report = _report(stats, cap, "veth0", Pacing("topspeed"), loops, limit)
    assert report["limit_reached"] is ("stopped" in words)
    _print_block(report)
    assert capsys.readouterr().out.splitlines()[0] == f"Replayed x.pcap on veth0 {words}"
