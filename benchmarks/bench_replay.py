"""Packets per second of ``lmaho replay --topspeed`` against ``tcpreplay --topspeed``.

Both tools send the same capture on the same veth pair in the same run, several
times each, alternating; the medians of their own reported rates are compared.
Also measured, in this process: lmaho's sending engine with one ``send()`` per
frame instead of ``sendmmsg()`` batches, to show what the batching buys.

Needs root and tcpreplay. Usage::

    sudo python benchmarks/bench_replay.py [--packets 1000000] [--runs 5] [--profile all]

Exits 1 when lmaho's median rate is under ``--target`` (default 0.5) times
tcpreplay's, for any profile. Results of a run are in benchmarks/README-replay.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lmaho_cli._replay_engine import Pacing, open_packet_socket, replay, resolve_interface
from lmaho_cli._replay_frames import load_capture
from lmaho_wire.capture import CaptureWriter

FRAMES_PER_CAPTURE = 1000
PROFILES: dict[str, tuple[int, ...]] = {
    # PMIPv6 signalling: Ethernet + IPv6 + Mobility Header with a few options.
    "pmip-small": (86, 102, 118, 134, 150),
    "mixed": (54, 60, 90, 128, 255, 512, 1000, 1280, 1514),
    "full-1514": (1514,),
}
LMAHO = [sys.executable, "-m", "lmaho_cli", "replay"]


def frame(i: int, size: int) -> bytes:
    plen = size - 54
    ip6 = struct.pack(
        "!IHBB16s16s",
        0x60000000 | (i & 0xFFFFF),
        plen,
        59,
        64,
        bytes.fromhex("20010db8000000000000000000000001"),
        bytes.fromhex("20010db8000000000000000000000002"),
    )
    return (
        bytes.fromhex("020000000002020000000001")
        + b"\x86\xdd"
        + ip6
        + bytes((i + k) & 0xFF for k in range(plen))
    )


def write_capture(path: Path, sizes: tuple[int, ...]) -> Path:
    with CaptureWriter(path) as w:
        for i in range(FRAMES_PER_CAPTURE):
            w.write(frame(i, sizes[i % len(sizes)]), 1_700_000_000 + i * 0.001)
    return path


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@contextmanager
def veth_pair() -> Iterator[tuple[str, str]]:
    a, b = f"lmb{os.getpid()}a", f"lmb{os.getpid()}b"
    sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    try:
        for n in (a, b):
            Path(f"/proc/sys/net/ipv6/conf/{n}/disable_ipv6").write_text("1")
            sh("ip", "link", "set", n, "up")
        time.sleep(0.2)
        yield a, b
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True)


def run_tcpreplay(cap: Path, iface: str, loops: int) -> tuple[float, float]:
    """(pps tcpreplay reports, wall-clock seconds of the whole command)."""
    t = time.perf_counter()
    out = subprocess.run(
        ["tcpreplay", "-i", iface, "--topspeed", "-K", f"--loop={loops}", str(cap)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall = time.perf_counter() - t
    m = re.search(r"Rated: .*?([\d.]+) pps", out)
    if not m:
        raise SystemExit(f"cannot read tcpreplay's rate from:\n{out}")
    return float(m.group(1)), wall


def run_lmaho(cap: Path, iface: str, loops: int) -> tuple[float, float]:
    """(pps lmaho reports, wall-clock seconds of the whole command)."""
    t = time.perf_counter()
    out = subprocess.run(
        [*LMAHO, str(cap), "-i", iface, "--topspeed", "--loop", str(loops), "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall = time.perf_counter() - t
    report = json.loads(out)
    if report["failures"]:
        raise SystemExit(f"lmaho replay had failures: {report}")
    return float(report["pps"]), wall


def run_engine(cap: Path, iface: str, packets: int, mmsg: bool) -> float:
    """pps of the sending engine alone (no process start-up), sendmmsg() or send()."""
    intf = resolve_interface(iface)
    loaded = load_capture(cap, intf.mac)
    with open_packet_socket(intf) as sock:
        stats = replay(loaded, sock, Pacing("topspeed"), loops=0, limit=packets, use_sendmmsg=mmsg)
    return stats.pps


def tool_versions() -> str:
    tr = subprocess.run(["tcpreplay", "--version"], capture_output=True, text=True)
    first = (tr.stdout or tr.stderr).splitlines()[0] if (tr.stdout or tr.stderr) else "?"
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}, {first.strip()}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000, help="per run (default 1e6)")
    ap.add_argument("--runs", type=int, default=5, help="runs per tool and profile (default 5)")
    ap.add_argument("--profile", choices=[*PROFILES, "all"], default="all")
    ap.add_argument("--target", type=float, default=0.5, help="minimum lmaho/tcpreplay ratio")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_replay: needs root (veth pair, raw sockets)", file=sys.stderr)
        return 2
    if shutil.which("tcpreplay") is None:
        print(
            "bench_replay: tcpreplay is not installed (apt-get install tcpreplay)", file=sys.stderr
        )
        return 2
    loops = max(1, args.packets // FRAMES_PER_CAPTURE)
    packets = loops * FRAMES_PER_CAPTURE
    names = list(PROFILES) if args.profile == "all" else [args.profile]
    print(tool_versions())
    print(
        f"{packets} packets per run ({FRAMES_PER_CAPTURE} distinct frames x {loops} loops), "
        f"{args.runs} runs per tool, medians; peer end up, nobody listening\n"
    )
    header = (
        f"{'profile':<11} {'avg B':>6} {'tcpreplay pps':>14} {'lmaho pps':>11} {'ratio':>6} "
        f"{'wall ratio':>10} {'engine send()':>14} {'engine mmsg':>12}"
    )
    print(header)
    print("-" * len(header))
    worst = float("inf")
    with tempfile.TemporaryDirectory() as tmp, veth_pair() as (a, _b):
        for name in names:
            sizes = PROFILES[name]
            cap = write_capture(Path(tmp) / f"{name}.pcap", sizes)
            tr, lm, tr_wall, lm_wall = [], [], [], []
            for r in range(args.runs):
                order = (run_tcpreplay, run_lmaho) if r % 2 == 0 else (run_lmaho, run_tcpreplay)
                for fn in order:
                    pps, wall = fn(cap, a, loops)
                    if fn is run_tcpreplay:
                        tr.append(pps)
                        tr_wall.append(wall)
                    else:
                        lm.append(pps)
                        lm_wall.append(wall)
            eng_send = statistics.median(run_engine(cap, a, packets, False) for _ in range(3))
            eng_mmsg = statistics.median(run_engine(cap, a, packets, True) for _ in range(3))
            t_pps, l_pps = statistics.median(tr), statistics.median(lm)
            ratio = l_pps / t_pps
            wall_ratio = statistics.median(tr_wall) / statistics.median(lm_wall)
            worst = min(worst, ratio)
            avg = sum(sizes) / len(sizes)
            print(
                f"{name:<11} {avg:>6.0f} {t_pps:>14,.0f} {l_pps:>11,.0f} {ratio:>6.2f} "
                f"{wall_ratio:>10.2f} {eng_send:>14,.0f} {eng_mmsg:>12,.0f}"
            )
    print(
        "\nratio = lmaho pps / tcpreplay pps (each tool's own rate figure); wall ratio = "
        "the same from\nwhole-command wall-clock times, start-up and capture loading included; "
        "engine columns:\nlmaho's sender alone with one send() per frame vs sendmmsg() "
        "batches of 256."
    )
    print(f"\nworst ratio {worst:.2f} (target >= {args.target})")
    return 0 if worst >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
