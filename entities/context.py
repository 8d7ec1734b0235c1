"""The MN's context as ready-built options, and the few options every entity shares.

Building an option runs the codec's construct builder; an MN's identifier,
prefixes and link-layer identifier never change during a run, so they are
built once (by the bMAG when the MN attaches) and the very same objects
travel in every message about that MN. Options naming a node (an LMA
Address, the MAG IPv6 Address) are cached per address.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from lmaho_wire import Option, Timestamp, option

from .packets import IPv6Address, IPv6Network, Signal, prefix_of


@dataclass(frozen=True, slots=True)
class MobileContext:
    """What the LMAs and the bMAG hold of one MN, as options ready to send.

    ``identifier`` is the MN ID (the key of every table), ``mn_id`` its
    option; ``prefix_options`` hold one Home Network Prefix option per
    prefix; the rest are the MN context the draft transfers between LMAs
    and may be None when a message did not carry them.
    """

    identifier: str
    mn_id: Option
    prefixes: tuple[IPv6Network, ...]
    prefix_options: tuple[Option, ...]
    link_layer: Option | None = None
    access_technology: Option | None = None
    link_local: Option | None = None

    @classmethod
    def build(
        cls,
        identifier: str,
        prefixes: tuple[IPv6Network, ...],
        *,
        subtype: str = "NAI",
        link_layer: bytes | None = None,
        access_technology: str | None = None,
        link_local: IPv6Address | None = None,
    ) -> MobileContext:
        """Make every option of an MN's context (the one place they are built)."""
        return cls(
            identifier=identifier,
            mn_id=option("mn_identifier", subtype=subtype, identifier=identifier),
            prefixes=prefixes,
            prefix_options=tuple(
                option("home_network_prefix", prefix_length=p.prefixlen, prefix=p.network_address)
                for p in prefixes
            ),
            link_layer=None
            if link_layer is None
            else option("mn_link_layer_identifier", identifier=link_layer),
            # Many MNs share these two: one object each.
            access_technology=None
            if access_technology is None
            else access_technology_option(access_technology),
            link_local=None if link_local is None else link_local_option(link_local),
        )

    @classmethod
    def from_signal(cls, signal: Signal, base: MobileContext | None = None) -> MobileContext:
        """The context a message carries; options it lacks are taken from ``base``."""
        mn_id = signal.option("mn_identifier")
        prefix_options = signal.options_of("home_network_prefix")
        if mn_id is None or not prefix_options:
            raise ValueError("a context needs the MN Identifier and a Home Network Prefix")

        def pick(key: str, field: str) -> Option | None:
            found = signal.option(key)
            if found is None and base is not None:
                found = getattr(base, field)
            return found

        return cls(
            identifier=str(mn_id.fields["identifier"]),
            mn_id=mn_id,
            prefixes=tuple(prefix_of(o) for o in prefix_options),
            prefix_options=prefix_options,
            link_layer=pick("mn_link_layer_identifier", "link_layer"),
            access_technology=pick("access_technology_type", "access_technology"),
            link_local=pick("link_local_address", "link_local"),
        )


@functools.lru_cache(maxsize=256)
def lma_address_option(address: IPv6Address) -> Option:
    """LMA Address option (RFC 5949 6.2.4) naming ``address``."""
    return option("lma_address", option_code="IPV6", address=address)


@functools.lru_cache(maxsize=256)
def previous_lma_address_option(address: IPv6Address) -> Option:
    """Previous LMA Address option (docs/wire-format.md 5.2): the PLMAA of section 4.1."""
    return option("previous_lma_address", option_code="IPV6", address=address)


@functools.lru_cache(maxsize=256)
def mag_address_option(address: IPv6Address) -> Option:
    """MAG IPv6 Address option (RFC 6705 6.2): the bMAG's Proxy-CoA in LMA_HO_Init."""
    return option("mag_ipv6_address", address_length=128, address=address)


@functools.lru_cache(maxsize=16)
def handoff_indicator_option(indicator: str) -> Option:
    return option("handoff_indicator", indicator=indicator)


@functools.lru_cache(maxsize=16)
def access_technology_option(technology: str) -> Option:
    return option("access_technology_type", technology=technology)


@functools.lru_cache(maxsize=256)
def link_local_option(address: IPv6Address) -> Option:
    return option("link_local_address", address=address)


def timestamp_option(timestamp: Timestamp) -> Option:
    """Timestamp option (RFC 5213 8.8); made per message, as its value is."""
    return option("timestamp", timestamp=timestamp)


def address_of(opt: Option) -> IPv6Address:
    """The IPv6 address an LMA Address, Previous LMA Address or MAG Address option names."""
    address = opt.fields["address"]
    if not isinstance(address, ipaddress.IPv6Address):
        raise ValueError(f"{opt.title} option does not carry an IPv6 address")
    return address
