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
import ctypes
import functools
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from typing import Any, TypeVar

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from lmaho_entities import Scenario
from lmaho_entities.scenario import CORE_LINKS, MobileSpec, link_local, mobile_spec
from lmaho_wire.packet import mac_bytes

from .ledger import LabError, Ledger

ENTITIES = ("bmag", "plma", "nlma", "store")
IFA_F_NODAD = 0x02
NUD_PERMANENT = 0x80
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
class Neighbour:
    """A static (permanent) neighbour entry: ``address`` is at ``mac`` on ``device``.

    The kernel's IPv6 neighbour table is one for all namespaces, and garbage
    collection starts dropping entries beyond ``gc_thresh3`` (1,024 by default):
    with hundreds of MNs dynamic entries overflow it. Permanent entries are not
    counted, and ND stays off the captures.
    """

    node: str
    device: str
    address: IPv6Address
    mac: str


@dataclass(frozen=True)
class Topology:
    """Namespaces, links, addresses and routes of one lab run."""

    namespaces: dict[str, str]  # node -> namespace
    addresses: dict[str, IPv6Address]  # node -> its global address
    links: tuple[VethLink, ...]
    routes: tuple[Route, ...]
    neighbours: tuple[Neighbour, ...]
    mobiles: tuple[MobileSpec, ...]
    anchor: str
    _index: dict[str, dict[str, list[Any]]] = field(default_factory=dict, compare=False, repr=False)

    def link(self, name: str) -> VethLink:
        for link in self.links:
            if link.name == name:
                return link
        raise KeyError(name)

    def access_link(self, mobile: MobileSpec) -> VethLink:
        return self.link(access_link_name(mobile))

    def links_of(self, node: str) -> list[VethLink]:
        return self._by_node("links", node)

    def routes_of(self, node: str) -> list[Route]:
        return self._by_node("routes", node)

    def neighbours_of(self, node: str) -> list[Neighbour]:
        return self._by_node("neighbours", node)

    def _by_node(self, what: str, node: str) -> list[Any]:
        # Indexed once: with 1,000 MNs a scan per node would be a million steps each.
        index = self._index.get(what)
        if index is None:
            index = self._index[what] = {}
            for item in getattr(self, what):
                nodes = [e.node for e in item.ends] if what == "links" else [item.node]
                for n in nodes:
                    index.setdefault(n, []).append(item)
        return list(index.get(node, []))


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
    routes: list[Route] = []
    neighbours: dict[tuple[str, str, IPv6Address], Neighbour] = {}

    def route(node: str, destination: IPv6Network, device: str, next_hop_mac: str) -> None:
        """A route via a neighbour's link-local address, and that neighbour, static."""
        gateway = _ll(next_hop_mac)
        routes.append(Route(node, destination, device, gateway))
        neighbours[node, device, gateway] = Neighbour(node, device, gateway, next_hop_mac)

    for link in links:
        for near, far in (link.ends, link.ends[::-1]):
            route(near.node, host_route(addresses[far.node]), near.name, far.mac)
    anchor = scenario.mobiles.anchor
    to_anchor = next(lk for lk in links if lk.name in (f"cn-{anchor}", f"{anchor}-cn"))
    access_mac = _mac_text(mac_bytes(scenario.bmag.access_mac))
    for m in specs:
        node, name, mac = mobile_node(m), access_link_name(m), _mac_text(m.mac)
        links.append(
            VethLink(name, (Interface(node, name, mac), Interface("bmag", name, access_mac)))
        )
        route("cn", m.prefix, to_anchor.name, to_anchor.far_end("cn").mac)
        route(node, IPv6Network("::/0"), name, access_mac)
        # The bMAG reaches the MN's address on its access link (the agent's route).
        neighbours["bmag", name, m.address] = Neighbour("bmag", name, m.address, mac)
    nodes = [*ENTITIES, "cn", *(mobile_node(m) for m in specs)]
    return Topology(
        {node: namespace(node) for node in nodes},
        addresses,
        tuple(links),
        tuple(routes),
        tuple(neighbours.values()),
        specs,
        anchor,
    )


def _ll(mac: str) -> IPv6Address:
    return link_local(mac_bytes(mac))


# --- making it -----------------------------------------------------------------------
#
# Network namespaces belong to threads: a short-lived thread that enters a namespace
# (or makes a new one) and opens a netlink socket there does all of one namespace's
# work, so the lab's own thread never changes namespace and no process is forked per
# namespace (pyroute2's netns.create and IPRoute(netns=...) fork one each, 35 ms here,
# which made 1,000 MNs take a minute).

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


def in_namespace(namespace: str | None, work: Callable[[], T], *, create: bool = False) -> T:
    """``work()`` run by a thread inside ``namespace`` (made first with ``create``)."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            if create:
                if _libc.unshare(CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
                # Name this thread's new namespace as `ip netns add` would (a bind mount
                # under /run/netns), so it outlives the thread.
                netns.attach(namespace, f"self/task/{threading.get_native_id()}")
            elif namespace is not None:
                netns.setns(namespace, flags=0)
            outcome.append(work())
        except BaseException as e:  # re-raised in the calling thread
            failure.append(e)

    thread = threading.Thread(target=run, name=f"in {namespace}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def set_sysctls(values: dict[str, str]) -> None:
    """Write ``/proc/sys`` entries; ``/proc/sys/net`` shows the namespace of the writing thread."""
    for key, value in values.items():
        with open(f"/proc/sys/{key}", "w") as f:
            f.write(value)


@contextlib.contextmanager
def netlink(namespace: str) -> Iterator[IPRoute]:
    """An rtnetlink socket inside ``namespace``, for the calling thread."""
    with IPRoute(netns=namespace) as ipr:
        yield ipr


def index_of(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise LabError(f"no interface {name}")
    return int(found[0])


def configure(topology: Topology, node: str, work: Callable[[IPRoute], None]) -> None:
    """``work(ipr)`` with a netlink socket inside ``node``'s namespace."""

    def with_socket() -> None:
        with IPRoute() as ipr:
            work(ipr)

    try:
        in_namespace(topology.namespaces[node], with_socket)
    except NetlinkError as e:
        raise LabError(f"{topology.namespaces[node]}: netlink: {e}") from None


def build(topology: Topology, ledger: Ledger) -> None:
    """Make the namespaces, links, addresses and routes of ``topology``."""
    for node, name in topology.namespaces.items():
        ledger.add_namespace(name)  # recorded before it exists: `lab down` finds it
        sysctls = ROUTER_SYSCTLS if node in ENTITIES else HOST_SYSCTLS
        try:
            in_namespace(name, functools.partial(set_sysctls, sysctls), create=True)
        except OSError as e:
            raise LabError(f"cannot make namespace {name}: {e}") from None
    # Each link is made from its end at an entity or the CN (the MNs' peers are made
    # from the bMAG), then every namespace sets up what it holds.
    for node in topology.namespaces:
        made_here = [link for link in topology.links if _maker(link).node == node]
        if made_here:
            configure(topology, node, functools.partial(_make_veths, topology, made_here))
    for node in topology.namespaces:
        configure(topology, node, functools.partial(_set_up, topology, node))


def _maker(link: VethLink) -> Interface:
    return link.ends[1] if link.ends[0].node.startswith("mn") else link.ends[0]


def _make_veths(topology: Topology, links: list[VethLink], ipr: IPRoute) -> None:
    for link in links:
        near = _maker(link)
        far = link.far_end(near.node)
        ipr.link(
            "add",
            ifname=near.name,
            kind="veth",
            address=near.mac,
            peer={
                "ifname": far.name,
                "address": far.mac,
                "net_ns_fd": topology.namespaces[far.node],
            },
        )


def _set_up(topology: Topology, node: str, ipr: IPRoute) -> None:
    """Interfaces up, the node's address, its routes."""
    ipr.link("set", index=index_of(ipr, "lo"), state="up")
    for link in topology.links_of(node):
        ipr.link("set", index=index_of(ipr, link.name), state="up")
    address = topology.addresses[node]
    if node.startswith("mn"):
        mobile = topology.mobiles[int(node[2:]) - 1]
        device, prefixlen = access_link_name(mobile), mobile.prefix.prefixlen
    else:
        device, prefixlen = "lo", 128
    ipr.addr(
        "add",
        index=index_of(ipr, device),
        address=str(address),
        prefixlen=prefixlen,
        flags=IFA_F_NODAD,
    )
    for n in topology.neighbours_of(node):
        ipr.neigh(
            "add",
            dst=str(n.address),
            lladdr=n.mac,
            ifindex=index_of(ipr, n.device),
            state=NUD_PERMANENT,
        )
    add_routes(topology.routes_of(node), ipr)


def add_routes(routes: list[Route], ipr: IPRoute, table: int = 254) -> None:
    for route in routes:
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
    default = Route("bmag", IPv6Network("::/0"), uplink.name, _ll(uplink.far_end("bmag").mac))
    access_routes = [
        Route("bmag", m.prefix, access_link_name(m), _ll(_mac_text(m.mac)))
        for m in topology.mobiles
    ]
    anchor_routes = [
        Route(anchor, m.prefix, uplink.name, _ll(uplink.end_at("bmag").mac))
        for m in topology.mobiles
    ]

    def bmag(ipr: IPRoute) -> None:
        add_routes([default], ipr, table=PLAIN_TABLE)
        add_routes(access_routes, ipr)
        for m in topology.mobiles:
            ipr.rule(
                "add",
                family=socket.AF_INET6,
                src=str(m.prefix.network_address),
                src_len=m.prefix.prefixlen,
                table=PLAIN_TABLE,
                priority=1000,
            )

    configure(topology, "bmag", bmag)
    configure(topology, anchor, lambda ipr: add_routes(anchor_routes, ipr))
