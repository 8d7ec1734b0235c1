"""Appendix A as Linux state: tunnel interfaces, per-MN policy rules and prefix routes.

:class:`LinuxDataPlane` implements the entities' :class:`~lmaho_entities.DataPlane`
over netlink (pyroute2). The entity decides; this module only makes each
decision real and remembers what it added, so :meth:`LinuxDataPlane.close`
removes exactly that:

* a tunnel of the entity's tunnel table (``Tunnel0``, ``Tunnel1``, ...) is an
  interface of the same name, IPv6-in-IPv6 from the agent's address to the
  remote: a kernel ``ip6tnl`` link, or a TUN served by :class:`TunnelRelay`;
* an LMA's prefix route is ``PREFIX dev TunnelN`` in the main table;
* the bMAG's policy route of an MN is a rule ``from PREFIX lookup T`` where
  table T (one per tunnel: ``table_base + N``) holds ``default dev TunnelN``;
  pointing it elsewhere adds the new rule before removing the old one, so
  the MN's packets always match one.

A netlink failure while the procedure runs is reported (``error`` event,
``errors`` counter) and does not stop the agent: the entity's decision
stands, and ``lmaho agent status`` shows what is installed.
"""

from __future__ import annotations

import functools
import os
import re
import socket
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from lmaho_entities import PolicyRoute, TunnelInterface
from lmaho_wire.errors import LmahoError

from .events import EventLog
from .tunnels import TUN_DEVICE, TUNNEL_MTU, TunDevice, TunnelRelay, Unwatch, Watch

MAIN_TABLE = 254
IP6_TNL_F_IGN_ENCAP_LIMIT = 0x1
PROBE_LINK = "lmaho-probe"
TUNNEL_NAME = re.compile(r"Tunnel\d+")


class DataPlaneError(LmahoError):
    """The data plane cannot start (the message names what is missing)."""


def kernel_has_ip6tnl(ipr: IPRoute) -> bool:
    """Whether this kernel makes ``ip6tnl`` links (tried with a link made and deleted at once)."""
    try:
        ipr.link("add", ifname=PROBE_LINK, kind="ip6tnl", ip6tnl_proto=socket.IPPROTO_IPV6)
    except NetlinkError:
        return False
    ipr.link("del", ifname=PROBE_LINK)
    return True


@dataclass(slots=True)
class InstalledTunnel:
    tunnel: TunnelInterface
    index: int
    mode: str
    device: TunDevice | None = None


@dataclass(frozen=True, slots=True)
class InstalledRule:
    source: IPv6Network
    table: int


@dataclass(slots=True)
class _Installed:
    """What this agent added, by key, so that it removes exactly that."""

    tunnels: dict[str, InstalledTunnel] = field(default_factory=dict)
    #: (destination, table) -> interface name
    routes: dict[tuple[str, int], str] = field(default_factory=dict)
    #: MN ID -> its rules
    rules: dict[str, list[InstalledRule]] = field(default_factory=dict)
    #: tunnel name -> its policy table (bMAG)
    tables: dict[str, int] = field(default_factory=dict)


class LinuxDataPlane:
    """The data plane of one agent in the current network namespace.

    ``mode`` is "auto" (kernel ip6tnl when the kernel has it, else userspace),
    "kernel" or "userspace"; :attr:`mode` holds the one in use afterwards.
    ``watch``/``unwatch`` register descriptors with the agent's event loop
    (the userspace tunnels' TUNs and raw socket).
    """

    def __init__(
        self,
        local: IPv6Address,
        *,
        mode: str,
        events: EventLog,
        counters: Counter[str],
        watch: Watch,
        unwatch: Unwatch,
        table_base: int = 1000,
        rule_priority: int = 1000,
    ) -> None:
        self.local = local
        self.events = events
        self.counters = counters
        self.table_base = table_base
        self.rule_priority = rule_priority
        self.ipr = IPRoute()
        self.installed = _Installed()
        self.relay: TunnelRelay | None = None
        try:
            taken = sorted(
                name
                for link in self.ipr.get_links()
                if (name := link.get_attr("IFLA_IFNAME")) and TUNNEL_NAME.fullmatch(name)
            )
            if taken:
                raise DataPlaneError(
                    f"interface {taken[0]} exists already in this network namespace "
                    "(another agent here, or one that was killed: remove it first)"
                )
            has_kernel = mode != "userspace" and kernel_has_ip6tnl(self.ipr)
            if mode == "kernel" and not has_kernel:
                raise DataPlaneError("--tunnels kernel: this kernel makes no ip6tnl interfaces")
            self.mode = "kernel" if has_kernel else "userspace"
            if self.mode == "userspace" and not os.path.exists(TUN_DEVICE):
                raise DataPlaneError(f"no {TUN_DEVICE}: userspace tunnels need the tun driver")
            if self.mode == "userspace":
                self.relay = TunnelRelay(local, watch, unwatch, events, counters)
        except BaseException:
            self.ipr.close()
            raise

    # --- the entities' DataPlane ---------------------------------------------------------

    def add_tunnel(self, tunnel: TunnelInterface) -> None:
        if tunnel.name in self.installed.tunnels:
            return
        installed = self._netlink(f"creating {tunnel.name}", lambda: self._create(tunnel))
        if installed is None:
            return
        self.installed.tunnels[tunnel.name] = installed
        self.events.emit(
            "tunnel",
            name=tunnel.name,
            remote=str(tunnel.remote),
            mode=installed.mode,
            interface=installed.index,
        )

    def route_prefix(self, prefix: IPv6Network, tunnel: TunnelInterface) -> None:
        self._set_route(str(prefix), tunnel.name, MAIN_TABLE)

    def unroute_prefix(self, prefix: IPv6Network) -> None:
        self._remove_route(str(prefix), MAIN_TABLE)

    def point_policy_route(self, mn_id: str, route: PolicyRoute) -> None:
        table = self._table_of(route.interface)
        if table is None:
            return
        old = self.installed.rules.get(mn_id, [])
        new = [InstalledRule(prefix, table) for prefix in route.source_prefixes]
        added = [rule for rule in new if rule not in old]
        for rule in added:
            if (
                self._netlink(f"rule for {mn_id}", functools.partial(self._rule, "add", rule))
                is None
            ):
                return  # keep the old rules: the MN still has a route
        self.installed.rules[mn_id] = new
        for rule in old:
            if rule not in new:
                self._netlink(f"rule for {mn_id}", functools.partial(self._rule, "del", rule))
        for rule in added:
            self.events.emit(
                "rule",
                action="set",
                mn_id=mn_id,
                source=str(rule.source),
                table=rule.table,
                priority=self.rule_priority,
                interface=route.interface,
            )

    def remove_policy_route(self, mn_id: str, route: PolicyRoute) -> None:
        for rule in self.installed.rules.pop(mn_id, []):
            self._netlink(f"rule for {mn_id}", functools.partial(self._rule, "del", rule))
            self.events.emit(
                "rule", action="removed", mn_id=mn_id, source=str(rule.source), table=rule.table
            )

    # --- beyond the entities: the bMAG's access link ------------------------------------------

    def interface_index(self, name: str) -> int | None:
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def route_on_link(self, prefixes: Iterable[IPv6Network], interface: str) -> None:
        """The MN's prefixes are on the access link ``interface`` (downlink delivery, (j))."""
        for prefix in prefixes:
            self._set_route(str(prefix), interface, MAIN_TABLE)

    def unroute_on_link(self, prefixes: Iterable[IPv6Network]) -> None:
        for prefix in prefixes:
            self._remove_route(str(prefix), MAIN_TABLE)

    # --- reading and cleaning up --------------------------------------------------------------

    def status(self) -> dict[str, list[dict[str, Any]]]:
        tunnels = []
        for t in self.installed.tunnels.values():
            tunnels.append(
                {
                    "name": t.tunnel.name,
                    "local": str(t.tunnel.local),
                    "remote": str(t.tunnel.remote),
                    "encapsulation": t.tunnel.encapsulation,
                    "mode": t.mode,
                    "packets_out": None if t.device is None else t.device.packets_out,
                    "packets_in": None if t.device is None else t.device.packets_in,
                }
            )
        routes = [
            {"destination": dst, "interface": interface, "table": table}
            for (dst, table), interface in self.installed.routes.items()
        ]
        names = {table: name for name, table in self.installed.tables.items()}
        rules = [
            {
                "mn_id": mn_id,
                "source": str(rule.source),
                "table": rule.table,
                "priority": self.rule_priority,
                "interface": names.get(rule.table),
            }
            for mn_id, installed in self.installed.rules.items()
            for rule in installed
        ]
        return {"tunnels": tunnels, "routes": routes, "rules": rules}

    def close(self) -> None:
        """Remove every rule, route and tunnel this data plane added."""
        for mn_id, rules in list(self.installed.rules.items()):
            for rule in rules:
                self._netlink(
                    f"removing a rule of {mn_id}", functools.partial(self._rule, "del", rule)
                )
        self.installed.rules.clear()
        for destination, table in list(self.installed.routes):
            self._remove_route(destination, table)
        for tunnel in self.installed.tunnels.values():
            if tunnel.mode == "kernel":
                self._netlink(
                    f"removing {tunnel.tunnel.name}",
                    functools.partial(self.ipr.link, "del", index=tunnel.index),
                )
        self.installed.tunnels.clear()
        if self.relay is not None:
            self.relay.close()  # closing a TUN removes its interface
            self.relay = None
        self.ipr.close()

    # --- netlink ------------------------------------------------------------------------------

    def _create(self, tunnel: TunnelInterface) -> InstalledTunnel:
        device = None
        if self.relay is None:
            self.ipr.link(
                "add",
                ifname=tunnel.name,
                kind="ip6tnl",
                ip6tnl_local=str(tunnel.local),
                ip6tnl_remote=str(tunnel.remote),
                ip6tnl_proto=socket.IPPROTO_IPV6,
                ip6tnl_ttl=64,
                # No Tunnel Encapsulation Limit option: plain RFC 2473 packets, as the
                # userspace tunnel sends and the checker expects ("encaplimit none").
                ip6tnl_flags=IP6_TNL_F_IGN_ENCAP_LIMIT,
            )
        else:
            device = self.relay.add(tunnel.name, tunnel.remote)
        index = self.ipr.link_lookup(ifname=tunnel.name)[0]
        if device is not None:
            self.ipr.link("set", index=index, mtu=TUNNEL_MTU)
        self.ipr.link("set", index=index, state="up")
        return InstalledTunnel(tunnel, index, self.mode, device)

    def _table_of(self, tunnel_name: str) -> int | None:
        """The policy table whose default route is ``tunnel_name``, made when first needed."""
        table = self.installed.tables.get(tunnel_name)
        if table is None:
            table = self.table_base + len(self.installed.tables)
            if not self._set_route("default", tunnel_name, table):
                return None
            self.installed.tables[tunnel_name] = table
        return table

    def _set_route(self, destination: str, interface: str, table: int) -> bool:
        tunnel = self.installed.tunnels.get(interface)
        index = tunnel.index if tunnel is not None else self.interface_index(interface)
        if index is None:
            self.counters["errors"] += 1
            self.events.emit("error", message=f"route {destination}: no interface {interface}")
            return False
        done = self._netlink(
            f"route {destination} dev {interface}",
            lambda: self.ipr.route(
                "replace", dst=destination, oif=index, table=table, family=socket.AF_INET6
            ),
        )
        if done is None:
            return False
        self.installed.routes[(destination, table)] = interface
        self.events.emit(
            "route", action="set", destination=destination, interface=interface, table=table
        )
        return True

    def _remove_route(self, destination: str, table: int) -> None:
        interface = self.installed.routes.pop((destination, table), None)
        if interface is None:
            return
        self._netlink(
            f"removing route {destination}",
            lambda: self.ipr.route("del", dst=destination, table=table, family=socket.AF_INET6),
        )
        self.events.emit(
            "route", action="removed", destination=destination, interface=interface, table=table
        )

    def _rule(self, action: str, rule: InstalledRule) -> object:
        return self.ipr.rule(
            action,
            family=socket.AF_INET6,
            src=str(rule.source.network_address),
            src_len=rule.source.prefixlen,
            table=rule.table,
            priority=self.rule_priority,
        )

    def _netlink(self, what: str, call: Callable[[], Any]) -> Any:
        """``call()``, or None after reporting its failure."""
        try:
            result = call()
        except (NetlinkError, OSError) as e:
            self.counters["errors"] += 1
            self.events.emit("error", message=f"{what}: {e}")
            return None
        return True if result is None else result
