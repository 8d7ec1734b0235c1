"""``lmaho replay``: put a capture on an interface, tcpreplay-style."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lmaho_wire.packet import mac_bytes

from ._replay_frames import LoadedCapture, format_mac, load_capture
from .app import app
from .progress import StderrProgress

if TYPE_CHECKING:
    from ._replay_engine import Pacing, ReplayStats

EPILOG = "\n".join(
    [
        "[bold]Examples[/bold]",
        "",
        "  [dim]# at capture timing (the default, like tcpreplay --multiplier 1)[/dim]",
        "  sudo lmaho replay pcaps/handover.pcap --iface veth0",
        "",
        "  [dim]# twice as fast, three times over, statistics as JSON[/dim]",
        "  sudo lmaho replay handover.pcap -i veth0 -x 2 --loop 3 --json",
        "",
        "  [dim]# 500 packets a second, forever (Ctrl-C stops, prints statistics)[/dim]",
        "  sudo lmaho replay handover.pcap -i veth0 --pps 500 --loop 0",
        "",
        "  [dim]# as fast as possible, stop after one million packets[/dim]",
        "  sudo lmaho replay big.pcap -i veth0 --topspeed --loop 0 --limit 1000000",
        "",
        "  [dim]# a raw-IPv6 capture, sent to a given MAC[/dim]",
        "  sudo lmaho replay raw6.pcap -i veth0 --dst-mac 02:00:00:00:00:01",
        "",
        "[bold]Link types[/bold]: Ethernet captures are sent as they are. Raw IP, BSD loopback"
        " and Linux cooked (SLL, SLL2) captures get an Ethernet header: source = the"
        " interface's MAC, destination = --dst-mac, else the multicast MAC of a multicast"
        " destination address, else broadcast; ethertype = the packet's network protocol."
        " Other link types are refused.",
        "",
        "[bold]Exit status[/bold]: 0 all sent; 1 some packets failed or sending stopped early;"
        " 2 bad usage, unreadable capture, missing interface or privileges; 130 Ctrl-C."
        " Needs root or CAP_NET_RAW. The whole capture is read into memory before the first"
        " packet is sent.",
    ]
)

HELP = (
    "Put a capture on an interface, at capture timing, a packet rate, or top speed.\n\n"
    "Rate control is tcpreplay's: --multiplier, --pps and --topspeed are mutually exclusive."
    " At the end a statistics block (or, with --json, one JSON object on stdout) gives"
    " packets, bytes, seconds, rate (pps, Mbps) and failures."
)


def _positive(name: str, value: float | None) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise typer.BadParameter(f"must be a positive number, got {value:g}", param_hint=name)


def _pacing(multiplier: float | None, pps: float | None, topspeed: bool) -> Pacing:
    # The engine (ctypes, sockets, threads) is imported when a replay is asked for,
    # not by every lmaho command at start-up.
    from ._replay_engine import Pacing

    given = [
        flag
        for flag, on in (
            ("--multiplier", multiplier is not None),
            ("--pps", pps is not None),
            ("--topspeed", topspeed),
        )
        if on
    ]
    if len(given) > 1:
        raise typer.BadParameter(
            f"{', '.join(given[:-1])} and {given[-1]} are mutually exclusive; give at most one",
            param_hint="--multiplier / --pps / --topspeed",
        )
    _positive("--multiplier", multiplier)
    _positive("--pps", pps)
    if topspeed:
        return Pacing("topspeed")
    if pps is not None:
        return Pacing("pps", pps)
    return Pacing("multiplier", 1.0 if multiplier is None else multiplier)


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f} "


def _l2_overhead(frame: bytes) -> int:
    """Bytes of a frame beyond the MTU the kernel lets through: Ethernet header, one tag."""
    return 18 if frame[12:14] in (b"\x81\x00", b"\x88\xa8") else 14


def _report(
    stats: ReplayStats,
    cap: LoadedCapture,
    iface: str,
    pacing: Pacing,
    loops: int,
    limit: int | None,
) -> dict[str, Any]:
    frames = len(cap.frames)
    # --limit stopped the replay only if the loops asked for would have sent more.
    limit_cut = limit is not None and (loops == 0 or limit < frames * loops)
    return {
        "capture": str(cap.path),
        "interface": iface,
        "linktype": cap.linktype,
        "linktypes": list(cap.linktypes),
        "frames_in_capture": len(cap.frames),
        "rate_control": pacing.describe(),
        "loops_requested": loops,
        "loops_completed": stats.loops,
        "packets_after_last_loop": stats.attempted - stats.loops * frames,
        "limit": limit,
        "limit_reached": limit_cut and stats.attempted >= (limit or 0),
        "packets": stats.packets,
        "bytes": stats.bytes,
        "seconds": round(stats.seconds, 6),
        "pps": round(stats.pps, 1),
        "mbps": round(stats.mbps, 3),
        "failures": stats.failures,
        "failures_by_error": dict(stats.errors),
        "retried": stats.retried,
        "interrupted": stats.interrupted,
        "aborted": stats.aborted,
    }


def _print_block(report: dict[str, Any]) -> None:
    done, asked = report["loops_completed"], report["loops_requested"]
    plural = "" if (asked or done) == 1 else "s"
    loops = f"{done} of {asked} loop{plural}" if asked else f"{done} loop{plural}"
    if report["packets_after_last_loop"]:
        loops += f" and {report['packets_after_last_loop']} packet(s) of the next"
    how = [report["rate_control"], loops]
    if report["limit_reached"]:
        how.append(f"stopped by --limit {report['limit']}")
    if report["interrupted"]:
        how.append("interrupted")
    lines = [
        f"Replayed {report['capture']} on {report['interface']} ({', '.join(how)})",
        f"  packets:  {report['packets']}",
        f"  bytes:    {report['bytes']}",
        f"  seconds:  {report['seconds']:.6f}",
        f"  rate:     {report['pps']:.1f} pps, {report['mbps']:.3f} Mbps",
        f"  failures: {report['failures']}"
        + "".join(f", {n} {name}" for name, n in sorted(report["failures_by_error"].items())),
    ]
    if report["retried"]:
        lines.append(f"  retried:  {report['retried']} (ENOBUFS/EAGAIN, sent again)")
    typer.echo("\n".join(lines))


@app.command(
    "replay",
    help=HELP,
    epilog=EPILOG,
    no_args_is_help=True,
)
def replay_cmd(
    capture: Annotated[
        Path,
        typer.Argument(
            help="pcap or pcapng file to put on the wire; - reads standard input.",
            show_default=False,
        ),
    ],
    iface: Annotated[
        str,
        typer.Option("--iface", "-i", metavar="IF", help="Interface to send on (e.g. veth0)."),
    ],
    multiplier: Annotated[
        float | None,
        typer.Option(
            "--multiplier",
            "-x",
            metavar="X",
            help="Capture timing sped up X times (0.5 = half speed). Default: 1.",
            show_default=False,
        ),
    ] = None,
    pps: Annotated[
        float | None,
        typer.Option(
            "--pps",
            "-p",
            metavar="N",
            help="N packets a second, evenly spaced.",
            show_default=False,
        ),
    ] = None,
    topspeed: Annotated[
        bool, typer.Option("--topspeed", "-t", help="As fast as the kernel takes them.")
    ] = False,
    loop: Annotated[
        int,
        typer.Option(
            "--loop", "-l", metavar="N", min=0, help="Send the capture N times; 0 = forever."
        ),
    ] = 1,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            "-L",
            metavar="N",
            min=1,
            help="Stop after N packets (sent or failed), whatever --loop says.",
            show_default=False,
        ),
    ] = None,
    dst_mac: Annotated[
        str | None,
        typer.Option(
            "--dst-mac",
            metavar="MAC",
            help="Destination MAC for captures without an Ethernet header (see below).",
            show_default=False,
        ),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bar on stderr. Default: only when stderr is a terminal.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the statistics as one JSON object on stdout."),
    ] = False,
) -> None:
    from ._replay_engine import (
        DEFAULT_BATCH,
        open_packet_socket,
        planned_total,
        replay,
        resolve_interface,
    )

    pacing = _pacing(multiplier, pps, topspeed)
    try:
        dst = mac_bytes(dst_mac) if dst_mac is not None else None
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--dst-mac") from None

    intf = resolve_interface(iface)
    cap = load_capture(capture, intf.mac, dst)
    too_big = sum(1 for f in cap.frames if len(f) > intf.mtu + _l2_overhead(f))
    if too_big:
        typer.echo(
            f"lmaho: warning: {too_big} of {len(cap.frames)} frames are longer than "
            f"{iface}'s MTU ({intf.mtu}) plus the Ethernet header; the kernel will refuse them",
            err=True,
        )
    if cap.framed and dst is None:
        typer.echo(
            f"lmaho: note: {cap.link_name} capture: adding Ethernet headers from "
            f"{format_mac(intf.mac)} (destination: multicast MAC or broadcast; see --dst-mac)",
            err=True,
        )
    sock = open_packet_socket(intf)

    show = sys.stderr.isatty() if progress is None else progress
    total = planned_total(len(cap.frames), loop, limit)
    with sock:
        if show:
            with StderrProgress(
                f"{capture.name} → {iface}", total, "packets", forced=progress is True
            ) as bar:

                def draw(stats: ReplayStats) -> None:
                    rate = f"{_si(stats.pps)}pps" if stats.seconds >= 0.05 else ""
                    bar.update(stats.attempted, rate)

                stats = replay(cap, sock, pacing, loop, limit, draw, DEFAULT_BATCH)
        else:
            stats = replay(cap, sock, pacing, loop, limit, None, DEFAULT_BATCH)

    report = _report(stats, cap, iface, pacing, loop, limit)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        _print_block(report)
    if stats.aborted:
        typer.echo(f"lmaho: error: sending stopped: {stats.aborted}", err=True)
    if stats.interrupted:
        raise typer.Exit(130)
    if stats.failures or stats.aborted:
        raise typer.Exit(1)
