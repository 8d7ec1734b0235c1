"""The live lab measured: handovers per second and their latency with many MNs, and the
userspace tunnel's packets per second against plain veth forwarding on the same path.

In one run:

1. ``lmaho lab run --mobiles N --handovers K``: every MN's step (a) within about
   a second per round; handovers per second (completed handovers over the time from
   the first (a) to the last result) and the (b)-(i) latency percentiles the bMAG
   reports.
2. ``--packets`` frames from MN 1 to the CN, put on MN 1's access link at top speed
   by ``lmaho replay`` and counted by the kernel at the CN's link, along the same path
   MN -> bMAG -> PLMA -> CN twice: with plain forwarding (no agents, the anchor
   routes over the veths) and through Tunnel0 (bMAG -> PLMA, the agents' IPv6-in-IPv6
   tunnel, userspace unless ``--tunnels``). The rate is packets delivered per second
   of sending.

Needs root. Usage::

    sudo python benchmarks/bench_lab.py [--mobiles 200] [--handovers 2] [--packets 300000]

Prints a table and, with ``--json``, one JSON object. Figures of a run are in
benchmarks/README-lab.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import Any

from lmaho_lab.processes import NamespaceProcess
from lmaho_lab.run import Lab, LabOptions, lmaho_command
from lmaho_lab.topology import index_of, netlink
from lmaho_wire.capture import CaptureWriter
from lmaho_wire.packet import mac_bytes

NO_NEXT_HEADER = 59


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def handovers(mobiles: int, per_mobile: int, tunnels: str) -> dict[str, Any]:
    started = time.monotonic()
    report = Lab(
        LabOptions(mobiles=mobiles, handovers=per_mobile, tunnels=tunnels, settle=0.5)
    ).run()
    latencies = [h.latency for h in report.handovers if h.latency is not None]
    rounds: dict[int, list[Any]] = {}
    for h in report.handovers:
        rounds.setdefault(h.handover, []).append(h)
    # Per round: from the first (a) to the last result; the rate counts only that time.
    busy = sum(max(h.done for h in hs) - min(h.triggered for h in hs) for hs in rounds.values())
    return {
        "mobiles": mobiles,
        "handovers": len(report.handovers),
        "completed": report.completed,
        "outcomes": dict(collections.Counter(h.outcome for h in report.handovers)),
        "handovers_per_second": report.completed / busy if busy else 0.0,
        "latency_ms": {
            "p50": percentile(latencies, 50) * 1000,
            "p90": percentile(latencies, 90) * 1000,
            "p99": percentile(latencies, 99) * 1000,
            "max": max(latencies) * 1000,
            "mean": statistics.fmean(latencies) * 1000,
        }
        if latencies
        else {},
        "echo_lost": report.echo_lost,
        "echo_sent": report.echo_sent,
        "tcp_intact": report.tcp_intact,
        "seconds": time.monotonic() - started,
        "tunnel_mode": report.tunnel_mode,
    }


def uplink_frames(lab: Lab, path: Path, count: int, size: int) -> Path:
    """A capture of ``count`` distinct frames MN 1 -> CN as MN 1 puts them on its access
    link: to the bMAG's MAC, IPv6 with No Next Header (routers forward it, the CN drops it)."""
    assert lab.topology is not None
    scenario = lab.options.scenario
    mn = lab.topology.mobiles[0]
    cn = lab.topology.addresses["cn"]
    head = mac_bytes(scenario.bmag.access_mac) + mn.mac + b"\x86\xdd"
    with CaptureWriter(path) as w:
        for i in range(count):
            ip6 = struct.pack(
                "!IHBB16s16s", 0x60000000 | i, size, NO_NEXT_HEADER, 64, mn.address.packed,
                cn.packed,
            )  # fmt: skip
            w.write(head + ip6 + bytes(size), 1_700_000_000 + i * 1e-6)
    return path


def received_at_cn(lab: Lab) -> int:
    """Packets the CN's link to the anchor LMA has received (the kernel's counter)."""
    assert lab.topology is not None
    anchor = lab.options.scenario.mobiles.anchor
    with netlink(lab.topology.namespaces["cn"]) as ipr:
        (link,) = ipr.get_links(index_of(ipr, f"cn-{anchor}"))
        return int(link.get_attr("IFLA_STATS64")["rx_packets"])


def forwarding(agents: bool, tunnels: str, packets: int, size: int) -> dict[str, Any]:
    """``packets`` frames MN 1 -> bMAG -> anchor LMA -> CN at top speed (lmaho replay in
    MN 1's namespace); how many reach the CN per second of sending."""
    options = LabOptions(mobiles=1, agents=agents, tunnels=tunnels, settle=0.0)
    with Lab(options) as lab:
        assert lab.topology is not None
        frames = uplink_frames(lab, lab.ledger.runtime_dir / "uplink.pcap", 1000, size)
        before = received_at_cn(lab)
        replay = NamespaceProcess(
            lab.ledger,
            lab.topology.namespaces["mn1"],
            [
                *lmaho_command(), "replay", str(frames), "-i", lab.topology.link("mn1-bmag").name,
                "--topspeed", "--loop", "0", "--limit", str(packets), "--json",
            ],
            "replay",
        )  # fmt: skip
        replay.popen.wait()
        replay.finish()
        time.sleep(0.5)  # what is still in flight
        delivered = received_at_cn(lab) - before
        stats = json.loads(replay.lines[-1])
        mode = lab.controls["bmag"]("status").get("tunnel_mode") if agents else "plain"
    seconds = float(stats["seconds"])
    return {
        "path": f"tunnel ({mode})" if agents else "plain veth forwarding",
        "offered": int(stats["packets"]),
        "offered_per_second": stats["packets"] / seconds,
        "delivered": delivered,
        "delivered_per_second": delivered / seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mobiles", type=int, default=200)
    parser.add_argument("--handovers", type=int, default=2)
    parser.add_argument("--packets", type=int, default=300_000, help="frames sent per path")
    parser.add_argument("--size", type=int, default=64, help="IPv6 payload octets")
    parser.add_argument("--tunnels", default="userspace", choices=["auto", "kernel", "userspace"])
    parser.add_argument("--skip-handovers", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_lab.py needs root", file=sys.stderr)
        return 2
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}",
    }
    if not args.skip_handovers:
        result["handovers"] = handovers(args.mobiles, args.handovers, args.tunnels)
    result["forwarding"] = [
        forwarding(False, args.tunnels, args.packets, args.size),
        forwarding(True, args.tunnels, args.packets, args.size),
    ]
    plain, tunnel = result["forwarding"]
    result["tunnel_vs_plain"] = (
        tunnel["delivered_per_second"] / plain["delivered_per_second"]
        if plain["delivered_per_second"]
        else 0.0
    )
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(result["machine"])
    if "handovers" in result:
        h = result["handovers"]
        lat = h["latency_ms"]
        print(
            f"handovers: {h['mobiles']} MNs, {h['completed']}/{h['handovers']} completed "
            f"{h['outcomes']}, "
            f"{h['handovers_per_second']:.0f} handovers/s; (b)-(i) latency ms p50 "
            f"{lat.get('p50', 0):.1f} p90 {lat.get('p90', 0):.1f} p99 {lat.get('p99', 0):.1f} "
            f"max {lat.get('max', 0):.1f}; echo lost {h['echo_lost']}/{h['echo_sent']}; "
            f"TCP intact {h['tcp_intact']}; {h['seconds']:.1f} s"
        )
    for f in result["forwarding"]:
        print(
            f"{f['path']:<24} offered {f['offered_per_second']:>10,.0f} pps, delivered to the "
            f"CN {f['delivered_per_second']:>9,.0f} pps ({f['delivered']:,} of {f['offered']:,})"
        )
    print(f"tunnel / plain: {result['tunnel_vs_plain']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
