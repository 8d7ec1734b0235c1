"""Value types the codec decodes into: plain Python, hashable, JSON-friendly."""

from __future__ import annotations

import datetime as _dt
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# IPv6 addresses met, by their 16 octets (cleared when full; any capture works): making
# an IPv6Address is the costliest step of walking a frame, and one object per address
# lets dictionaries find it by identity, without IPv6Address.__eq__.
MAX_ADDRESSES = 65_536
_addresses: dict[bytes, ipaddress.IPv6Address] = {}


def ipv6_address(octets: bytes) -> ipaddress.IPv6Address:
    """``ipaddress.IPv6Address(octets)``, the same object for the same 16 octets."""
    address = _addresses.get(octets)
    if address is None:
        if len(_addresses) >= MAX_ADDRESSES:
            _addresses.clear()
        address = _addresses[octets] = ipaddress.IPv6Address(octets)
    return address


class Named(int):
    """An enumeration value: an int that also knows its name (None when unknown)."""

    name: str | None

    def __new__(cls, value: int, name: str | None = None) -> Named:
        self = super().__new__(cls, value)
        self.name = name
        return self

    def __repr__(self) -> str:
        return f"{self.name}({int(self)})" if self.name else f"{int(self)}"

    __str__ = __repr__

    def to_json(self) -> dict[str, Any]:
        return {"value": int(self), "name": self.name}


class FlagBits(int):
    """A flags word: an int that also lists the names of the set bits it knows."""

    names: tuple[str, ...]
    masks: dict[str, int]

    def __new__(cls, value: int, masks: dict[str, int]) -> FlagBits:
        self = super().__new__(cls, value)
        self.masks = masks
        self.names = tuple(n for n, m in masks.items() if value & m)
        return self

    def __contains__(self, name: object) -> bool:
        return name in self.names

    @property
    def reserved(self) -> int:
        """Bits set that no flag name covers."""
        known = 0
        for m in self.masks.values():
            known |= m
        return int(self) & ~known

    def __repr__(self) -> str:
        return f"0x{int(self):x}[{'|'.join(self.names)}]"

    __str__ = __repr__

    def to_json(self) -> dict[str, Any]:
        return {"value": int(self), "set": list(self.names)}


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """RFC 5213 8.8 timestamp: 48-bit seconds since 1970 and 16-bit 1/65536 fractions."""

    seconds: int
    fraction: int = 0

    @classmethod
    def from_float(cls, t: float) -> Timestamp:
        whole = int(t)
        frac = round((t - whole) * 65536)
        if frac == 65536:
            whole, frac = whole + 1, 0
        return cls(whole, frac)

    @classmethod
    def from_datetime(cls, when: _dt.datetime) -> Timestamp:
        return cls.from_float(when.timestamp())

    def __float__(self) -> float:
        return self.seconds + self.fraction / 65536

    @property
    def datetime(self) -> _dt.datetime:
        """UTC time; years past 9999 are clamped to datetime.max."""
        try:
            return _dt.datetime.fromtimestamp(float(self), tz=_dt.UTC)
        except (OverflowError, OSError, ValueError):
            return _dt.datetime.max.replace(tzinfo=_dt.UTC)

    def __str__(self) -> str:
        return self.datetime.isoformat(timespec="microseconds").replace("+00:00", "Z")

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "fraction": self.fraction, "utc": str(self)}


def jsonable(value: Any) -> Any:
    """A decoded field value as JSON-ready data."""
    if isinstance(value, Named | FlagBits | Timestamp):
        return value.to_json()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)
