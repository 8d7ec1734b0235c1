"""One ``lmaho lab run``: build Figure 1, start the agents and the traffic,
trigger the handovers, measure them, tear everything down.

:class:`Lab` does it in that order and tears down in a ``finally``: on a
normal end, on an error, on Ctrl-C and on SIGTERM (turned into the same
interrupt). Teardown stops the traffic, the agents (SIGTERM: they remove
their tunnels, rules and routes and exit 0) and the captures, then removes
everything the run's ledger names. :func:`down` does the last part for runs
that were killed before they could.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmaho_entities import DEFAULT_SCENARIO, PolicyProfile, Scenario, Variant
from lmaho_entities.scenario import LMA_ROLES, MobileSpec
from lmaho_live.config import configs_for_scenario
from lmaho_live.control import ControlError, request
from lmaho_live.policydb import PolicyDatabase

from .capture import LinkCapture
from .ledger import STATE_DIR, TERM_GRACE, LabError, Ledger, Teardown, leftover_ledgers, new_run_id
from .processes import NamespaceProcess, python_module
from .report import EchoRecord, HandoverReport, LabReport, StreamRecord
from .topology import Topology, build, plain_forwarding, plan

#: The TCP port of the MN's sink.
TCP_PORT = 5201
#: Echo requests per second over all MNs at most (each MN's interval grows beyond).
MAX_ECHO_RATE = 500.0
#: Seconds to wait for an agent's "ready" or a helper's first line.
START_TIMEOUT = 60.0  # a bound for a loaded machine, not a wait: most take a second
#: Longest a handover may take: the bMAG gives up after 1 + 2 + 4 + 8 s of
#: retransmissions (docs/wire-format.md 9), plus a margin.
HANDOVER_TIMEOUT = 20.0
#: Seconds an agent gets per MN, beyond TERM_GRACE, to remove its state after SIGTERM.
AGENT_EXIT_PER_MOBILE = 0.02


@dataclass(frozen=True)
class LabOptions:
    """What ``lmaho lab run`` was asked for."""

    scenario: Scenario = DEFAULT_SCENARIO
    mobiles: int = 1
    handovers: int = 1
    variant: Variant = Variant.NONE
    seed: int = 0
    pcap: Path | None = None
    tunnels: str = "auto"
    #: How each MN comes to be registered at its anchor before the traffic: "seed" (the
    #: state a PBU/PBA would leave, set through the control sockets) or "pbu" (the
    #: bMAG's RFC 5213 PBU/PBA on the wire).
    register: str = "seed"
    #: Seconds between one MN's echo requests (longer with many MNs, see MAX_ECHO_RATE).
    echo_interval: float = 0.01
    #: Octets per second of the TCP stream CN -> MN 1.
    tcp_rate: int = 100_000
    #: Seconds of traffic before the first handover and after each round of handovers
    #: (None: the scenario's timing.handover_interval).
    settle: float | None = None
    #: False: no agents, plain forwarding along the same path (a baseline, and the
    #: data path of a lab without lmaho_live).
    agents: bool = True
    state_dir: Path = STATE_DIR


@dataclass
class _Mobile:
    spec: MobileSpec
    serving: str  # "plma" or "nlma": where its traffic is anchored at the bMAG now
    results: list[HandoverReport] = field(default_factory=list)


class Control:
    """An agent's control socket (docs/agent.md): a request, its successful reply."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what

    def __call__(self, cmd: str, **fields: Any) -> dict[str, Any]:
        try:
            reply: dict[str, Any] = request(self.path, {"cmd": cmd, **fields})
        except ControlError as e:
            raise LabError(f"{self.what}: {cmd}: {e}") from None
        if not reply.get("ok"):
            raise LabError(f"{self.what}: {cmd}: {reply.get('error', reply)}")
        return reply


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGHUP) raise KeyboardInterrupt, like Ctrl-C, so teardown runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    lab_process = os.getpid()

    def interrupt(signum: int, frame: object) -> None:
        if os.getpid() != lab_process:
            # A child forked by a library (pyroute2 forks to make namespaces) inherits this
            # handler; it must die as if it had none, not unwind the lab's stack and tear down.
            os._exit(128 + signum)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class Lab:
    """One lab run; :meth:`run` always tears down what it made."""

    def __init__(self, options: LabOptions) -> None:
        self.options = options
        self.ledger = Ledger(new_run_id(), options.state_dir)
        self.topology: Topology | None = None
        self.agents: dict[str, NamespaceProcess] = {}
        self.controls: dict[str, Control] = {}
        self.helpers: list[NamespaceProcess] = []
        self.capture: LinkCapture | None = None
        self._started = time.monotonic()
        self.rng = random.Random(options.seed)
        self._interrupts: contextlib.AbstractContextManager[None] = contextlib.nullcontext()

    @property
    def run_id(self) -> str:
        return self.ledger.run_id

    def __enter__(self) -> Lab:
        """Build the lab and start the agents (or plain forwarding); no traffic yet."""
        self._interrupts = terminate_as_interrupt()
        self._interrupts.__enter__()
        try:
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self.teardown()
        finally:
            self._interrupts.__exit__(None, None, None)

    def run(self) -> LabReport:
        """The whole run: build, traffic, handovers, report; torn down whatever happens."""
        with self:
            return self._run()

    def start(self) -> Topology:
        o = self.options
        self._started = time.monotonic()
        self.ledger.create()
        topology = self.topology = plan(o.scenario, o.mobiles, self.ledger.namespace)
        build(topology, self.ledger)
        if o.pcap is not None:
            self.capture = LinkCapture(topology, self.ledger, o.pcap)
        if o.agents:
            self._start_agents(topology)
        else:
            plain_forwarding(topology)
        return topology

    # --- the run ---------------------------------------------------------------------

    def _run(self) -> LabReport:
        o = self.options
        assert self.topology is not None
        topology = self.topology
        sink, source, echo = self._start_traffic(topology)
        mobiles = {m.identifier: _Mobile(m, o.scenario.mobiles.anchor) for m in topology.mobiles}
        settle = o.scenario.timing.handover_interval if o.settle is None else o.settle
        time.sleep(settle)
        report = LabReport(
            self.run_id,
            o.mobiles,
            o.handovers,
            o.variant.value,
            o.seed,
            "plain" if not o.agents else o.tunnels,
            0.0,
        )
        report.state_before = self._state()
        if o.agents:
            for _ in range(o.handovers):
                self._handover_round(list(mobiles.values()))
                time.sleep(settle)
                self._note_tunnels(topology, list(mobiles.values()))
        report.state_after = self._state()
        traffic_end = time.time()
        for helper in (echo, source):
            helper.close_input()
        source_report = source.wait_for("report", START_TIMEOUT)
        sink.close_input()  # only now: the source has closed the stream, or given up
        sink_report = sink.wait_for("report", START_TIMEOUT)
        echo_report = echo.wait_for("report", START_TIMEOUT)
        if o.agents:
            report.tunnels = self.tunnel_counts()
        report.agent_exits = self._stop_agents()
        if self.capture is not None:
            report.pcap = str(self.capture.stop())
            self.capture = None
        self._measure(report, mobiles, traffic_end, echo_report, source_report, sink_report)
        report.seconds = round(time.monotonic() - self._started, 3)
        return report

    def _start_agents(self, topology: Topology) -> None:
        o = self.options
        runtime = self.ledger.runtime_dir
        configs = configs_for_scenario(
            o.scenario, runtime_dir=runtime, variant=o.variant, tunnels=o.tunnels
        )
        anchor_role = o.scenario.mobiles.anchor
        anchor = o.scenario.lma(anchor_role)
        with PolicyDatabase(configs["store"].policy_store.database) as database:
            for m in topology.mobiles:
                database.put(PolicyProfile(m.identifier, anchor.address, None, (m.prefix,)))
        for name, config in configs.items():
            path = runtime / f"{name}.toml"
            config.dump(path)
            role = config.role
            self.agents[name] = NamespaceProcess(
                self.ledger,
                topology.namespaces[name],
                [*lmaho_command(), "agent", role, "--config", str(path), "--json"],
                f"{name} agent",
                stderr=runtime / f"{name}.log",
            )
        for name, agent in self.agents.items():
            agent.wait_for("ready", START_TIMEOUT)
            self.controls[name] = Control(Path(configs[name].control), f"{name} agent")
        lifetime = min(o.scenario.bmag.binding_lifetime, anchor.max_lifetime)
        for m in topology.mobiles:
            mac = ":".join(f"{b:02x}" for b in m.mac)
            if o.register == "seed":
                self.controls[anchor_role](
                    "register",
                    mn_id=m.identifier,
                    prefix=str(m.prefix),
                    mag=str(o.scenario.bmag.address),
                    lifetime=lifetime,
                    mac=mac,
                )
            self.controls["bmag"](
                "attach",
                mn_id=m.identifier,
                mac=mac,
                prefix=str(m.prefix),
                address=str(m.address),
                interface=topology.access_link(m).name,
                lma=str(anchor.address),
                lifetime=lifetime,
                register=o.register,
            )
        if o.register == "pbu":
            self._await_registrations(topology)

    def _await_registrations(self, topology: Topology) -> None:
        """Every MN's PBU answered by an accepting PBA; LabError naming the first that is not."""
        waiting = {m.identifier for m in topology.mobiles}
        deadline = time.monotonic() + HANDOVER_TIMEOUT
        while waiting:
            event = self.agents["bmag"].wait_for(
                "registered", max(0.0, deadline - time.monotonic())
            )
            mn_id = str(event["mn_id"])
            if not event["completed"]:
                raise LabError(
                    f"registering {mn_id} by PBU: {event['outcome']} (status {event['status']})"
                )
            waiting.discard(mn_id)

    def _start_traffic(
        self, topology: Topology
    ) -> tuple[NamespaceProcess, NamespaceProcess, NamespaceProcess]:
        o = self.options
        first = topology.mobiles[0]
        helper = self.traffic

        seed = str(o.seed)
        sink = helper("mn1", "tcp sink", "tcp-sink", "--port", str(TCP_PORT), "--seed", seed)
        sink.wait_for("ready", START_TIMEOUT)
        source = helper(
            "cn",
            "tcp source",
            "tcp-source",
            "--to",
            str(first.address),
            "--port",
            str(TCP_PORT),
            "--rate",
            str(o.tcp_rate),
            "--seed",
            seed,
        )
        echo = helper(
            "cn",
            "echo",
            "echo",
            "--targets",
            ",".join(str(m.address) for m in topology.mobiles),
            "--interval",
            str(self.echo_interval),
        )
        source.wait_for("ready", START_TIMEOUT)
        echo.wait_for("ready", START_TIMEOUT)
        return sink, source, echo

    def traffic(self, node: str, what: str, *args: str) -> NamespaceProcess:
        """``python -m lmaho_lab.traffic ARGS`` in ``node``'s namespace, stopped at teardown."""
        assert self.topology is not None
        process = NamespaceProcess(
            self.ledger,
            self.topology.namespaces[node],
            python_module("lmaho_lab.traffic", *args),
            what,
            stderr=self.ledger.runtime_dir / f"{what.replace(' ', '-')}.log",
        )
        self.helpers.append(process)
        return process

    @property
    def echo_interval(self) -> float:
        return max(self.options.echo_interval, self.options.mobiles / MAX_ECHO_RATE)

    def _handover_round(self, mobiles: list[_Mobile]) -> None:
        """Step (a) for every MN towards the LMA it does not use, then wait for every result."""
        o = self.options
        bmag = self.agents["bmag"]
        # As in craft, MN i reports at (i + u) * spacing, u random from --seed; a round of
        # many MNs is squeezed into about a second.
        spacing = min(o.scenario.timing.mobile_spacing, 1.0 / len(mobiles))
        offsets = [(i + self.rng.random()) * spacing for i in range(len(mobiles))]
        pending: dict[tuple[str, int], tuple[_Mobile, float]] = {}
        round_start = time.monotonic()
        for mobile, offset in zip(mobiles, offsets, strict=True):
            time.sleep(max(0.0, round_start + offset - time.monotonic()))
            target = next(r for r in LMA_ROLES if r != mobile.serving)
            ap = next(a for a in o.scenario.access_points.values() if a.lma == target)
            triggered = time.time()
            reply = self.controls["bmag"](
                "handover",
                mn_id=mobile.spec.identifier,
                new_ap={"id_type": ap.id_type, "identifier": ap.identifier},
            )
            pending[(mobile.spec.identifier, int(reply["handover"]))] = (mobile, triggered)
        deadline = time.monotonic() + HANDOVER_TIMEOUT
        while pending:
            event = bmag.wait_for("handover-done", max(0.0, deadline - time.monotonic()))
            key = (str(event["mn_id"]), int(event["handover"]))
            if key not in pending:
                continue
            mobile, triggered = pending.pop(key)
            result = HandoverReport(
                mn_id=key[0],
                handover=key[1],
                outcome=str(event["outcome"]),
                completed=bool(event["completed"]),
                status=event.get("status"),
                previous_lma=event.get("previous_lma"),
                new_lma=event.get("new_lma"),
                latency=event.get("latency"),
                triggered=triggered,
                done=float(event["time"]),
                tunnel=event.get("tunnel"),
            )
            mobile.results.append(result)
            if result.completed:
                mobile.serving = next(r for r in LMA_ROLES if r != mobile.serving)

    def _note_tunnels(self, topology: Topology, mobiles: list[_Mobile]) -> None:
        """The tunnel each MN's uplink takes now, by the bMAG kernel's own route lookup."""
        from .topology import index_of, netlink

        cn = str(topology.addresses["cn"])
        with netlink(topology.namespaces["bmag"]) as ipr:
            names = {int(link["index"]): link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
            for mobile in mobiles:
                if not mobile.results:
                    continue
                access = index_of(ipr, topology.access_link(mobile.spec).name)
                try:
                    route = ipr.route("get", dst=cn, src=str(mobile.spec.address), iif=access)[0]
                except Exception:  # no route: the MN's traffic goes nowhere
                    mobile.results[-1].tunnel = None
                    continue
                mobile.results[-1].tunnel = names.get(int(route.get_attr("RTA_OIF") or 0))

    def _state(self) -> dict[str, Any]:
        """Rules, routes and tunnels of the bMAG and the anchor LMA, from their status."""
        if not self.controls:
            return {}
        anchor = self.options.scenario.mobiles.anchor
        state = {}
        for name in ("bmag", anchor):
            status = self.controls[name]("status")
            state[name] = {k: status.get(k, []) for k in ("tunnels", "rules", "routes")}
        return state

    def tunnel_counts(self) -> list[Any]:
        from .report import TunnelCount

        counts = []
        for name, control in self.controls.items():
            for t in control("status").get("tunnels", []):
                counts.append(
                    TunnelCount(
                        name,
                        str(t["name"]),
                        str(t["remote"]),
                        int(t.get("packets_out", 0)),
                        int(t.get("packets_in", 0)),
                    )
                )
        return counts

    def _measure(
        self,
        report: LabReport,
        mobiles: dict[str, _Mobile],
        traffic_end: float,
        echo_report: dict[str, Any],
        source_report: dict[str, Any],
        sink_report: dict[str, Any],
    ) -> None:
        report.echo_interval = float(echo_report["interval"])
        sent = StreamRecord(source_report["sent_samples"])
        verified = StreamRecord(sink_report["verified_samples"])
        report.tcp_sent = int(source_report["sent"])
        report.tcp_received = int(sink_report["received"])
        report.tcp_verified = int(sink_report["verified"])
        report.tcp_first_mismatch = sink_report["first_mismatch"]
        first = self.topology.mobiles[0].identifier if self.topology else ""
        for mobile in mobiles.values():
            record = echo_report["targets"][str(mobile.spec.address)]
            echo = EchoRecord(record["sent"], record["replied"])
            whole = echo.window(echo.sent[0] if echo.sent else 0.0, traffic_end)
            report.echo_sent += whole.sent
            report.echo_lost += whole.lost
            report.echo_longest_gap = max(report.echo_longest_gap, whole.longest_gap)
            ends = [r.triggered for r in mobile.results[1:]] + [traffic_end]
            for result, end in zip(mobile.results, ends[: len(mobile.results)], strict=True):
                result.echo = echo.window(result.triggered, end)
                if mobile.spec.identifier == first:
                    result.tcp_sent = sent.between(result.triggered, end)
                    result.tcp_verified = verified.between(result.triggered, end)
                    result.tcp_longest_stall = verified.longest_stall(result.triggered, end)
            report.handovers.extend(mobile.results)
        report.handovers.sort(key=lambda h: (h.triggered, h.mn_id))

    # --- teardown --------------------------------------------------------------------

    def _stop_agents(self) -> dict[str, int]:
        """SIGTERM to every agent at once; their exit statuses (0: cleaned up)."""
        self.controls.clear()
        for agent in self.agents.values():
            agent.send(signal.SIGTERM)
        # Removing an MN's rule and routes takes an agent a few milliseconds each.
        grace = TERM_GRACE + AGENT_EXIT_PER_MOBILE * self.options.mobiles
        statuses = {name: agent.stop(grace=grace) for name, agent in self.agents.items()}
        self.agents.clear()
        return statuses

    def teardown(self) -> Teardown:
        """Stop what runs, remove what exists; nothing the run made remains."""
        for helper in self.helpers:
            helper.stop()
        self.helpers.clear()
        self._stop_agents()
        if self.capture is not None:
            self.capture.abandon()
            self.capture = None
        return self.ledger.teardown()


def lmaho_command() -> list[str]:
    """The ``lmaho`` command line, run by this interpreter."""
    return python_module("lmaho_cli")


def down(state_dir: Path = STATE_DIR, *, include_running: bool = False) -> list[Teardown]:
    """Remove what killed runs left; runs whose process still lives are left alone
    unless ``include_running``."""
    return [
        ledger.teardown()
        for ledger in leftover_ledgers(state_dir)
        if include_running or not ledger.owner_alive
    ]
