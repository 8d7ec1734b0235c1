"""The live lab measured: handovers per second and their latency with many MNs, and the
userspace tunnel's packets per second against plain veth forwarding on the same path.

In one run:

1. ``lmaho lab run --mobiles N --handovers K``: every MN's step (a) within about
   a second per round; handovers per second (completed handovers over the time from
   the first (a) to the last result) and the (b)-(i) latency percentiles the bMAG
   reports.
2. UDP datagrams from MN 1 to the CN for ``--seconds``, counted at the CN, along
   the same path MN -> bMAG -> PLMA -> CN twice: with plain forwarding (no agents,
   the anchor routes over the veths) and through Tunnel0 (bMAG -> PLMA, the agents'
   IPv6-in-IPv6 tunnel, userspace unless ``--tunnels``).

Needs root. Usage::

    sudo python benchmarks/bench_lab.py [--mobiles 200] [--handovers 2] [--seconds 5]

Prints a table and, with ``--json``, one JSON object. Figures of a run are in
benchmarks/README-lab.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

from lmaho_lab.run import START_TIMEOUT, Lab, LabOptions

UDP_PORT = 9000


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


def forwarding(agents: bool, tunnels: str, seconds: float, size: int) -> dict[str, Any]:
    """UDP MN 1 -> CN for ``seconds``: datagrams sent and received per second."""
    options = LabOptions(mobiles=1, agents=agents, tunnels=tunnels, settle=0.0)
    with Lab(options) as lab:
        assert lab.topology is not None
        cn = str(lab.topology.addresses["cn"])
        count = lab.traffic("cn", "udp count", "udp-count", "--port", str(UDP_PORT))
        count.wait_for("ready", START_TIMEOUT)
        flood = lab.traffic(
            "mn1", "udp flood", "udp-flood", "--to", cn, "--port", str(UDP_PORT),
            "--size", str(size),
        )  # fmt: skip
        flood.wait_for("ready", START_TIMEOUT)
        time.sleep(seconds)
        flood.close_input()
        sent = flood.wait_for("report", START_TIMEOUT)
        time.sleep(0.5)  # what is still in flight
        count.close_input()
        received = count.wait_for("report", START_TIMEOUT)
        tunnel = [t for t in lab.tunnel_counts() if t.agent == "bmag"] if agents else []
        mode = lab.controls["bmag"]("status").get("tunnel_mode") if agents else "plain"
    return {
        "path": f"tunnel ({mode})" if agents else "plain veth forwarding",
        "sent_per_second": sent["sent"] / sent["seconds"],
        "received": received["received"],
        "received_per_second": received["received"] / received["seconds"]
        if received["seconds"]
        else 0.0,
        "delivered": received["received"] / sent["sent"] if sent["sent"] else 0.0,
        "tunnel_packets_out": sum(t.packets_out for t in tunnel),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mobiles", type=int, default=200)
    parser.add_argument("--handovers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=64, help="UDP payload octets")
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
        forwarding(False, args.tunnels, args.seconds, args.size),
        forwarding(True, args.tunnels, args.seconds, args.size),
    ]
    plain, tunnel = result["forwarding"]
    result["tunnel_vs_plain"] = (
        tunnel["received_per_second"] / plain["received_per_second"]
        if plain["received_per_second"]
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
            f"handovers: {h['mobiles']} MNs, {h['completed']}/{h['handovers']} completed, "
            f"{h['handovers_per_second']:.0f} handovers/s; (b)-(i) latency ms p50 "
            f"{lat.get('p50', 0):.1f} p90 {lat.get('p90', 0):.1f} p99 {lat.get('p99', 0):.1f} "
            f"max {lat.get('max', 0):.1f}; echo lost {h['echo_lost']}/{h['echo_sent']}; "
            f"TCP intact {h['tcp_intact']}; {h['seconds']:.1f} s"
        )
    for f in result["forwarding"]:
        print(
            f"{f['path']:<28} sent {f['sent_per_second']:>9,.0f} pps, received "
            f"{f['received_per_second']:>9,.0f} pps ({f['delivered']:.0%} delivered)"
        )
    print(f"tunnel / plain: {result['tunnel_vs_plain']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
