"""Construct field types the schema is declared with.

Each carries what a reader of the schema (the Lua generator, the JSON
printer, the typed API) needs to know about it as plain attributes, so the
schema objects stay the single description of the wire format.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

from construct import (
    Adapter,
    Bytes,
    BytesInteger,
    Construct,
    Enum,
    FormatField,
    GreedyBytes,
    GreedyRange,
    Int16ub,
    Renamed,
    Struct,
    Subconstruct,
    Switch,
)

from .options import option_noun
from .values import FlagBits, Named, Timestamp

A = TypeVar("A")
R = TypeVar("R")


class NamedEnum(Enum):
    """construct's Enum, decoding to :class:`Named` (an int that knows its name).

    Unknown values decode to a Named without a name instead of a bare int, so a
    reader never has to guess which fields are enumerations.
    """

    def _decode(self, obj: int, context: Any, path: str) -> Named:
        # Named values are immutable ints: one instance per value serves every decode.
        cache: dict[int, Named] = self.__dict__.setdefault("_named", {})
        named = cache.get(obj)
        if named is None:
            name = self.decmapping.get(obj)
            named = cache[obj] = Named(obj, None if name is None else str(name))
        return named

    def _encode(self, obj: Any, context: Any, path: str) -> int:
        if isinstance(obj, int) and not isinstance(obj, bool):
            return int(obj)
        return int(super()._encode(obj, context, path))

    def _emitparse(self, code: Any) -> str:
        # construct's compiled Enum would bypass _decode; link to this instance instead.
        raise NotImplementedError

    def _emitbuild(self, code: Any) -> str:
        raise NotImplementedError


class Flags(Adapter):
    """An unsigned flags word; ``masks`` maps each flag letter to its bit mask.

    Decodes to :class:`FlagBits`; reserved bits are kept so bytes round-trip.
    Builds from an int, a FlagBits, an iterable of flag names, or a mapping of
    flag name to bool.
    """

    def __init__(self, subcon: Construct, **masks: int) -> None:
        super().__init__(subcon)
        self.masks: dict[str, int] = dict(masks)
        self._bits: dict[int, FlagBits] = {}

    def _decode(self, obj: int, context: Any, path: str) -> FlagBits:
        # One FlagBits per value seen (at most 2**16 for a 16-bit word).
        bits = self._bits.get(obj)
        if bits is None:
            bits = self._bits[obj] = FlagBits(obj, self.masks)
        return bits

    def _encode(self, obj: Any, context: Any, path: str) -> int:
        if isinstance(obj, int):
            return int(obj)
        names: Iterable[str] = [k for k, v in obj.items() if v] if isinstance(obj, Mapping) else obj
        value = 0
        for name in names:
            if name not in self.masks:
                raise ValueError(f"unknown flag {name!r}; known: {', '.join(self.masks)}")
            value |= self.masks[name]
        return value


class Scaled(Adapter):
    """An unsigned count of ``factor``-sized units, decoded to the real quantity.

    RFC 5213 lifetimes are 4-second units: Scaled(Int16ub, 4, "s") decodes 75 to
    300 (seconds) and refuses to build a quantity that is no whole unit count.
    """

    def __init__(self, subcon: Construct, factor: int, unit: str) -> None:
        super().__init__(subcon)
        self.factor = factor
        self.unit = unit

    def _decode(self, obj: int, context: Any, path: str) -> int:
        return obj * self.factor

    def _encode(self, obj: int, context: Any, path: str) -> int:
        units, rest = divmod(int(obj), self.factor)
        if rest:
            raise ValueError(f"{obj} {self.unit} is not a multiple of {self.factor} {self.unit}")
        return units


class IPv6Address(Adapter):
    """16 octets as an :class:`ipaddress.IPv6Address`."""

    def _decode(self, obj: bytes, context: Any, path: str) -> ipaddress.IPv6Address:
        return ipaddress.IPv6Address(obj)

    def _encode(self, obj: Any, context: Any, path: str) -> bytes:
        return ipaddress.IPv6Address(obj).packed


class IPv4Address(Adapter):
    """4 octets as an :class:`ipaddress.IPv4Address`."""

    def _decode(self, obj: bytes, context: Any, path: str) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Address(obj)

    def _encode(self, obj: Any, context: Any, path: str) -> bytes:
        return ipaddress.IPv4Address(obj).packed


class HexColon(Adapter):
    """Octets shown as colon-separated hex ("00:1b:21:0a:0b:0c"): link-layer identifiers."""

    def _decode(self, obj: bytes, context: Any, path: str) -> str:
        return obj.hex(":")

    def _encode(self, obj: Any, context: Any, path: str) -> bytes:
        if isinstance(obj, bytes | bytearray):
            return bytes(obj)
        return bytes.fromhex(str(obj).replace(":", "").replace("-", ""))


class Text(Adapter):
    """UTF-8 text; undecodable octets survive as surrogate escapes, so bytes round-trip."""

    def _decode(self, obj: bytes, context: Any, path: str) -> str:
        return obj.decode("utf-8", "surrogateescape")

    def _encode(self, obj: Any, context: Any, path: str) -> bytes:
        if isinstance(obj, bytes | bytearray):
            return bytes(obj)
        return str(obj).encode("utf-8", "surrogateescape")


class TimestampField(Adapter):
    """RFC 5213 8.8: 48-bit seconds and 16-bit fractions, decoded to :class:`Timestamp`."""

    def __init__(self) -> None:
        super().__init__(
            Struct(
                "seconds" / BytesInteger(6) * "Seconds since 1970-01-01 UTC",
                "fraction" / Int16ub * "Fraction of a second in 1/65536 units",
            )
        )

    def _decode(self, obj: Any, context: Any, path: str) -> Timestamp:
        return Timestamp(obj["seconds"], obj["fraction"])

    def _encode(self, obj: Any, context: Any, path: str) -> dict[str, int]:
        if not isinstance(obj, Timestamp):
            obj = Timestamp.from_float(float(obj))
        return {"seconds": obj.seconds, "fraction": obj.fraction}


class OptionBody(Subconstruct):
    """The data of one mobility option (what follows its Type and Length octets).

    ``key`` names it in the API and in Wireshark filters, ``title`` is its
    human name, ``align`` the RFC "xn+y" alignment of its Type octet as
    (x, y), and ``length`` the one data length the RFC allows (None when
    variable), derived from the subcon, as are the names of its
    :class:`Reserved` fields (``reserved``). ``repeatable`` says whether a
    message may carry the option more than once (a Home Network Prefix per
    prefix, RFC 5213 8.3); most options say one thing and appear at most once.
    """

    def __init__(
        self,
        subcon: Construct,
        *,
        key: str,
        title: str,
        reference: str,
        align: tuple[int, int] | None = None,
        min_length: int = 0,
        repeatable: bool = False,
    ) -> None:
        super().__init__(subcon)
        self.key = key
        self.repeatable = repeatable
        self.title = title
        self.reference = reference
        self.align = align
        try:
            self.length: int | None = subcon.sizeof()
        except Exception:  # construct raises SizeofError for variable sizes
            self.length = None
        self.min_length = self.length if self.length is not None else min_length
        self.reserved = reserved_names(subcon)

    @property
    def noun(self) -> str:
        """How a sentence names it: "LMA Address option", "Unknown option"."""
        return option_noun(self.title)


class MessageBody(Subconstruct):
    """The fixed part of one Mobility Header message (between Checksum and options).

    ``name`` is the message's short name; where a flag turns it into its proxy
    variant (BU with P set is a PBU), ``proxy_flag`` names that flag and
    ``proxy_name`` the variant. ``role`` is "request" or "response" and
    ``answers``, on a response, names the request it answers: the pairing
    tools (``lmaho check``, the dissector's tracking) read it from here.
    """

    def __init__(
        self,
        subcon: Construct,
        *,
        key: str,
        name: str,
        title: str,
        reference: str,
        role: str,
        answers: str | None = None,
        proxy_flag: str | None = None,
        proxy_name: str | None = None,
    ) -> None:
        super().__init__(subcon)
        self.key = key
        self.name = name
        self.title = title
        self.reference = reference
        self.role = role
        self.answers = answers
        self.proxy_flag = proxy_flag
        self.proxy_name = proxy_name
        self.length: int = subcon.sizeof()
        self.reserved = reserved_names(subcon)


class Reserved(Adapter):
    """A reserved field: an unsigned integer that is sent as zero unless given.

    Decodes to the value on the wire (so bytes round-trip); the builder fills
    it with zero when the caller leaves it out, and summaries leave it out.
    """

    def _decode(self, obj: int, context: Any, path: str) -> int:
        return obj

    def _encode(self, obj: Any, context: Any, path: str) -> int:
        return obj  # type: ignore[no-any-return]


def reserved_names(subcon: Construct) -> frozenset[str]:
    """Names of the :class:`Reserved` fields of a Struct (under any Renamed)."""
    struct = unrename(subcon)
    subcons = struct.subcons if isinstance(struct, Struct) else []
    return frozenset(sc.name for sc in subcons if sc.name and isinstance(unrename(sc), Reserved))


def unrename(c: Construct) -> Construct:
    """The construct under any Renamed wrappers (a schema field's name and description)."""
    while isinstance(c, Renamed):
        c = c.subcon
    return c


def description(c: Construct) -> str | None:
    """The short description a schema field declares (``"name" / X * "what it is"``)."""
    while isinstance(c, Renamed):
        if c.docs:
            return str(c.docs)
        c = c.subcon
    return None


class FieldVisitor(Generic[A, R]):
    """One walk over the field types the schema is declared with.

    :meth:`visit` looks through Renamed wrappers and calls the method named
    after the field's kind with the field and ``arg`` (whatever the walk
    carries: a context, a draw function, Lua code). Every reader of the
    schema (the codec's compiler, the Lua generator, the sample and test
    value makers) is a subclass, so a field type is told apart in this one
    place. A kind a visitor does not handle raises NotImplementedError, so a
    new field type fails loudly instead of being skipped.
    """

    def visit(self, c: Construct, arg: A) -> R:
        c = unrename(c)
        # Order matters: the specific adapters before the constructs they wrap.
        if isinstance(c, Reserved):
            return self.reserved(c, arg)
        if isinstance(c, NamedEnum):
            return self.enum(c, arg)
        if isinstance(c, Flags):
            return self.flags(c, arg)
        if isinstance(c, Scaled):
            return self.scaled(c, arg)
        if isinstance(c, TimestampField):
            return self.timestamp(c, arg)
        if isinstance(c, IPv6Address):
            return self.ipv6(c, arg)
        if isinstance(c, IPv4Address):
            return self.ipv4(c, arg)
        if isinstance(c, Text):
            return self.text(c, arg)
        if isinstance(c, HexColon):
            return self.hex(c, arg)
        if isinstance(c, FormatField | BytesInteger):
            return self.integer(c, arg)
        if isinstance(c, Bytes) or c is GreedyBytes:
            return self.octets(c, arg)
        if isinstance(c, Switch):
            return self.switch(c, arg)
        if isinstance(c, GreedyRange):
            return self.repeat(c, arg)
        if isinstance(c, Struct):
            return self.struct(c, arg)
        raise NotImplementedError(f"{type(self).__name__}: unknown field type {type(c).__name__}")

    def _unhandled(self, kind: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} does not handle {kind} fields")

    def reserved(self, c: Reserved, arg: A) -> R:
        """By default a reserved field is the integer it holds."""
        return self.integer(unrename(c.subcon), arg)

    def enum(self, c: NamedEnum, arg: A) -> R:
        raise self._unhandled("enumeration")

    def flags(self, c: Flags, arg: A) -> R:
        raise self._unhandled("flags")

    def scaled(self, c: Scaled, arg: A) -> R:
        raise self._unhandled("scaled")

    def timestamp(self, c: TimestampField, arg: A) -> R:
        raise self._unhandled("timestamp")

    def ipv6(self, c: IPv6Address, arg: A) -> R:
        raise self._unhandled("IPv6 address")

    def ipv4(self, c: IPv4Address, arg: A) -> R:
        raise self._unhandled("IPv4 address")

    def text(self, c: Text, arg: A) -> R:
        raise self._unhandled("text")

    def hex(self, c: HexColon, arg: A) -> R:
        raise self._unhandled("hex")

    def integer(self, c: Construct, arg: A) -> R:
        raise self._unhandled("integer")

    def octets(self, c: Construct, arg: A) -> R:
        raise self._unhandled("octets")

    def switch(self, c: Switch, arg: A) -> R:
        raise self._unhandled("switch")

    def repeat(self, c: GreedyRange, arg: A) -> R:
        raise self._unhandled("repeated")

    def struct(self, c: Struct, arg: A) -> R:
        raise self._unhandled("struct")
