"""Scenarios: the draft's reference network (Figure 1) with every number a user may change.

:data:`DEFAULT_SCENARIO` is the built-in reference network: CN, PLMA, NLMA,
bMAG, remote policy store and the MNs on the bMAG's access link. A TOML
file read by :func:`load_scenario` changes any part of it; keys it leaves
out keep their defaults. ``cli/scenarios/default.toml`` spells out the
whole default, with a comment on every key.

Times are in seconds, lifetimes in seconds (multiples of 4, the unit on the
wire), MAC addresses as "02:00:00:00:00:01".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmaho_wire import option
from lmaho_wire.errors import LmahoError
from lmaho_wire.packet import mac_bytes
from lmaho_wire.schema import (
    ACCESS_TECHNOLOGIES,
    AP_ID_TYPES,
    BA_STATUS,
    HANDOVER_STATUS,
    is_success,
)
from lmaho_wire.tomlfile import read_toml

from .clock import DEFAULT_EPOCH
from .packets import STEP_OF_MESSAGE, IPv6Address, IPv6Network

LMA_ROLES = ("plma", "nlma")
#: The links of the reference network besides the access link, named "<end>-<end>".
CORE_LINKS = (
    "bmag-plma",
    "bmag-nlma",
    "plma-nlma",
    "plma-store",
    "nlma-store",
    "cn-plma",
    "cn-nlma",
)


class ScenarioError(LmahoError):
    """A scenario file that cannot be used, with the key at fault."""


@dataclass(frozen=True)
class Timing:
    """When things happen on the virtual clock."""

    #: Virtual time 0: capture timestamps and Timestamp options count from here.
    epoch: dt.datetime = DEFAULT_EPOCH
    #: Seconds after the epoch when MN 1 reports its new AP (step (a)).
    first_report: float = 1.0
    #: Seconds between successive MNs' first reports; each also gets a random
    #: offset below this, so MN n reports at first_report + (n - 1 + u) * spacing.
    mobile_spacing: float = 0.05
    #: Seconds from the end of an MN's handover (and its data) to its next report.
    handover_interval: float = 1.0
    #: Largest relative change of a hop's delay: 0.1 varies each by up to +-10 %.
    jitter: float = 0.1


@dataclass(frozen=True)
class Host:
    """A node with one global address: the CN or the remote policy store."""

    label: str
    address: IPv6Address


@dataclass(frozen=True)
class LmaConfig:
    """An LMA: its label, its address (the LMAA) and the longest lifetime it grants."""

    label: str
    address: IPv6Address
    max_lifetime: int = 3600


@dataclass(frozen=True)
class MagConfig:
    """The bMAG: its Proxy-CoA, its MAC on the access link and the lifetime it asks for."""

    label: str
    address: IPv6Address
    access_mac: str
    binding_lifetime: int = 3600


@dataclass(frozen=True)
class Link:
    """A point-to-point Ethernet link: a MAC at each end (in the order of its name), a delay."""

    macs: tuple[str, str]
    delay: float


@dataclass(frozen=True)
class AccessLink:
    """The bMAG's access link, shared by all MNs (their MACs are their link-layer IDs)."""

    delay: float = 0.002


@dataclass(frozen=True)
class AccessPoint:
    """An AP an MN may move to, and the LMA serving it (the PLMA's choice of NLMA, step (c))."""

    id_type: str
    identifier: str
    lma: str


@dataclass(frozen=True)
class Mobiles:
    """How MN n (1, 2, ...) is made: identifiers, link-layer ID, prefix, access technology."""

    #: MN Identifier (NAI); "{n}" becomes the MN's number.
    identifier: str = "mn{n}@lmaho.example"
    #: Link-layer ID (MAC) of MN 1; MN n has this plus n - 1.
    link_layer_id: str = "02:00:00:01:00:01"
    #: Home network prefix of MN 1; MN n gets the (n - 1)th next prefix of the same length.
    home_network_prefix: IPv6Network = field(
        default_factory=lambda: IPv6Network("2001:db8:100::/64")
    )
    #: Access Technology Type (RFC 5213 8.5) name.
    access_technology: str = "IEEE_802_11"
    #: The LMA that anchors the prefixes and serves every MN when the run starts.
    anchor: str = "plma"


@dataclass(frozen=True)
class Traffic:
    """The data plane after each completed handover: steps (j) and (k)."""

    #: "icmpv6" (Echo Request down, Echo Reply up) or "udp" (datagram down, echoed up).
    protocol: str = "icmpv6"
    #: Packets the CN sends per handover; the MN answers each one.
    packets: int = 2
    #: Seconds between the CN's packets.
    interval: float = 0.02
    #: Seconds from the PBA to the CN's first packet.
    start_after: float = 0.02
    #: Octets of data in each packet (after the ICMPv6 or UDP header); at least 4.
    payload_size: int = 32
    #: UDP ports of the CN and of the MN.
    cn_port: int = 5001
    mn_port: int = 5000


@dataclass(frozen=True)
class Failures:
    """What the failure variants of ``lmaho craft --variant`` send."""

    #: LMA_HAck Status of the NLMA refusing the context (variant nlma-refuses).
    nlma_refuses_status: str = "INSUFFICIENT_RESOURCES"
    #: PBA Status of the NLMA rejecting the PBU (variant pba-error).
    pba_error_status: str = "ADMINISTRATIVELY_PROHIBITED"
    #: Update_Ack Status of the failing policy store (variant policy-update-fails).
    policy_update_status: str = "POLICY_UPDATE_FAILED"
    #: Step whose first message is lost in every handover (variant lost-message), b to i.
    lost_step: str = "c"


def _default_links() -> dict[str, Link]:
    return {
        "bmag-plma": Link(("02:00:00:00:0b:01", "02:00:00:00:01:0b"), 0.004),
        "bmag-nlma": Link(("02:00:00:00:0b:02", "02:00:00:00:02:0b"), 0.004),
        "plma-nlma": Link(("02:00:00:00:01:02", "02:00:00:00:02:01"), 0.006),
        "plma-store": Link(("02:00:00:00:01:0f", "02:00:00:00:0f:01"), 0.003),
        "nlma-store": Link(("02:00:00:00:02:0f", "02:00:00:00:0f:02"), 0.003),
        "cn-plma": Link(("02:00:00:00:0c:01", "02:00:00:00:01:0c"), 0.010),
        "cn-nlma": Link(("02:00:00:00:0c:02", "02:00:00:00:02:0c"), 0.010),
    }


def _default_access_points() -> dict[str, AccessPoint]:
    return {
        "ap1": AccessPoint("BSSID", "02:00:00:aa:00:01", "plma"),
        "ap2": AccessPoint("BSSID", "02:00:00:aa:00:02", "nlma"),
    }


@dataclass(frozen=True)
class Scenario:
    """Everything a crafting run needs to know about the network, one table per part."""

    timing: Timing = field(default_factory=Timing)
    cn: Host = field(default_factory=lambda: Host("CN", IPv6Address("2001:db8:c::1")))
    plma: LmaConfig = field(default_factory=lambda: LmaConfig("PLMA", IPv6Address("2001:db8:1::1")))
    nlma: LmaConfig = field(default_factory=lambda: LmaConfig("NLMA", IPv6Address("2001:db8:2::1")))
    bmag: MagConfig = field(
        default_factory=lambda: MagConfig("bMAG", IPv6Address("2001:db8:b::1"), "02:00:00:00:0b:00")
    )
    store: Host = field(default_factory=lambda: Host("policy store", IPv6Address("2001:db8:f::1")))
    links: dict[str, Link] = field(default_factory=_default_links)
    access: AccessLink = field(default_factory=AccessLink)
    access_points: dict[str, AccessPoint] = field(default_factory=_default_access_points)
    mobiles: Mobiles = field(default_factory=Mobiles)
    traffic: Traffic = field(default_factory=Traffic)
    failures: Failures = field(default_factory=Failures)

    def lma(self, role: str) -> LmaConfig:
        if role not in LMA_ROLES:
            raise KeyError(role)
        return self.plma if role == "plma" else self.nlma

    def validate(self) -> Scenario:
        """Check what the types alone cannot; raise ScenarioError naming the key."""
        _check(
            set(self.links) == set(CORE_LINKS),
            "links",
            f"must be exactly {', '.join(CORE_LINKS)}; got {', '.join(sorted(self.links))}",
        )
        for name, link in self.links.items():
            _check(link.delay >= 0, f"links.{name}.delay", "must not be negative")
        interfaces = [
            ("bmag.access_mac", self.bmag.access_mac),
            *((f"links.{n}.macs", m) for n, link in self.links.items() for m in link.macs),
        ]
        for where, mac in [*interfaces, ("mobiles.link_layer_id", self.mobiles.link_layer_id)]:
            try:
                mac_bytes(mac)
            except ValueError:
                raise ScenarioError(f"scenario: {where}: {mac!r} is not a MAC address") from None
        macs = [mac_bytes(mac) for _, mac in interfaces]
        _check(len(set(macs)) == len(macs), "links", "two interfaces share a MAC address")
        addresses = [
            self.cn.address,
            self.plma.address,
            self.nlma.address,
            self.bmag.address,
            self.store.address,
        ]
        _check(len(set(addresses)) == len(addresses), "address", "two nodes share an address")
        for role in LMA_ROLES:
            _check(
                self.lma(role).max_lifetime % 4 == 0 and self.lma(role).max_lifetime > 0,
                f"{role}.max_lifetime",
                "must be a positive multiple of 4",
            )
        _check(
            self.bmag.binding_lifetime % 4 == 0 and 0 < self.bmag.binding_lifetime < 262144,
            "bmag.binding_lifetime",
            "must be a positive multiple of 4 below 262144",
        )
        _check(self.access.delay >= 0, "access.delay", "must not be negative")
        served = set()
        for name, ap in self.access_points.items():
            _check(
                ap.id_type in AP_ID_TYPES,
                f"access_points.{name}.id_type",
                f"must be one of {', '.join(AP_ID_TYPES)}",
            )
            _check(ap.lma in LMA_ROLES, f"access_points.{name}.lma", "must be plma or nlma")
            try:
                option("new_ap_id", id_type=ap.id_type, identifier=ap.identifier)
            except ValueError as e:
                raise ScenarioError(f"scenario: access_points.{name}.identifier: {e}") from None
            served.add(ap.lma)
        _check(
            served == set(LMA_ROLES),
            "access_points",
            "need an AP served by each LMA (plma and nlma)",
        )
        m = self.mobiles
        _check("{n}" in m.identifier, "mobiles.identifier", 'must contain "{n}"')
        _check(
            m.home_network_prefix.prefixlen <= 64,
            "mobiles.home_network_prefix",
            "must be /64 or shorter (MN addresses use an EUI-64 interface identifier)",
        )
        _check(
            m.access_technology in ACCESS_TECHNOLOGIES,
            "mobiles.access_technology",
            f"must be one of {', '.join(ACCESS_TECHNOLOGIES)}",
        )
        _check(m.anchor in LMA_ROLES, "mobiles.anchor", "must be plma or nlma")
        t = self.timing
        for key in ("first_report", "mobile_spacing", "handover_interval"):
            _check(getattr(t, key) >= 0, f"timing.{key}", "must not be negative")
        _check(0 <= t.jitter < 1, "timing.jitter", "must be at least 0 and below 1")
        d = self.traffic
        _check(d.protocol in ("icmpv6", "udp"), "traffic.protocol", 'must be "icmpv6" or "udp"')
        _check(d.packets >= 0, "traffic.packets", "must not be negative")
        _check(d.interval > 0, "traffic.interval", "must be positive")
        _check(d.start_after >= 0, "traffic.start_after", "must not be negative")
        _check(4 <= d.payload_size <= 1400, "traffic.payload_size", "must be 4 to 1400")
        for key in ("cn_port", "mn_port"):
            _check(0 < getattr(d, key) < 65536, f"traffic.{key}", "must be a port number")
        f = self.failures
        _check(
            f.nlma_refuses_status in HANDOVER_STATUS
            and not is_success(HANDOVER_STATUS[f.nlma_refuses_status]),
            "failures.nlma_refuses_status",
            "must name an error Status of docs/wire-format.md 4",
        )
        _check(
            f.policy_update_status in HANDOVER_STATUS
            and not is_success(HANDOVER_STATUS[f.policy_update_status]),
            "failures.policy_update_status",
            "must name an error Status of docs/wire-format.md 4",
        )
        _check(
            f.pba_error_status in BA_STATUS and not is_success(BA_STATUS[f.pba_error_status]),
            "failures.pba_error_status",
            "must name an error Status of the PBA (RFC 5213)",
        )
        _check(
            f.lost_step in STEP_OF_MESSAGE.values(),
            "failures.lost_step",
            "must be a signalling step, b to i",
        )
        return self


def _check(ok: bool, key: str, what: str) -> None:
    if not ok:
        raise ScenarioError(f"scenario: {key}: {what}")


DEFAULT_SCENARIO = Scenario()


# --- reading TOML --------------------------------------------------------------------


def load_scenario(
    path: str | os.PathLike[str], base: Scenario | None = DEFAULT_SCENARIO
) -> Scenario:
    """Read a scenario file; what it leaves out comes from ``base``.

    With ``base=None`` the file must give every key (how the test proves the
    shipped default.toml is complete).
    """
    p = Path(path)
    data = read_toml(p, "scenario file", ScenarioError)
    try:
        return scenario_from_dict(data, base)
    except ScenarioError as e:
        raise ScenarioError(f"{p}: {e}") from None


def scenario_from_dict(data: dict[str, Any], base: Scenario | None = DEFAULT_SCENARIO) -> Scenario:
    scenario = _convert(Scenario, data, base, "")
    assert isinstance(scenario, Scenario)
    return scenario.validate()


def _convert(kind: Any, value: Any, base: Any, where: str) -> Any:
    """``value`` from TOML as ``kind``; ``base`` supplies what a table leaves out."""
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return _table(kind, value, base, where)
    if origin is dict:
        _, item_kind = typing.get_args(kind)
        if not isinstance(value, dict):
            raise ScenarioError(f"{where}: must be a table")
        # A table of named items replaces the default's items one by one.
        merged = dict(base or {})
        for name, item in value.items():
            merged[name] = _convert(item_kind, item, merged.get(name), f"{where}.{name}")
        return merged
    if origin is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, list) or len(value) != len(args):
            raise ScenarioError(f"{where}: must be a list of {len(args)}")
        return tuple(
            _convert(a, v, None, f"{where}[{i}]")
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    return _scalar(kind, value, where)


def _table(kind: Any, value: Any, base: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise ScenarioError(f"{where or 'scenario'}: must be a table")
    hints = typing.get_type_hints(kind)
    fields = {f.name for f in dataclasses.fields(kind)}
    unknown = set(value) - fields
    if unknown:
        raise ScenarioError(
            f"{where or 'scenario'}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(fields))}"
        )
    values: dict[str, Any] = {}
    for name in fields:
        key = f"{where}.{name}" if where else name
        inner_base = None if base is None else getattr(base, name)
        if name in value:
            values[name] = _convert(hints[name], value[name], inner_base, key)
        elif base is not None:
            values[name] = inner_base
        else:
            raise ScenarioError(f"{key}: missing")
    return kind(**values)


def _scalar(kind: Any, value: Any, where: str) -> Any:
    if isinstance(kind, types.UnionType):
        raise TypeError(f"no union types in scenarios ({where})")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{where}: must be a number, got {value!r}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{where}: must be an integer, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ScenarioError(f"{where}: must be a string, got {value!r}")
        return value
    if kind is dt.datetime:
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ScenarioError(
                f"{where}: must be a TOML date-time with offset, e.g. 2009-10-26T00:00:00Z"
            )
        return value.astimezone(dt.UTC)
    if kind is IPv6Address or kind is IPv6Network:
        try:
            return kind(value)
        except (ValueError, TypeError):
            what = "an IPv6 address" if kind is IPv6Address else "an IPv6 prefix like 2001:db8::/64"
            raise ScenarioError(f"{where}: must be {what}, got {value!r}") from None
    raise TypeError(f"scenario field {where} has unsupported type {kind!r}")


# --- what MN n looks like ----------------------------------------------------------


@dataclass(frozen=True)
class MobileSpec:
    """MN number ``n`` (1-based) of a scenario, with everything derived from its number."""

    n: int
    identifier: str
    mac: bytes
    prefix: IPv6Network
    address: IPv6Address


def mobile_spec(mobiles: Mobiles, n: int) -> MobileSpec:
    """MN ``n``: identifier, MAC (the link-layer ID), prefix and its SLAAC address."""
    base_mac = int.from_bytes(mac_bytes(mobiles.link_layer_id), "big")
    mac = ((base_mac + n - 1) % (1 << 48)).to_bytes(6, "big")
    base = mobiles.home_network_prefix
    step = 1 << (128 - base.prefixlen)
    prefix = IPv6Network((int(base.network_address) + (n - 1) * step, base.prefixlen))
    return MobileSpec(
        n,
        mobiles.identifier.replace("{n}", str(n)),
        mac,
        prefix,
        IPv6Address(int(prefix.network_address) | eui64_interface_id(mac)),
    )


def eui64_interface_id(mac: bytes) -> int:
    """The modified EUI-64 interface identifier of a MAC (RFC 4291 appendix A)."""
    eui = bytes((mac[0] ^ 0x02,)) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    return int.from_bytes(eui, "big")


def link_local(mac: bytes) -> IPv6Address:
    """fe80::/64 with the MAC's modified EUI-64 interface identifier."""
    return IPv6Address((0xFE80 << 112) | eui64_interface_id(mac))


__all__ = [
    "CORE_LINKS",
    "DEFAULT_SCENARIO",
    "LMA_ROLES",
    "AccessLink",
    "AccessPoint",
    "Failures",
    "Host",
    "Link",
    "LmaConfig",
    "MagConfig",
    "MobileSpec",
    "Mobiles",
    "Scenario",
    "ScenarioError",
    "Timing",
    "Traffic",
    "eui64_interface_id",
    "link_local",
    "load_scenario",
    "mobile_spec",
    "scenario_from_dict",
]
