"""What a lab run measured, per handover and in total, as text or JSON.

The traffic helpers report raw times (each echo request's send time and its
reply's arrival, the TCP stream's cumulative octets over time); this module
cuts them into one window per handover, from its step (a) to the next one
of the same MN (or the end of the traffic), and measures each window:
echoes sent and lost, the longest gap between replies, TCP octets sent and
verified and the longest stall of the verified stream.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class EchoRecord:
    """One MN's echo: send time of each request, arrival of its reply (None: lost)."""

    sent: list[float]
    replied: list[float | None]

    def window(self, start: float, end: float) -> EchoWindow:
        first = bisect.bisect_left(self.sent, start)
        last = bisect.bisect_left(self.sent, end)
        requests = range(first, last)
        lost = sum(1 for i in requests if self.replied[i] is None)
        replies = sorted(t for t in self.replied if t is not None)
        # The gap that straddles the window's start counts: from the last reply before it.
        before = bisect.bisect_right(replies, start)
        points = replies[max(0, before - 1) : bisect.bisect_left(replies, end)]
        if not points or points[0] > start:
            points.insert(0, start)
        # Ending without replies is a gap too, up to the last request of the window.
        if last > first:
            points.append(max(points[-1], self.sent[last - 1]))
        gap = max((b - a for a, b in itertools.pairwise(points)), default=0.0)
        return EchoWindow(sent=len(requests), lost=lost, longest_gap=round(gap, 6))


@dataclass
class EchoWindow:
    sent: int
    lost: int
    longest_gap: float


@dataclass
class StreamRecord:
    """Cumulative octets over time, [[time, octets], ...], ascending."""

    samples: list[list[float]]

    def at(self, when: float) -> int:
        times = [s[0] for s in self.samples]
        i = bisect.bisect_right(times, when)
        return int(self.samples[i - 1][1]) if i else 0

    def between(self, start: float, end: float) -> int:
        return self.at(end) - self.at(start)

    def longest_stall(self, start: float, end: float) -> float:
        """The longest time in [start, end] the count did not grow."""
        changes = [start]
        previous = self.at(start)
        for when, octets in self.samples:
            if start < when <= end and octets > previous:
                changes.append(when)
                previous = int(octets)
        changes.append(end)
        return round(max(b - a for a, b in itertools.pairwise(changes)), 6)


@dataclass
class HandoverReport:
    """One handover of one MN: the bMAG's result and what the traffic saw around it."""

    mn_id: str
    handover: int
    outcome: str
    completed: bool
    status: int | None
    previous_lma: str | None
    new_lma: str | None
    #: Seconds from (b) to (i), from the bMAG; None unless completed.
    latency: float | None
    #: When step (a) was delivered and when the bMAG reported the end (Unix seconds).
    triggered: float
    done: float
    #: The tunnel the MN's uplink takes after the handover (the kernel's route lookup at the bMAG).
    tunnel: str | None = None
    echo: EchoWindow | None = None
    tcp_sent: int | None = None
    tcp_verified: int | None = None
    tcp_longest_stall: float | None = None


@dataclass
class TunnelCount:
    """An agent's tunnel and the packets through it during the run."""

    agent: str
    name: str
    remote: str
    packets_out: int
    packets_in: int


@dataclass
class LabReport:
    """The whole run."""

    run_id: str
    mobiles: int
    handovers_per_mobile: int
    variant: str
    seed: int
    tunnel_mode: str
    seconds: float
    handovers: list[HandoverReport] = field(default_factory=list)
    echo_sent: int = 0
    echo_lost: int = 0
    echo_longest_gap: float = 0.0
    echo_interval: float = 0.0
    tcp_sent: int = 0
    tcp_received: int = 0
    tcp_verified: int = 0
    tcp_first_mismatch: int | None = None
    tunnels: list[TunnelCount] = field(default_factory=list)
    #: The bMAG's and the anchor LMA's tunnels, rules and routes before the first
    #: handover and after the last.
    state_before: dict[str, Any] = field(default_factory=dict)
    state_after: dict[str, Any] = field(default_factory=dict)
    pcap: str | None = None
    #: Each agent's exit status after SIGTERM (0: it removed what it had added).
    agent_exits: dict[str, int] = field(default_factory=dict)

    @property
    def completed(self) -> int:
        return sum(1 for h in self.handovers if h.completed)

    @property
    def tcp_intact(self) -> bool:
        """Every octet sent arrived, in order, as sent."""
        return self.tcp_sent == self.tcp_verified == self.tcp_received and (
            self.tcp_first_mismatch is None
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["completed"] = self.completed
        data["tcp_intact"] = self.tcp_intact
        return data

    def lines(self) -> list[str]:
        """The report for a terminal: one line per handover, then the totals."""
        out = [
            f"lmaho lab run {self.run_id}: {self.mobiles} MN(s) x {self.handovers_per_mobile} "
            f"handover(s), variant {self.variant}, tunnels {self.tunnel_mode}, "
            f"seed {self.seed}, {self.seconds:.1f} s"
        ]
        header = (
            f"  {'MN':<20} {'#':>2} {'outcome':<10} {'(b)-(i)':>9} {'tunnel':<8} "
            f"{'echo sent/lost':>14} {'longest gap':>11} {'TCP sent/verified':>19} "
            f"{'TCP stall':>9}"
        )
        out.append(header)
        for h in self.handovers:
            latency = f"{h.latency * 1000:.1f} ms" if h.latency is not None else "-"
            echo = f"{h.echo.sent}/{h.echo.lost}" if h.echo else "-"
            gap = f"{h.echo.longest_gap * 1000:.0f} ms" if h.echo else "-"
            tcp = f"{h.tcp_sent}/{h.tcp_verified}" if h.tcp_sent is not None else "-"
            stall = (
                f"{h.tcp_longest_stall * 1000:.0f} ms" if h.tcp_longest_stall is not None else "-"
            )
            out.append(
                f"  {h.mn_id:<20} {h.handover:>2} {h.outcome:<10} {latency:>9} "
                f"{h.tunnel or '-':<8} {echo:>14} {gap:>11} {tcp:>19} {stall:>9}"
            )
        out.append(
            f"  handovers: {self.completed} of {len(self.handovers)} completed; "
            f"echo: {self.echo_sent} sent every {self.echo_interval * 1000:g} ms per MN, "
            f"{self.echo_lost} lost, longest gap {self.echo_longest_gap * 1000:.0f} ms"
        )
        verdict = (
            "every byte verified"
            if self.tcp_intact
            else f"{self.tcp_sent - self.tcp_verified} octets NOT delivered intact"
        )
        mismatch = (
            f", first mismatch at octet {self.tcp_first_mismatch}"
            if self.tcp_first_mismatch is not None
            else ""
        )
        out.append(
            f"  TCP stream CN -> MN 1: {self.tcp_sent} octets sent, {self.tcp_received} received, "
            f"{self.tcp_verified} verified: {verdict}{mismatch}"
        )
        for t in self.tunnels:
            out.append(
                f"  {t.agent} {t.name} -> {t.remote}: {t.packets_out} packets out, "
                f"{t.packets_in} in"
            )
        unclean = {name: s for name, s in self.agent_exits.items() if s != 0}
        if unclean:
            out.append(
                "  agents that did not exit cleanly after SIGTERM: "
                + ", ".join(f"{name} (status {s})" for name, s in unclean.items())
            )
        if self.pcap:
            out.append(f"  capture: {self.pcap}")
        return out
