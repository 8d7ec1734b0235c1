"""Fast parsers derived from the schema's construct objects.

construct's own parse (even compiled) builds a context Container per struct,
which dominates the cost of decoding small options. A plan is a closure made
by walking the same construct objects once: ``plan(data, pos, end, ctx)``
returns ``(value, new_pos)`` and raises MalformedPacket with the offset where
the data falls short. Only the construct classes the schema uses are
supported; anything else makes :func:`make_plan` raise NotImplementedError
so the caller falls back to construct itself. Tests hold plans and construct
to the same results on random input.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
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

from .errors import MalformedPacket

Plan = Callable[[bytes, int, int, dict[str, Any]], tuple[Any, int]]


def _short(what: str, need: int, pos: int, end: int) -> MalformedPacket:
    return MalformedPacket(f"{what} needs {need} octets, {max(end - pos, 0)} left", pos)


def make_plan(subcon: Construct, what: str = "field") -> Plan:
    """Walk ``subcon`` and return its fast parser."""
    if isinstance(subcon, Renamed):
        return make_plan(subcon.subcon, subcon.name or what)
    if isinstance(subcon, FormatField):
        unpack = struct.Struct(subcon.fmtstr).unpack_from
        size = subcon.length

        def fmt(data: bytes, pos: int, end: int, ctx: dict[str, Any]) -> tuple[Any, int]:
            if pos + size > end:
                raise _short(what, size, pos, end)
            return unpack(data, pos)[0], pos + size

        return fmt
    if isinstance(subcon, BytesInteger) and isinstance(subcon.length, int):
        nbytes = subcon.length
        order = "little" if subcon.swapped else "big"
        signed = subcon.signed

        def integer(data: bytes, pos: int, end: int, ctx: dict[str, Any]) -> tuple[Any, int]:
            if pos + nbytes > end:
                raise _short(what, nbytes, pos, end)
            return int.from_bytes(data[pos : pos + nbytes], order, signed=signed), pos + nbytes

        return integer
    if subcon is GreedyBytes:
        return lambda data, pos, end, ctx: (data[pos:end], end)
    if isinstance(subcon, Bytes):
        length = subcon.length

        def octets(data: bytes, pos: int, end: int, ctx: dict[str, Any]) -> tuple[Any, int]:
            n = length if isinstance(length, int) else length(ctx)
            if pos + n > end:
                raise _short(what, n, pos, end)
            return data[pos : pos + n], pos + n

        return octets
    if isinstance(subcon, Adapter):
        inner = make_plan(subcon.subcon, what)
        decode = subcon._decode

        def adapted(data: bytes, pos: int, end: int, ctx: dict[str, Any]) -> tuple[Any, int]:
            value, pos = inner(data, pos, end, ctx)
            try:
                return decode(value, ctx, what), pos
            except (ValueError, UnicodeError, OverflowError) as e:
                raise MalformedPacket(f"{what}: {e}", pos) from None

        return adapted
    if isinstance(subcon, Struct):
        return _struct_plan(subcon)
    if isinstance(subcon, Switch) and not callable(subcon.cases):
        key = subcon.keyfunc
        cases = {k: make_plan(v, what) for k, v in subcon.cases.items()}
        default = make_plan(subcon.default, what)

        def switch(data: bytes, pos: int, end: int, ctx: dict[str, Any]) -> tuple[Any, int]:
            return cases.get(key(ctx), default)(data, pos, end, ctx)

        return switch
    if isinstance(subcon, GreedyRange):
        item = make_plan(subcon.subcon, what)

        def repeat(data: bytes, pos: int, end: int, ctx: dict[str, Any]) -> tuple[Any, int]:
            items = []
            while pos < end:
                value, pos = item(data, pos, end, {})
                items.append(value)
            return items, pos

        return repeat
    raise NotImplementedError(f"no fast plan for {type(subcon).__name__}")


def _struct_plan(subcon: Struct) -> Plan:
    steps: list[tuple[str | None, Plan | None]] = []
    for sc in subcon.subcons:
        if sc is Terminated:
            steps.append((None, None))
        else:
            steps.append((sc.name, make_plan(sc, sc.name or "field")))

    def parse_struct(data: bytes, pos: int, end: int, ctx: dict[str, Any]) -> tuple[Any, int]:
        result: dict[str, Any] = {}
        for name, step in steps:
            if step is None:
                if pos != end:
                    raise MalformedPacket(
                        f"{end - pos} unexpected octet(s) after the last field", pos
                    )
                continue
            value, pos = step(data, pos, end, result)
            if name is not None:
                result[name] = value
        return result, pos

    return parse_struct
