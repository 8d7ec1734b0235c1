#!/usr/bin/env python3
"""Crafting speed of ``lmaho craft`` against scapy building the same packets, and its memory.

Speed. lmaho runs the whole crafting pipeline (the entities' state machines
on the virtual clock, encoding with lmaho_wire, writing a pcap file) for the
reference network's handovers. scapy is then given the very packets lmaho
wrote, read back from that file, and builds each one again from its fields:
Ether/IPv6/Mobility Header with scapy's MIP6 layers (the draft's requests
have the PBU's fixed part, so ``MIP6MH_BU`` with the draft's MH type; the
responses ``MIP6MH_BA``), every PMIPv6 and draft option as
``MIP6OptUnknown``, padding as ``Pad1``/``PadN`` where lmaho put it, and
the data plane as Ether/IPv6/IPv6/ICMPv6 (or UDP). Every scapy packet is
compared with lmaho's bytes: the run fails if one differs. scapy is timed
building only (no state machine, no file), which favours scapy. Both are
timed in CPU seconds of this process, so other load on the machine matters
less.

Memory. ``lmaho craft`` runs in a child process for growing packet counts
up to a million; its peak RSS comes from ``os.wait4``.

    python benchmarks/bench_craft.py                  # ~1 min: speed, then memory up to 1e6
    python benchmarks/bench_craft.py --no-memory --lmaho-packets 100000 --scapy-packets 2000

Exit status 1 when lmaho is less than ``--target`` times as fast as scapy, or
the million-packet peak RSS exceeds ``--memory-limit`` MB.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# scapy's import-time chatter (no default route on an offline machine) is noise here.
logging.getLogger("scapy").setLevel(logging.ERROR)

from lmaho_cli.craft import craft  # noqa: E402
from lmaho_wire import decode, read_frames  # noqa: E402
from lmaho_wire.packet import IPPROTO_IPV6, IPPROTO_MH  # noqa: E402


def mobiles_for(packets: int, handovers: int) -> int:
    """MNs for about ``packets`` packets with the default scenario.

    A handover away from the anchor LMA is 8 signalling and 14 data packets; one back to
    the anchor has no PLMA => NLMA leg, so 12 data packets.
    """
    per_mobile = (handovers + 1) // 2 * 22 + handovers // 2 * 20
    return max(1, round(packets / per_mobile))


# --- lmaho -------------------------------------------------------------------------


def time_lmaho(
    path: Path, mobiles: int, handovers: int, fmt: Literal["pcap", "pcapng"] = "pcap"
) -> tuple[int, float]:
    """(packets, CPU seconds) of one crafting run writing ``path``."""
    started = time.process_time()
    summary = craft(path, fmt=fmt, mobiles=mobiles, handovers=handovers, progress=False)
    return summary.packets, time.process_time() - started


# --- scapy -------------------------------------------------------------------------


def scapy_builder(frame: bytes) -> Callable[[], bytes]:
    """A function that builds ``frame`` with scapy, from the fields lmaho decodes in it."""
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import (
        MIP6MH_BA,
        MIP6MH_BU,
        ICMPv6EchoReply,
        ICMPv6EchoRequest,
        IPv6,
        MIP6OptUnknown,
        Pad1,
        PadN,
    )
    from scapy.layers.l2 import Ether
    from scapy.packet import Packet, Raw

    dst_mac = frame[0:6].hex(":")
    src_mac = frame[6:12].hex(":")

    def ipv6_fields(at: int) -> tuple[str, str, int]:
        """Source, destination and Hop Limit of the IPv6 header at ``at``."""
        src = str(ipaddress.IPv6Address(frame[at + 8 : at + 24]))
        return src, str(ipaddress.IPv6Address(frame[at + 24 : at + 40])), frame[at + 7]

    # Walk the IPv6 headers (IPv6-in-IPv6 nests them).
    headers: list[tuple[str, str, int]] = []
    at = 14
    next_header = frame[at + 6]
    headers.append(ipv6_fields(at))
    while next_header == IPPROTO_IPV6:
        at += 40
        next_header = frame[at + 6]
        headers.append(ipv6_fields(at))
    body = frame[at + 40 :]

    if next_header == IPPROTO_MH:
        msg = decode(body)
        options: list[Packet] = []
        for opt in msg.options:
            if opt.type == 0:
                options.append(Pad1())
            elif opt.type == 1:
                options.append(PadN(optlen=len(opt.data), optdata=opt.data))
            else:
                options.append(MIP6OptUnknown(otype=opt.type, odata=opt.data))
        seq = body[6:8] if "status" not in msg.fields else body[8:10]
        sequence = int.from_bytes(seq, "big")
        lifetime = int.from_bytes(body[10:12], "big")
        if "status" in msg.fields:
            flags = body[7]

            def upper() -> Packet:
                return MIP6MH_BA(
                    mhtype=msg.mh_type,
                    status=body[6],
                    flags=flags >> 5,
                    res2=flags & 0x1F,
                    seq=sequence,
                    mhtime=lifetime,
                    autopad=0,
                    options=options,
                )
        else:
            flags16 = int.from_bytes(body[8:10], "big")

            def upper() -> Packet:
                return MIP6MH_BU(
                    mhtype=msg.mh_type,
                    seq=sequence,
                    flags=flags16 >> 9,
                    reserved=flags16 & 0x1FF,
                    mhtime=lifetime,
                    autopad=0,
                    options=options,
                )
    elif next_header == 58:
        kind = ICMPv6EchoRequest if body[0] == 128 else ICMPv6EchoReply
        ident = int.from_bytes(body[4:6], "big")
        seqno = int.from_bytes(body[6:8], "big")
        data = body[8:]

        def upper() -> Packet:
            return kind(id=ident, seq=seqno, data=data)
    elif next_header == 17:
        sport, dport = int.from_bytes(body[0:2], "big"), int.from_bytes(body[2:4], "big")
        payload = body[8:]

        def upper() -> Packet:
            return UDP(sport=sport, dport=dport) / Raw(payload)
    else:
        raise ValueError(f"no scapy recipe for next header {next_header}")

    def build() -> bytes:
        packet: Packet = Ether(dst=dst_mac, src=src_mac)
        for src, dst, hlim in headers:
            packet = packet / IPv6(src=src, dst=dst, hlim=hlim)
        return bytes(packet / upper())

    return build


def time_scapy(frames: list[bytes]) -> float:
    """CPU seconds scapy takes to build ``frames``; raises if one comes out different."""
    builders = [scapy_builder(f) for f in frames]
    started = time.process_time()
    built = [b() for b in builders]
    seconds = time.process_time() - started
    for number, (ours, theirs) in enumerate(zip(frames, built, strict=True), 1):
        if ours != theirs:
            raise SystemExit(
                f"frame {number}: scapy built different bytes\n lmaho {ours.hex()}\n scapy "
                f"{theirs.hex()}"
            )
    return seconds


# --- memory ------------------------------------------------------------------------


def peak_rss_mb(packets: int, handovers: int, directory: Path) -> tuple[int, float, float]:
    """(packets written, peak RSS in MB, wall seconds) of ``lmaho craft`` in a child.

    The child runs under ``/usr/bin/time``: a maximum RSS taken with ``wait4`` on a
    child forked from this process would count this process's pages (scapy is
    loaded here) from before the child's exec.
    """
    mobiles = mobiles_for(packets, handovers)
    out = directory / f"mem-{packets}.pcap"
    report = directory / "time.txt"
    craft_command = [
        sys.executable, "-m", "lmaho_cli", "craft", str(out),
        "--mobiles", str(mobiles), "--handovers", str(handovers), "--no-progress",
    ]  # fmt: skip
    timer = shutil.which("time", path="/usr/bin:/bin")
    command = [timer, "-f", "%M", "-o", str(report), *craft_command] if timer else craft_command
    started = time.perf_counter()
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    stderr = child.stderr.read() if child.stderr else ""
    if status != 0:
        raise SystemExit(f"lmaho craft failed: {stderr}")
    written = int(stderr.split(" packets ")[0].rsplit(" ", 1)[-1])
    kilobytes = int(report.read_text().split()[-1]) if timer else usage.ru_maxrss
    out.unlink()
    return written, kilobytes / 1024, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lmaho-packets",
        type=int,
        default=200_000,
        help="packets lmaho crafts per timed run (default 200000)",
    )
    parser.add_argument(
        "--scapy-packets",
        type=int,
        default=5_000,
        help="packets scapy builds per timed run (default 5000)",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (median)")
    parser.add_argument("--handovers", type=int, default=2, help="handovers per MN")
    parser.add_argument("--target", type=float, default=10.0, help="required speed ratio")
    parser.add_argument(
        "--memory",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure peak RSS up to --million packets",
    )
    parser.add_argument("--million", type=int, default=1_000_000, help="largest memory run")
    parser.add_argument("--memory-limit", type=float, default=200.0, help="MB")
    args = parser.parse_args()

    failed = False
    with tempfile.TemporaryDirectory(prefix="lmaho-bench-") as tmp:
        directory = Path(tmp)
        path = directory / "craft.pcap"
        mobiles = mobiles_for(args.lmaho_packets, args.handovers)
        lmaho_rates = []
        for _ in range(args.runs):
            packets, seconds = time_lmaho(path, mobiles, args.handovers)
            lmaho_rates.append(packets / seconds)
        # scapy rebuilds the first packets of the same run: the same mix of kinds.
        frames = [f.data for f in itertools.islice(read_frames(path), args.scapy_packets)]
        signalling = sum(1 for f in frames if f[20] == IPPROTO_MH)
        scapy_rates = [len(frames) / time_scapy(frames) for _ in range(args.runs)]
        # With pcapng every packet also gets its comment: the cost of the labels.
        ng_packets, ng_seconds = time_lmaho(directory / "craft.pcapng", mobiles, args.handovers,
                                            "pcapng")  # fmt: skip
        lmaho_pps = statistics.median(lmaho_rates)
        scapy_pps = statistics.median(scapy_rates)
        ratio = lmaho_pps / scapy_pps
        print(
            f"packets: {packets} crafted by lmaho per run; scapy rebuilt {len(frames)} of them "
            f"({signalling} signalling, {len(frames) - signalling} data), byte-identical"
        )
        print(f"lmaho craft (state machines + encoding + pcap): {lmaho_pps:12,.0f} packets/s")
        print(
            f"lmaho craft to pcapng, a comment per packet:    "
            f"{ng_packets / ng_seconds:12,.0f} packets/s"
        )
        print(f"scapy (building the same packets only):         {scapy_pps:12,.0f} packets/s")
        print(f"ratio: {ratio:.1f}x (target {args.target:g}x)")
        failed |= ratio < args.target

        if args.memory:
            print("peak RSS of `lmaho craft` in a child process:")
            sizes = sorted({10_000, 100_000, args.million})
            peak = 0.0
            for size in sizes:
                written, rss, wall = peak_rss_mb(size, args.handovers, directory)
                peak = rss
                print(f"  {written:>9,} packets: {rss:6.1f} MB peak RSS, {wall:6.1f} s wall")
            print(f"limit {args.memory_limit:g} MB at {args.million:,} packets")
            failed |= peak > args.memory_limit
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
