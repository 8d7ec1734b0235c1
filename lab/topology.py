"""The draft's Figure 1 as Linux network namespaces, from a craft scenario.

:func:`plan` turns a :class:`~lmaho_entities.Scenario` into a
:class:`Topology` (pure data: namespaces, veth links, addresses, routes);
:func:`build` makes it over netlink with pyroute2, recording each namespace
in the run's :class:`~lmaho_lab.ledger.Ledger` before it exists.

* One namespace per node: ``bmag``, ``plma``, ``nlma``, ``store``, ``cn``
  and ``mn1`` ... ``mnN``.
* One veth pair per scenario link (``bmag-plma`` ...), both ends named after
  the link and carrying the scenario's MACs; one per MN access link
  (``mnN-bmag``: the MN's MAC at the MN, ``bmag.access_mac`` at the bMAG).
* Node addresses on ``lo`` (no DAD, none anywhere: every namespace has
  ``accept_dad`` off, so link-local next hops work at once); forwarding on in
  the four entities.
* Routes: each end of a link reaches the address of the node at the other
  end through that node's link-local address, which is every pair that
  signals (and CN-LMA for the data); the CN routes the MN prefixes to the
  anchor LMA (the topological anchor of (j)); an MN's address is its prefix
  plus the EUI-64 of its MAC, with the bMAG as its default gateway.

What the agents add (tunnels, the bMAG's policy rule and its route to each
MN's prefix on the access link, the LMAs' routes of the MN prefixes) is
theirs; :func:`plain_forwarding` gives the same path without agents or
tunnels (plain routing over the veths), the benchmark's baseline.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from lmaho_entities import Scenario
from lmaho_entities.scenario import CORE_LINKS, MobileSpec, link_local, mobile_spec
from lmaho_wire.packet import mac_bytes

from .ledger import LabError, Ledger

ENTITIES = ("bmag", "plma", "nlma", "store")
IFA_F_NODAD = 0x02
#: Every namespace: no duplicate address detection, no router solicitations on the capture.
HOST_SYSCTLS = {
    "net/ipv6/conf/all/accept_dad": "0",
    "net/ipv6/conf/default/accept_dad": "0",
    "net/ipv6/conf/default/router_solicitations": "0",
    "net/ipv6/conf/default/accept_ra": "0",
}
ROUTER_SYSCTLS = {**HOST_SYSCTLS, "net/ipv6/conf/all/forwarding": "1"}
#: The bMAG's table for the plain-forwarding baseline.
PLAIN_TABLE = 100


@dataclass(frozen=True)
class Interface:
    """One end of a veth pair."""

    node: str
    name: str
    mac: str


@dataclass(frozen=True)
class VethLink:
    """A link: its name (both ends carry it) and its two ends."""

    name: str
    ends: tuple[Interface, Interface]

    def end_at(self, node: str) -> Interface:
        return self.ends[0] if self.ends[0].node == node else self.ends[1]

    def far_end(self, node: str) -> Interface:
        return self.ends[1] if self.ends[0].node == node else self.ends[0]


@dataclass(frozen=True)
class Route:
    """``destination`` from ``node``'s namespace out of ``device``, via a link-local gateway."""

    node: str
    destination: IPv6Network
    device: str
    gateway: IPv6Address


@dataclass(frozen=True)
class Topology:
    """Namespaces, links, addresses and routes of one lab run."""

    namespaces: dict[str, str]  # node -> namespace
    addresses: dict[str, IPv6Address]  # node -> its global address
    links: tuple[VethLink, ...]
    routes: tuple[Route, ...]
    mobiles: tuple[MobileSpec, ...]
    anchor: str

    def link(self, name: str) -> VethLink:
        for link in self.links:
            if link.name == name:
                return link
        raise KeyError(name)

    def access_link(self, mobile: MobileSpec) -> VethLink:
        return self.link(access_link_name(mobile))

    def links_of(self, node: str) -> list[VethLink]:
        return [link for link in self.links if node in (link.ends[0].node, link.ends[1].node)]


def access_link_name(mobile: MobileSpec) -> str:
    return f"mn{mobile.n}-bmag"


def mobile_node(mobile: MobileSpec) -> str:
    return f"mn{mobile.n}"


def _mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def host_route(address: IPv6Address) -> IPv6Network:
    return IPv6Network((address, 128))


def plan(scenario: Scenario, mobiles: int, namespace: Callable[[str], str]) -> Topology:
    """The lab of ``scenario`` with ``mobiles`` MNs; ``namespace`` names a node's namespace."""
    specs = tuple(mobile_spec(scenario.mobiles, n) for n in range(1, mobiles + 1))
    addresses = {
        "bmag": scenario.bmag.address,
        "plma": scenario.plma.address,
        "nlma": scenario.nlma.address,
        "store": scenario.store.address,
        "cn": scenario.cn.address,
        **{mobile_node(m): m.address for m in specs},
    }
    links = [
        VethLink(name, (Interface(a, name, macs[0]), Interface(b, name, macs[1])))
        for name in CORE_LINKS
        for a, b in [name.split("-")]
        for macs in [scenario.links[name].macs]
    ]
    access_mac = _mac_text(mac_bytes(scenario.bmag.access_mac))
    links += [
        VethLink(
            access_link_name(m),
            (
                Interface(mobile_node(m), access_link_name(m), _mac_text(m.mac)),
                Interface("bmag", access_link_name(m), access_mac),
            ),
        )
        for m in specs
    ]
    routes: list[Route] = []
    for link in links[: len(CORE_LINKS)]:
        for near, far in (link.ends, link.ends[::-1]):
            routes.append(
                Route(near.node, host_route(addresses[far.node]), near.name, _ll(far.mac))
            )
    anchor = scenario.mobiles.anchor
    to_anchor = next(lk for lk in links if lk.name in (f"cn-{anchor}", f"{anchor}-cn"))
    for m in specs:
        access = next(lk for lk in links if lk.name == access_link_name(m))
        routes.append(Route("cn", m.prefix, to_anchor.name, _ll(to_anchor.far_end("cn").mac)))
        routes.append(Route(mobile_node(m), IPv6Network("::/0"), access.name, _ll(access_mac)))
    nodes = [*ENTITIES, "cn", *(mobile_node(m) for m in specs)]
    return Topology(
        {node: namespace(node) for node in nodes},
        addresses,
        tuple(links),
        tuple(routes),
        specs,
        anchor,
    )


def _ll(mac: str) -> IPv6Address:
    return link_local(mac_bytes(mac))


# --- making it -----------------------------------------------------------------------


def set_sysctls(namespace: str, values: dict[str, str]) -> None:
    """Write ``/proc/sys`` entries inside ``namespace``.

    ``/proc/sys/net`` shows the network namespace of the thread that opens it,
    so a short-lived thread enters the namespace and writes them; the caller's
    own namespace is never touched.
    """
    failure: list[BaseException] = []

    def write() -> None:
        try:
            netns.setns(namespace, flags=0)
            for key, value in values.items():
                with open(f"/proc/sys/{key}", "w") as f:
                    f.write(value)
        except BaseException as e:  # reported in the calling thread
            failure.append(e)

    thread = threading.Thread(target=write, name=f"sysctl {namespace}")
    thread.start()
    thread.join()
    if failure:
        raise LabError(f"{namespace}: cannot set sysctls: {failure[0]}")


@contextlib.contextmanager
def netlink(namespace: str) -> Iterator[IPRoute]:
    """An rtnetlink socket inside ``namespace``."""
    with IPRoute(netns=namespace) as ipr:
        yield ipr


def index_of(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise LabError(f"no interface {name}")
    return int(found[0])


def build(topology: Topology, ledger: Ledger) -> None:
    """Make the namespaces, links, addresses and routes of ``topology``."""
    try:
        for node, name in topology.namespaces.items():
            ledger.add_namespace(name)
            netns.create(name)
            set_sysctls(name, ROUTER_SYSCTLS if node in ENTITIES else HOST_SYSCTLS)
        for node, name in topology.namespaces.items():
            with netlink(name) as ipr:
                ipr.link("set", index=index_of(ipr, "lo"), state="up")
                if node.startswith("mn"):
                    continue  # an MN's address belongs on its access link
                ipr.addr(
                    "add",
                    index=index_of(ipr, "lo"),
                    address=str(topology.addresses[node]),
                    prefixlen=128,
                    flags=IFA_F_NODAD,
                )
        for link in topology.links:
            _make_veth(topology, link)
        for m in topology.mobiles:
            node = mobile_node(m)
            with netlink(topology.namespaces[node]) as ipr:
                ipr.addr(
                    "add",
                    index=index_of(ipr, access_link_name(m)),
                    address=str(m.address),
                    prefixlen=m.prefix.prefixlen,
                    flags=IFA_F_NODAD,
                )
        add_routes(topology, topology.routes)
    except NetlinkError as e:
        raise LabError(f"building the lab: netlink: {e}") from None


def _make_veth(topology: Topology, link: VethLink) -> None:
    a, b = link.ends
    with netlink(topology.namespaces[a.node]) as ipr:
        ipr.link(
            "add",
            ifname=a.name,
            kind="veth",
            address=a.mac,
            peer={
                "ifname": b.name,
                "address": b.mac,
                "net_ns_fd": topology.namespaces[b.node],
            },
        )
        ipr.link("set", index=index_of(ipr, a.name), state="up")
    with netlink(topology.namespaces[b.node]) as ipr:
        ipr.link("set", index=index_of(ipr, b.name), state="up")


def add_routes(
    topology: Topology, routes: tuple[Route, ...] | list[Route], table: int = 254
) -> None:
    by_node: dict[str, list[Route]] = {}
    for route in routes:
        by_node.setdefault(route.node, []).append(route)
    for node, node_routes in by_node.items():
        with netlink(topology.namespaces[node]) as ipr:
            for route in node_routes:
                ipr.route(
                    "add",
                    family=socket.AF_INET6,
                    dst=str(route.destination),
                    oif=index_of(ipr, route.device),
                    gateway=str(route.gateway),
                    table=table,
                )


def plain_forwarding(topology: Topology) -> None:
    """The MNs' data path without agents or tunnels: the anchor LMA routes their
    prefixes over its link to the bMAG, the bMAG routes them on their access
    links and sends what they send to the anchor (a rule on each prefix
    selecting a table whose default route is that link, where the agents'
    rule selects the tunnel)."""
    anchor = topology.anchor
    uplink = topology.link(f"bmag-{anchor}")
    bmag_routes = [Route("bmag", IPv6Network("::/0"), uplink.name, _ll(uplink.far_end("bmag").mac))]
    access_routes = [
        Route("bmag", m.prefix, access_link_name(m), _ll(_mac_text(m.mac)))
        for m in topology.mobiles
    ]
    anchor_routes = [
        Route(anchor, m.prefix, uplink.name, _ll(uplink.end_at("bmag").mac))
        for m in topology.mobiles
    ]
    try:
        add_routes(topology, bmag_routes, table=PLAIN_TABLE)
        add_routes(topology, [*anchor_routes, *access_routes])
        with netlink(topology.namespaces["bmag"]) as ipr:
            for m in topology.mobiles:
                ipr.rule(
                    "add",
                    family=socket.AF_INET6,
                    src=str(m.prefix.network_address),
                    src_len=m.prefix.prefixlen,
                    table=PLAIN_TABLE,
                    priority=1000,
                )
    except NetlinkError as e:
        raise LabError(f"plain forwarding: netlink: {e}") from None
