"""One MN's context, the reference addresses and a recording network, for entity-level tests."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network
from typing import Any

from lmaho_entities import Lma, Packet, Scheduler
from lmaho_entities.context import MobileContext
from lmaho_entities.network import ApReport
from lmaho_wire import option

BMAG = IPv6Address("2001:db8:b::1")
PLMA = IPv6Address("2001:db8:1::1")
NLMA = IPv6Address("2001:db8:2::1")
STORE = IPv6Address("2001:db8:f::1")
CN = IPv6Address("2001:db8:c::1")
PREFIX = IPv6Network("2001:db8:100::/64")
MN_MAC = b"\x02\0\0\1\0\1"
AP_NLMA = option("new_ap_id", id_type="BSSID", identifier="02:00:00:aa:00:02")
CTX = MobileContext.build("mn1@x", (PREFIX,), link_layer=MN_MAC, access_technology="IEEE_802_11")


class Recorder:
    """A network that keeps what is sent and delivers nothing."""

    def __init__(self) -> None:
        self.sent: list[Packet] = []

    def send(self, sender: str, next_hop: IPv6Address, packet: Packet) -> None:
        self.sent.append(packet)

    def report(self, sender: str, next_hop: IPv6Address, report: ApReport) -> None:
        pass


def make_lma(address: IPv6Address = PLMA, **settings: Any) -> tuple[Lma, Recorder]:
    """An LMA at ``address`` on a virtual clock whose sends are recorded."""
    net = Recorder()
    lma = Lma(
        "lma",
        address,
        Scheduler(),
        net,
        store=STORE,
        upstream=CN,
        access_points={AP_NLMA.data: NLMA},
        max_lifetime=3600,
        **settings,
    )
    return lma, net
