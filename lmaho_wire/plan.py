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
from typing import Any, Literal

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
        order: Literal["little", "big"] = "little" if subcon.swapped else "big"
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


def _unwrap(subcon: Construct) -> tuple[Construct, list[Callable[..., Any]]]:
    """The construct under Renamed and Adapter wrappers, and the Adapters' decoders.

    Decoders are listed innermost first, the order in which they apply.
    """
    decoders: list[Callable[..., Any]] = []
    while True:
        if isinstance(subcon, Renamed):
            subcon = subcon.subcon
        elif isinstance(subcon, Adapter):
            decoders.insert(0, subcon._decode)
            subcon = subcon.subcon
        else:
            return subcon, decoders


def _fixed_field(subcon: Construct) -> tuple[str, list[Callable[..., Any]]] | None:
    """A big-endian fixed-size field (under Renamed/Adapters): its struct code and decoders.

    Decoders are listed innermost first. None when the field is not of that kind.
    """
    subcon, decoders = _unwrap(subcon)
    if isinstance(subcon, FormatField) and subcon.fmtstr[:1] == ">" and len(subcon.fmtstr) == 2:
        return subcon.fmtstr[1], decoders
    if isinstance(subcon, Bytes) and isinstance(subcon.length, int):
        return f"{subcon.length}s", decoders
    if isinstance(subcon, BytesInteger) and isinstance(subcon.length, int):
        order: Literal["little", "big"] = "little" if subcon.swapped else "big"
        signed = subcon.signed

        def from_bytes(value: bytes, ctx: Any, path: str) -> int:
            return int.from_bytes(value, order, signed=signed)

        return f"{subcon.length}s", [from_bytes, *decoders]
    return None


def _greedy_field(subcon: Construct) -> list[Callable[..., Any]] | None:
    """The decoders of a field that takes all remaining octets (Adapters over GreedyBytes)."""
    subcon, decoders = _unwrap(subcon)
    return decoders if subcon is GreedyBytes else None


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

    # A struct of one field that takes every octet (PadN, unknown options, ...).
    greedy = _greedy_field(subcon.subcons[0]) if len(subcon.subcons) == 1 else None
    if greedy is not None:
        only = subcon.subcons[0].name

        def parse_greedy(data: bytes, pos: int, end: int, ctx: dict[str, Any]) -> tuple[Any, int]:
            result: dict[str, Any] = {}
            value: Any = data[pos:end]
            try:
                for decode in greedy:
                    value = decode(value, result, only)
            except (ValueError, UnicodeError, OverflowError):
                return parse_struct(data, pos, end, ctx)
            if only is not None:
                result[only] = value
            return result, end

        return parse_greedy

    # A struct that opens with fixed-size big-endian fields reads them with one
    # struct.unpack; anything short or failing to decode takes the field-by-field
    # path above, so results and errors are the same.
    head: list[tuple[str | None, list[Callable[..., Any]]]] = []
    codes = ""
    for sc in subcon.subcons:
        fixed = None if sc is Terminated else _fixed_field(sc)
        if fixed is None:
            break
        codes += fixed[0]
        head.append((sc.name, fixed[1]))
    if not head:
        return parse_struct
    unpack = struct.Struct(">" + codes).unpack_from
    size = struct.calcsize(">" + codes)
    rest = steps[len(head) :]
    whole = not rest

    def parse_fused(data: bytes, pos: int, end: int, ctx: dict[str, Any]) -> tuple[Any, int]:
        if pos + size > end:
            return parse_struct(data, pos, end, ctx)
        result: dict[str, Any] = {}
        try:
            for (name, decoders), value in zip(head, unpack(data, pos), strict=True):
                for decode in decoders:
                    value = decode(value, result, name)
                if name is not None:
                    result[name] = value
        except (ValueError, UnicodeError, OverflowError):
            return parse_struct(data, pos, end, ctx)
        p = pos + size
        if whole:
            return result, p
        for name, step in rest:
            if step is None:
                if p != end:
                    raise MalformedPacket(f"{end - p} unexpected octet(s) after the last field", p)
                continue
            value, p = step(data, p, end, result)
            if name is not None:
                result[name] = value
        return result, p

    return parse_fused
