"""Hypothesis strategies derived from the schema's construct objects, shared by the codec tests.

Nothing here names a message or an option: every strategy is made by walking
``current_schema().messages`` / ``.options`` and the construct field types they
are declared with, so a message or option added to the schema is covered by
every property test without touching this file. A strategy draws a
:class:`Drawn`: ``value`` is what a user hands to :func:`lmaho_wire.build` /
:func:`lmaho_wire.option` (names of enumerations, sets of flag names, text
addresses, hex-colon strings ... chosen at random among the forms the API
accepts) and ``expected`` is what decoding must give back.

The strategies' own tests are in tests/test_support_strategies.py (so that a
field type the walker does not know fails loudly there, not as a silent gap).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from construct import (
    Adapter,
    Bytes,
    BytesInteger,
    Construct,
    FormatField,
    GreedyBytes,
    GreedyRange,
    Renamed,
    Struct,
    Switch,
    Terminated,
)
from hypothesis import strategies as st

from lmaho_wire import Option, Timestamp, current_schema
from lmaho_wire.fields import (
    Flags,
    HexColon,
    IPv4Address,
    IPv6Address,
    MessageBody,
    NamedEnum,
    OptionBody,
    Scaled,
    Text,
    TimestampField,
)

Draw = Callable[[st.SearchStrategy[Any]], Any]

# Variable-length octet fields stay short enough that several options fit one MH.
MAX_GREEDY = 40
MAX_REPEAT = 3


@dataclass(frozen=True)
class Drawn:
    """A value to build with, and what decoding it must give back."""

    value: Any
    expected: Any


def int_range(subcon: Construct) -> tuple[int, int]:
    """The unsigned range of an integer construct (FormatField or BytesInteger)."""
    if isinstance(subcon, Renamed):
        return int_range(subcon.subcon)
    if isinstance(subcon, FormatField):
        assert subcon.fmtstr[-1] in "BHILQ", f"signed or float field {subcon.fmtstr}"
        return 0, (1 << (8 * subcon.length)) - 1
    if isinstance(subcon, BytesInteger):
        assert isinstance(subcon.length, int) and not subcon.signed
        return 0, (1 << (8 * subcon.length)) - 1
    raise NotImplementedError(f"not an integer construct: {subcon!r}")


def _octets(draw: Draw, subcon: Construct, ctx: dict[str, Any]) -> bytes:
    if subcon is GreedyBytes:
        return bytes(draw(st.binary(max_size=MAX_GREEDY)))
    if isinstance(subcon, Bytes):
        n = subcon.length if isinstance(subcon.length, int) else subcon.length(ctx)
        return bytes(draw(st.binary(min_size=n, max_size=n)))
    raise NotImplementedError(f"not an octet construct: {subcon!r}")


def draw_field(draw: Draw, subcon: Construct, ctx: dict[str, Any]) -> Drawn:
    """Draw one field of ``subcon``; ``ctx`` holds the expected values of earlier siblings."""
    if isinstance(subcon, Renamed):
        return draw_field(draw, subcon.subcon, ctx)
    if isinstance(subcon, NamedEnum):
        lo, hi = int_range(subcon.subcon)
        names = [str(n) for n in subcon.encmapping]
        if names and draw(st.booleans()):
            name = draw(st.sampled_from(names))
            return Drawn(name, int(subcon.encmapping[name]))
        n = draw(st.integers(lo, hi))
        return Drawn(n, n)
    if isinstance(subcon, Flags):
        lo, hi = int_range(subcon.subcon)
        how = draw(st.sampled_from(["int", "names", "mapping"] if subcon.masks else ["int"]))
        if how == "int":
            n = draw(st.integers(lo, hi))
            return Drawn(n, n)
        chosen = draw(st.sets(st.sampled_from(sorted(subcon.masks))))
        n = 0
        for name in chosen:
            n |= subcon.masks[name]
        if how == "names":
            return Drawn(chosen, n)
        return Drawn({name: name in chosen for name in subcon.masks}, n)
    if isinstance(subcon, Scaled):
        lo, hi = int_range(subcon.subcon)
        n = draw(st.integers(lo, hi)) * subcon.factor
        return Drawn(n, n)
    if isinstance(subcon, IPv6Address | IPv4Address):
        raw = _octets(draw, subcon.subcon, ctx)
        cls = ipaddress.IPv6Address if isinstance(subcon, IPv6Address) else ipaddress.IPv4Address
        addr = cls(raw)
        return Drawn(draw(st.sampled_from([str(addr), addr, raw])), addr)
    if isinstance(subcon, HexColon):
        raw = _octets(draw, subcon.subcon, ctx)
        forms = [raw, raw.hex(":"), raw.hex()]
        return Drawn(draw(st.sampled_from(forms)), raw.hex(":"))
    if isinstance(subcon, Text):
        raw = _octets(draw, subcon.subcon, ctx)
        if draw(st.booleans()):
            text = draw(st.text(max_size=MAX_GREEDY // 4))
            raw = text.encode("utf-8")
        text = raw.decode("utf-8", "surrogateescape")
        return Drawn(draw(st.sampled_from([text, raw])), text)
    if isinstance(subcon, TimestampField):
        ts = Timestamp(draw(st.integers(0, (1 << 48) - 1)), draw(st.integers(0, 0xFFFF)))
        return Drawn(ts, ts)
    if isinstance(subcon, FormatField | BytesInteger):
        lo, hi = int_range(subcon)
        n = draw(st.integers(lo, hi))
        return Drawn(n, n)
    if isinstance(subcon, Struct):
        return draw_struct(draw, subcon)
    if isinstance(subcon, Switch):
        key = subcon.keyfunc(ctx) if callable(subcon.keyfunc) else subcon.keyfunc
        return draw_field(draw, subcon.cases.get(key, subcon.default), ctx)
    if isinstance(subcon, GreedyRange):
        items = [
            draw_field(draw, subcon.subcon, {}) for _ in range(draw(st.integers(0, MAX_REPEAT)))
        ]
        return Drawn([i.value for i in items], [i.expected for i in items])
    if isinstance(subcon, Adapter):
        raise NotImplementedError(f"the strategies do not know {type(subcon).__name__}")
    raise NotImplementedError(f"no strategy for {type(subcon).__name__}")


def draw_struct(draw: Draw, subcon: Struct) -> Drawn:
    values: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for sc in subcon.subcons:
        if sc is Terminated:
            continue
        d = draw_field(draw, sc, expected)
        if sc.name is not None:
            values[sc.name] = d.value
            expected[sc.name] = d.expected
    return Drawn(values, expected)


@st.composite
def fields_of(draw: Draw, body: OptionBody | MessageBody) -> Drawn:
    """Field values for one option's data or one message's fixed part."""
    return draw_struct(draw, body.subcon)


# --- options ---------------------------------------------------------------------


@dataclass(frozen=True)
class DrawnOption:
    """An option ready to build, with the type and fields its decoding must show."""

    option: Option
    type: int
    key: str
    expected: dict[str, Any]


def known_option_types() -> list[int]:
    """Every option type the schema declares, padding included."""
    return sorted(current_schema().options)


def unknown_option_types() -> list[int]:
    known = current_schema().options
    return [t for t in range(256) if t not in known]


@st.composite
def option_of_type(draw: Draw, opt_type: int) -> DrawnOption:
    """A valid option of ``opt_type`` built through the public API (``option(key, ...)``)."""
    from lmaho_wire import option

    schema = current_schema()
    body = schema.options.get(opt_type)
    if body is None:
        data = bytes(draw(st.binary(max_size=MAX_GREEDY)))
        opt = Option(opt_type, "unknown", "Unknown option", {"data": data.hex(":")}, data)
        return DrawnOption(opt, opt_type, "unknown", {"data": data.hex(":")})
    if opt_type == 0:
        return DrawnOption(option("pad1"), 0, "pad1", {})
    drawn = draw(fields_of(body))
    try:
        opt = option(body.key, **drawn.value)
    except ValueError as e:
        # The only values the API may refuse: data longer than the 255 octets a Length
        # holds, or shorter than the option's minimum (which decoding would refuse).
        assert "at most 255 fit" in str(e) or "needed" in str(e), e
        from hypothesis import reject

        reject()
    return DrawnOption(opt, opt_type, body.key, drawn.expected)


def any_option(include_padding: bool = False) -> st.SearchStrategy[DrawnOption]:
    types = [t for t in known_option_types() if include_padding or t > 1]
    return st.one_of(
        st.sampled_from(types).flatmap(option_of_type),
        st.sampled_from(unknown_option_types()).flatmap(option_of_type),
    )


# --- raw Mobility Headers, laid out by hand ------------------------------------------


@st.composite
def raw_options_area(draw: Draw, start: int, budget: int) -> bytes:
    """An options area starting at MH offset ``start``: any mix of valid options, Pad1,
    PadN (with any content), unknown options, laid out without regard to alignment,
    ending on an 8-octet boundary with Pad1/PadN (so it decodes, with findings)."""
    parts: list[bytes] = []
    pos = start
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["option", "pad1", "padn"]))
        if kind == "pad1":
            chunk = b"\x00"
        elif kind == "padn":
            chunk = (
                b"\x01"
                + bytes([n := draw(st.integers(0, 10))])
                + draw(st.binary(min_size=n, max_size=n))
            )
        else:
            chunk = draw(any_option()).option.to_bytes()
        if pos + len(chunk) > budget:
            break
        parts.append(chunk)
        pos += len(chunk)
    need = -pos % 8
    if need == 1 or (need and draw(st.booleans())):
        parts.append(b"\x00" * need)
    elif need:
        parts.append(
            b"\x01" + bytes([need - 2]) + draw(st.binary(min_size=need - 2, max_size=need - 2))
        )
    return b"".join(parts)


@st.composite
def raw_mobility_header(draw: Draw, mh_type: int | None = None) -> bytes:
    """A Mobility Header that decodes, laid out octet by octet (header fields at random)."""
    schema = current_schema()
    if mh_type is None:
        mh_type = draw(st.integers(0, 255))
    body = schema.messages.get(mh_type)
    if body is None:
        n = draw(st.integers(0, 12)) * 8 + 2
        rest = draw(st.binary(min_size=n, max_size=n))
    else:
        fixed = draw(st.binary(min_size=body.length, max_size=body.length))
        rest = fixed + draw(raw_options_area(6 + body.length, 1024))
    header_len = (6 + len(rest)) // 8 - 1
    head = bytes([draw(st.integers(0, 255)), header_len, mh_type, draw(st.integers(0, 255))])
    return head + draw(st.binary(min_size=2, max_size=2)) + rest
