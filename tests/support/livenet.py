"""Network namespaces, veth links and live agents for the root tests of lmaho_live.

:class:`Lab` makes namespaces named ``lht-<pid>-<node>`` (and veth pairs
named after the pid), starts ``lmaho agent`` processes inside them with
``pyroute2.netns.setns`` in ``preexec_fn``, and removes every namespace and
kills every process it made in :meth:`Lab.close`, whatever happened before.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute, netns

from lmaho_live.config import AgentConfig
from lmaho_live.control import request

from .cli import LMAHO_COMMAND

IFA_F_NODAD = 0x02  # linux/if_addr.h


class Agent:
    """A running ``lmaho agent`` and the JSON events it printed so far."""

    def __init__(self, lab: Lab, node: str, config: AgentConfig, path: Path) -> None:
        self.node = node
        self.config = config
        self.events: list[dict[str, Any]] = []
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.process = subprocess.Popen(
            [*LMAHO_COMMAND, "agent", config.role, "--config", str(path), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lab.enter(node),
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self._lines.put(json.loads(line))
        self._lines.put(None)

    def wait_for(
        self, event: str, timeout: float = 15.0, where: Callable[[dict[str, Any]], bool] = bool
    ) -> dict[str, Any]:
        """The next event named ``event`` (and matching ``where``); AssertionError after timeout."""
        for seen in self.events:
            if seen["event"] == event and where(seen) and not seen.get("_taken"):
                seen["_taken"] = True
                return seen
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                item = self._lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                item = None
                left = -1
            if item is None:
                stderr = "" if self.process.poll() is None else self.process.stderr.read()  # type: ignore[union-attr]
                raise AssertionError(
                    f"{self.node}: no {event} event within {timeout} s; "
                    f"events {[e['event'] for e in self.events]}; stderr {stderr!r}"
                )
            self.events.append(item)
            if item["event"] == event and where(item):
                item["_taken"] = True
                return item
            if left <= 0:
                continue

    def sent(self, last: str | None = None) -> list[str]:
        """The messages this agent has sent so far, in order; with ``last``, once it sent that.

        (Another agent's event may be seen before this one's log line is read.)
        """
        if last is not None:
            self.wait_for("sent", where=lambda e: e["message"] == last)
        while True:
            try:
                item = self._lines.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.events.append(item)
        return [e["message"] for e in self.events if e["event"] == "sent"]

    def ask(self, **message: Any) -> dict[str, Any]:
        reply: dict[str, Any] = request(self.config.control, message)
        return reply

    def stop(self) -> int:
        """SIGTERM, then the exit status (SIGKILL after 10 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


class Lab:
    """Namespaces, links and agents of one test; :meth:`close` removes all of them."""

    def __init__(self, runtime: Path) -> None:
        self.prefix = f"lht-{os.getpid()}-"
        self.runtime = runtime
        self.namespaces: list[str] = []
        self.agents: list[Agent] = []
        self.processes: list[subprocess.Popen[str]] = []
        self._links = 0

    def ns(self, node: str) -> str:
        return self.prefix + node

    def enter(self, node: str) -> Callable[[], None]:
        name = self.ns(node)
        return lambda: netns.setns(name)

    def add_node(self, node: str, *addresses: str, forwarding: bool = False) -> None:
        name = self.ns(node)
        netns.create(name)
        self.namespaces.append(name)
        with IPRoute(netns=name) as ipr:
            lo = ipr.link_lookup(ifname="lo")[0]
            ipr.link("set", index=lo, state="up")
            for address in addresses:
                ipr.addr("add", index=lo, address=address, prefixlen=128, family=socket.AF_INET6)
        # DAD off, so addresses (link-locals included) are usable at once, not tentative for ~2 s.
        settings = {"all/accept_dad": 0, "default/accept_dad": 0}
        if forwarding:
            settings["all/forwarding"] = 1
        self.run_in(
            node,
            "; ".join(
                f"open('/proc/sys/net/ipv6/conf/{key}', 'w').write('{value}')"
                for key, value in settings.items()
            ),
        )

    def run_in(self, node: str, code: str, timeout: float = 20) -> str:
        """Run Python ``code`` in ``node``'s namespace; its standard output."""
        done = subprocess.run(
            [sys.executable, "-c", code],
            preexec_fn=self.enter(node),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return done.stdout

    def link(
        self,
        a: str,
        a_if: str,
        a_addr: str | None,
        b: str,
        b_if: str,
        b_addr: str | None,
    ) -> None:
        """A veth pair between nodes ``a`` and ``b``, named ``a_if``/``b_if`` there."""
        self._links += 1
        tmp_a, tmp_b = f"lht{os.getpid()}a{self._links}", f"lht{os.getpid()}b{self._links}"
        with IPRoute() as ipr:
            ipr.link("add", ifname=tmp_a, kind="veth", peer={"ifname": tmp_b})
            for tmp, node in ((tmp_a, a), (tmp_b, b)):
                index = ipr.link_lookup(ifname=tmp)[0]
                ipr.link("set", index=index, net_ns_fd=self.ns(node))
        for tmp, node, ifname, address in ((tmp_a, a, a_if, a_addr), (tmp_b, b, b_if, b_addr)):
            with IPRoute(netns=self.ns(node)) as ipr:
                index = ipr.link_lookup(ifname=tmp)[0]
                ipr.link("set", index=index, ifname=ifname)
                if address is not None:
                    ip, length = address.split("/")
                    ipr.addr(
                        "add",
                        index=index,
                        address=ip,
                        prefixlen=int(length),
                        family=socket.AF_INET6,
                        flags=IFA_F_NODAD,
                    )
                ipr.link("set", index=index, state="up")

    def route(self, node: str, destination: str, gateway: str, device: str | None = None) -> None:
        with IPRoute(netns=self.ns(node)) as ipr:
            extra: dict[str, Any] = {}
            if device is not None:
                extra["oif"] = ipr.link_lookup(ifname=device)[0]
            ipr.route("add", dst=destination, gateway=gateway, family=socket.AF_INET6, **extra)

    def start(self, node: str, config: AgentConfig) -> Agent:
        return self.start_all({node: [config]})[config.name]

    def start_all(self, configs: dict[str, list[AgentConfig]]) -> dict[str, Agent]:
        """Start agents (node -> its agents' configs) at once; by name, once all are ready."""
        started = {}
        for node, node_configs in configs.items():
            for config in node_configs:
                path = self.runtime / f"{config.name}.toml"
                config.dump(path)
                agent = Agent(self, node, config, path)
                self.agents.append(agent)
                started[config.name] = agent
        for agent in started.values():
            agent.wait_for("ready", timeout=60)
        return started

    def rules(self, node: str) -> list[tuple[str, int, int]]:
        """(source/len, table, priority) of the IPv6 rules with a source in ``node``."""
        with IPRoute(netns=self.ns(node)) as ipr:
            return [
                (f"{r.get_attr('FRA_SRC')}/{r['src_len']}", r.get("table"), r.get("priority"))
                for r in ipr.get_rules(family=socket.AF_INET6)
                if r.get_attr("FRA_SRC")
            ]

    def routes(self, node: str, table: int = 254) -> dict[str, str]:
        """Destination -> interface name of ``node``'s IPv6 routes in ``table`` (no fe80/local)."""
        with IPRoute(netns=self.ns(node)) as ipr:
            names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
            out = {}
            for r in ipr.get_routes(family=socket.AF_INET6, table=table):
                dst = r.get_attr("RTA_DST")
                dst = "default" if dst is None else f"{dst}/{r['dst_len']}"
                if dst.startswith(("fe80", "ff00")):
                    continue
                out[dst] = names.get(r.get_attr("RTA_OIF"), "?")
            return out

    def links(self, node: str) -> set[str]:
        with IPRoute(netns=self.ns(node)) as ipr:
            return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}

    def close(self) -> None:
        for agent in self.agents:
            with contextlib.suppress(Exception):
                agent.stop()
        for name in self.namespaces:
            with contextlib.suppress(Exception):
                netns.remove(name)


PING = """
import socket, struct, sys, time
dst, count, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 58)
s.settimeout(0.05)
got = set()
def receive(until):
    while time.monotonic() < until and len(got) < count:
        try:
            data, src = s.recvfrom(2048)
        except socket.timeout:
            continue
        if data[0] == 129 and struct.unpack('!H', data[4:6])[0] == 0x4c48:
            got.add(struct.unpack('!H', data[6:8])[0])
for seq in range(count):
    s.sendto(struct.pack('!BBHHH', 128, 0, 0, 0x4c48, seq) + b'lmaho', (dst, 0))
    receive(time.monotonic() + interval)
receive(time.monotonic() + 2)  # late replies still count: a loaded machine is not a lost packet
print(len(got))
"""


def ping(lab: Lab, node: str, destination: str, count: int = 5, interval: float = 0.1) -> int:
    """ICMPv6 echoes from ``node`` to ``destination``: how many were answered."""
    done = subprocess.run(
        [sys.executable, "-c", PING, destination, str(count), str(interval)],
        preexec_fn=lab.enter(node),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return int(done.stdout.strip())
