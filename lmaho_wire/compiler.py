"""Decoders and builders compiled from the schema: Python source generated per structure.

Like construct's own compiler, but for the field types of
:mod:`lmaho_wire.fields` and for this codec's results (plain dicts of typed
values): walking a Struct once with a :class:`~lmaho_wire.fields.FieldVisitor`
writes a function that reads all its leading fixed-size fields with one
``struct.unpack``, converts each with an inline expression, and handles
switches, repeats and variable-size fields in straight-line code. The same
walk writes the builder.

The generated code only knows the way things go right. Whenever the octets
run short, a check fails or a value does not convert, it gives up and the
reference path runs instead: the plan of :mod:`lmaho_wire.plan` for decoding
(which names what is wrong and where), construct's own build for building
(which raises construct's error). So results and errors are those of the
reference path, and the tests hold the two to each other.
"""

from __future__ import annotations

import functools
import ipaddress
import operator
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from construct import (
    Bytes,
    BytesInteger,
    Construct,
    FormatField,
    GreedyBytes,
    GreedyRange,
    Struct,
    Switch,
    Terminated,
)
from construct.expr import BinExpr
from construct.expr import Path as ExprPath

from .checksum import address_bytes
from .fields import (
    FieldVisitor,
    Flags,
    HexColon,
    IPv4Address,
    IPv6Address,
    NamedEnum,
    Scaled,
    Text,
    TimestampField,
    unrename,
)
from .plan import Plan, make_plan
from .values import Timestamp, ipv6_address

Decoder = Callable[[bytes, int, int], dict[str, Any]]
Builder = Callable[[Mapping[str, Any]], bytes]

# What makes generated code hand over to the reference path.
FALLBACK = (LookupError, TypeError, ValueError, OverflowError, AttributeError, struct.error)


class GiveUp(Exception):
    """Raised by generated code where the reference path must take over."""


_OPERATORS = {operator.add: "+", operator.sub: "-", operator.mul: "*", operator.floordiv: "//"}


def py_expr(expr: Any, names: Mapping[str, str]) -> str:
    """Python source of a construct ``this`` expression; ``names`` maps fields to variables."""
    if isinstance(expr, int) and not isinstance(expr, bool):
        return repr(expr)
    if isinstance(expr, ExprPath):
        parent = expr._Path__parent
        name = expr._Path__field
        if name is None or parent is None or parent._Path__field is not None or name not in names:
            raise NotImplementedError(f"cannot compile path {expr!r}")
        return names[name]
    if isinstance(expr, BinExpr) and expr.op in _OPERATORS:
        return f"({py_expr(expr.lhs, names)} {_OPERATORS[expr.op]} {py_expr(expr.rhs, names)})"
    raise NotImplementedError(f"cannot compile expression {expr!r}")


class _Memo(dict[Any, Any]):
    """value -> decoded value, computed once by ``make`` (Named and FlagBits are immutable)."""

    def __init__(self, make: Callable[[Any], Any]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, key: Any) -> Any:
        value = self[key] = self.make(key)
        return value


def _int_code(c: Construct) -> tuple[str, int, bool] | None:
    """(struct code, size, signed) of a big-endian integer construct, None if it is none."""
    c = unrename(c)
    if isinstance(c, FormatField) and c.fmtstr[:1] == ">" and len(c.fmtstr) == 2:
        code = c.fmtstr[1]
        return (code, c.length, code.islower()) if code in "BHILQbhilq" else None
    if isinstance(c, BytesInteger) and isinstance(c.length, int) and not c.swapped:
        return f"{c.length}s", c.length, bool(c.signed)
    return None


@dataclass
class _Unit:
    """Generated source: the module (``top`` None) or the body of one of its functions.

    Functions for nested structures go to the module, their names and
    constants are the module's.
    """

    top: _Unit | None = None
    lines: list[str] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)
    counter: int = 0

    @property
    def module(self) -> _Unit:
        return self if self.top is None else self.top.module

    def body(self) -> _Unit:
        return _Unit(top=self.module, env=self.module.env)

    def name(self, prefix: str) -> str:
        module = self.module
        module.counter += 1
        return f"{prefix}{module.counter}"

    def const(self, value: Any, prefix: str = "k") -> str:
        for key, existing in self.env.items():
            if existing is value:
                return key
        key = self.name(prefix)
        self.env[key] = value
        return key

    def add(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)


Convert = Callable[[str], str]


@dataclass(frozen=True)
class _Leaf:
    """How to read one leaf field: one of ``code`` (the struct code of a fixed-size
    field) or ``octets`` (the Bytes/GreedyBytes of a variable one), and the
    expression converting what was read (given as a variable name)."""

    code: str | None
    octets: Construct | None
    convert: Convert


class _Leaves(FieldVisitor[_Unit, _Leaf | None]):
    """The :class:`_Leaf` of a field; None for the composite ones (switch, repeat, struct)."""

    def integer(self, c: Construct, unit: _Unit) -> _Leaf | None:
        spec = _int_code(c)
        if spec is None:
            raise NotImplementedError(f"cannot compile an integer of {type(c).__name__}")
        code, _, signed = spec
        if code.endswith("s"):
            return _Leaf(code, None, lambda r: f"from_bytes({r}, 'big', signed={signed})")
        return _Leaf(code, None, lambda r: r)

    def octets(self, c: Construct, unit: _Unit) -> _Leaf | None:
        if isinstance(c, Bytes) and isinstance(c.length, int):
            return _Leaf(f"{c.length}s", None, lambda r: r)
        return _Leaf(None, c, lambda r: r)

    def _over(self, inner: Construct, unit: _Unit, outer: Convert) -> _Leaf | None:
        leaf = self.visit(inner, unit)
        if leaf is None:
            raise NotImplementedError("adapters over composite fields")
        return _Leaf(leaf.code, leaf.octets, lambda r: outer(leaf.convert(r)))

    def enum(self, c: NamedEnum, unit: _Unit) -> _Leaf | None:
        memo = unit.const(_Memo(functools.partial(c._decode, context=None, path="")), "enum")
        return self._over(c.subcon, unit, lambda r: f"{memo}[{r}]")

    def flags(self, c: Flags, unit: _Unit) -> _Leaf | None:
        memo = unit.const(_Memo(functools.partial(c._decode, context=None, path="")), "flags")
        return self._over(c.subcon, unit, lambda r: f"{memo}[{r}]")

    def scaled(self, c: Scaled, unit: _Unit) -> _Leaf | None:
        return self._over(c.subcon, unit, lambda r: f"({r}) * {c.factor}")

    def ipv6(self, c: IPv6Address, unit: _Unit) -> _Leaf | None:
        cls = unit.const(ipv6_address)
        return self._over(c.subcon, unit, lambda r: f"{cls}({r})")

    def ipv4(self, c: IPv4Address, unit: _Unit) -> _Leaf | None:
        cls = unit.const(ipaddress.IPv4Address)
        return self._over(c.subcon, unit, lambda r: f"{cls}({r})")

    def text(self, c: Text, unit: _Unit) -> _Leaf | None:
        return self._over(c.subcon, unit, lambda r: f"{r}.decode('utf-8', 'surrogateescape')")

    def hex(self, c: HexColon, unit: _Unit) -> _Leaf | None:
        return self._over(c.subcon, unit, lambda r: f"{r}.hex(':')")

    def timestamp(self, c: TimestampField, unit: _Unit) -> _Leaf | None:
        # Seconds and fraction read as one 64-bit integer and split.
        parts = [_int_code(sc) for sc in unrename(c.subcon).subcons]
        if len(parts) != 2 or None in parts:
            raise NotImplementedError("a timestamp of two integers")
        (_, sec_size, _), (_, frac_size, _) = parts  # type: ignore[misc]
        if sec_size + frac_size != 8:
            raise NotImplementedError("a timestamp of 8 octets")
        stamp = unit.const(Timestamp)
        bits = 8 * frac_size
        return _Leaf("Q", None, lambda r: f"{stamp}({r} >> {bits}, {r} & {(1 << bits) - 1})")

    def switch(self, c: Any, unit: _Unit) -> _Leaf | None:
        return None

    def repeat(self, c: Any, unit: _Unit) -> _Leaf | None:
        return None

    def struct(self, c: Struct, unit: _Unit) -> _Leaf | None:
        return None


class _Decoding:
    """Writes the body of one structure's decoder: reads at ``p`` up to ``end``."""

    def __init__(self, body: _Unit, ind: int) -> None:
        self.body = body
        self.ind = ind
        self.leaves = _Leaves()
        # Fixed-size fields waiting to be read with one unpack: (variable, leaf).
        self.run: list[tuple[str, _Leaf]] = []

    def flush(self) -> None:
        """Read the pending fixed-size fields with one ``struct.unpack``."""
        if not self.run:
            return
        body, ind = self.body, self.ind
        codes = ">" + "".join(leaf.code or "" for _, leaf in self.run)
        size = struct.calcsize(codes)
        body.add(ind, f"if p + {size} > end: raise GiveUp")
        unpack = body.const(struct.Struct(codes).unpack_from)
        body.add(ind, f"{', '.join(var for var, _ in self.run)}, = {unpack}(data, p)")
        for var, leaf in self.run:
            expr = leaf.convert(var)
            if expr != var:
                body.add(ind, f"{var} = {expr}")
        body.add(ind, f"p += {size}")
        self.run.clear()

    def field(self, c: Construct, var: str, names: dict[str, str]) -> None:
        """Read field ``c`` into ``var``; fixed-size ones join the pending run."""
        leaf = self.leaves.visit(c, self.body)
        if leaf is not None and leaf.code is not None:
            self.run.append((var, leaf))
            return
        self.flush()
        body, ind = self.body, self.ind
        if leaf is not None:
            octets = leaf.octets
            if octets is GreedyBytes:
                body.add(ind, f"{var} = data[p:end]")
                body.add(ind, "p = end")
            else:
                assert isinstance(octets, Bytes)
                body.add(ind, f"n = {py_expr(octets.length, names)}")
                body.add(ind, "if n < 0 or p + n > end: raise GiveUp")
                body.add(ind, f"{var} = data[p:p + n]")
                body.add(ind, "p += n")
            expr = leaf.convert(var)
            if expr != var:
                body.add(ind, f"{var} = {expr}")
            return
        c = unrename(c)
        if isinstance(c, Switch):
            key = body.name("key")
            body.add(ind, f"{key} = {py_expr(c.keyfunc, names)}")
            cases = list(c.cases.items())
            for i, (case, sub) in enumerate(cases):
                if not isinstance(case, int):
                    raise NotImplementedError("switch cases must be integers")
                body.add(ind, f"{'elif' if i else 'if'} {key} == {case}:")
                self.nested(sub, var, names)
            if cases:
                body.add(ind, "else:")
                self.nested(c.default, var, names)
            else:
                self.field(c.default, var, names)
        elif isinstance(c, GreedyRange):
            item = unrename(c.subcon)
            if not isinstance(item, Struct):
                raise NotImplementedError("repeats of structs only")
            fn = _struct_decoder(body, item)
            body.add(ind, f"{var} = []")
            body.add(ind, "while p < end:")
            body.add(ind + 1, f"x, p = {fn}(data, p, end)")
            body.add(ind + 1, f"{var}.append(x)")
        elif isinstance(c, Struct):
            body.add(ind, f"{var}, p = {_struct_decoder(body, c)}(data, p, end)")
        else:
            raise NotImplementedError(f"cannot compile {type(c).__name__}")

    def nested(self, c: Construct, var: str, names: dict[str, str]) -> None:
        """Read ``c`` one level deeper (a switch case)."""
        inner = _Decoding(self.body, self.ind + 1)
        inner.field(c, var, names)
        inner.flush()


def _struct_decoder(unit: _Unit, struct_: Struct, entry: str | None = None) -> str:
    """Write a decoder of ``struct_`` into ``unit``; its name.

    Nested: ``def fn(data, p, end) -> (dict, p)``, raising GiveUp. The entry
    (named ``entry``): ``def entry(data, p, end) -> dict``, handing over to
    ``reference`` when the generated code gives up. Runs of fixed-size fields
    are read with one ``struct.unpack``.
    """
    unit = unit.module
    fn = entry or unit.name("struct")
    body = unit.body()
    decoding = _Decoding(body, 2 if entry else 1)
    names: dict[str, str] = {}
    result: list[str] = []
    for sc in struct_.subcons:
        if sc is Terminated:
            decoding.flush()
            body.add(decoding.ind, "if p != end: raise GiveUp")
            continue
        var = body.name("v")
        decoding.field(sc, var, names)
        if sc.name is not None:
            names[sc.name] = var
            result.append(f"{sc.name!r}: {var}")
    decoding.flush()
    fields = f"{{{', '.join(result)}}}"
    unit.add(0, f"def {fn}(data, p, end):")
    if entry:
        unit.add(1, "pos = p")
        unit.add(1, "try:")
        unit.lines += body.lines
        unit.add(2, f"return {fields}")
        unit.add(1, "except (GiveUp, *FALLBACK):")
        unit.add(2, "return reference(data, pos, end)")
    else:
        unit.lines += body.lines
        unit.add(1, f"return {fields}, p")
    return fn


# Where an encoding goes: the unit, indentation, the value's variable, the
# octets' variable, and the variables of earlier siblings by field name.
_Out = tuple[_Unit, int, str, str, dict[str, str]]


class _Write(FieldVisitor[_Out, None]):
    """Writes the statements that encode the value in ``src`` to octets in ``out``."""

    def _bytes_of(
        self, c: Construct, unit: _Unit, ind: int, out: str, names: dict[str, str]
    ) -> None:
        """``out`` must hold exactly the octets ``c`` (Bytes/GreedyBytes) takes, as bytes."""
        c = unrename(c)
        unit.add(ind, f"if type({out}) is not bytes: raise GiveUp")
        if isinstance(c, Bytes):
            n = str(c.length) if isinstance(c.length, int) else py_expr(c.length, names)
            unit.add(ind, f"if len({out}) != {n}: raise GiveUp")
        elif c is not GreedyBytes:
            raise NotImplementedError(f"cannot compile octets of {type(c).__name__}")

    def _int(self, c: Construct, arg: _Out, value: str) -> None:
        unit, ind, _, out, _ = arg
        spec = _int_code(c)
        if spec is None:
            raise NotImplementedError(f"cannot compile an integer of {type(c).__name__}")
        code, size, signed = spec
        if code.endswith("s"):
            unit.add(ind, f"if type({value}) is not int: raise GiveUp")
            unit.add(ind, f"{out} = {value}.to_bytes({size}, 'big', signed={signed})")
        else:
            unit.add(ind, f"{out} = {unit.const(struct.Struct('>' + code).pack)}({value})")

    def _adapted(self, c: Any, arg: _Out) -> None:
        """An Adapter over octets: its own _encode, then the octets checked."""
        unit, ind, src, out, names = arg
        unit.add(ind, f"{out} = {unit.const(c._encode)}({src}, None, '')")
        self._bytes_of(c.subcon, unit, ind, out, names)

    def integer(self, c: Construct, arg: _Out) -> None:
        self._int(c, arg, arg[2])

    def enum(self, c: NamedEnum, arg: _Out) -> None:
        # Names were turned into numbers before (the builder's prepare step); any
        # other value goes to construct.
        self._int(c.subcon, arg, arg[2])

    def flags(self, c: Flags, arg: _Out) -> None:
        self._int(c.subcon, arg, f"{arg[0].const(c._encode)}({arg[2]}, None, '')")

    def scaled(self, c: Scaled, arg: _Out) -> None:
        self._int(c.subcon, arg, f"{arg[0].const(c._encode)}({arg[2]}, None, '')")

    def timestamp(self, c: TimestampField, arg: _Out) -> None:
        unit, ind, src, out, _ = arg
        inner = _struct_builder(unit, unrename(c.subcon))
        unit.add(ind, f"{out} = {inner}({unit.const(c._encode)}({src}, None, ''))")

    def ipv6(self, c: IPv6Address, arg: _Out) -> None:
        unit, ind, src, out, names = arg
        unit.add(ind, f"{out} = {unit.const(address_bytes)}({src})")
        self._bytes_of(c.subcon, unit, ind, out, names)

    def ipv4(self, c: IPv4Address, arg: _Out) -> None:
        self._adapted(c, arg)

    def text(self, c: Text, arg: _Out) -> None:
        self._adapted(c, arg)

    def hex(self, c: HexColon, arg: _Out) -> None:
        self._adapted(c, arg)

    def octets(self, c: Construct, arg: _Out) -> None:
        unit, ind, src, out, names = arg
        unit.add(ind, f"{out} = {src}")
        self._bytes_of(c, unit, ind, out, names)

    def switch(self, c: Any, arg: _Out) -> None:
        unit, ind, src, out, names = arg
        key = unit.name("key")
        unit.add(ind, f"{key} = {py_expr(c.keyfunc, names)}")
        first = True
        for case, sub in c.cases.items():
            if not isinstance(case, int):
                raise NotImplementedError("switch cases must be integers")
            unit.add(ind, f"{'if' if first else 'elif'} {key} == {case}:")
            first = False
            self.visit(sub, (unit, ind + 1, src, out, names))
        if first:
            self.visit(c.default, arg)
            return
        unit.add(ind, "else:")
        self.visit(c.default, (unit, ind + 1, src, out, names))

    def repeat(self, c: Any, arg: _Out) -> None:
        unit, ind, src, out, _ = arg
        item = unrename(c.subcon)
        if not isinstance(item, Struct):
            raise NotImplementedError("repeats of structs only")
        fn = _struct_builder(unit, item)
        unit.add(ind, f"{out} = b''.join([{fn}(x) for x in {src}])")

    def struct(self, c: Struct, arg: _Out) -> None:
        unit, ind, src, out, _ = arg
        unit.add(ind, f"{out} = {_struct_builder(unit, c)}({src})")


def _struct_builder(unit: _Unit, struct_: Struct) -> str:
    """Write ``def fn(values) -> bytes`` for ``struct_`` into ``unit``; its name."""
    unit = unit.module
    fn = unit.name("build")
    body = unit.body()
    names: dict[str, str] = {}
    parts: list[str] = []
    writer = _Write()
    for sc in struct_.subcons:
        if sc is Terminated:
            continue
        if sc.name is None:
            raise NotImplementedError("unnamed fields")
        src = body.name("x")
        out = body.name("b")
        body.add(1, f"{src} = values[{sc.name!r}]")
        writer.visit(sc, (body, 1, src, out, names))
        names[sc.name] = src
        parts.append(out)
    unit.add(0, f"def {fn}(values):")
    unit.lines += body.lines
    unit.add(1, f"return {' + '.join(parts) or repr(b'')}")
    return fn


def _load(unit: _Unit, entry: str) -> Any:
    env: dict[str, Any] = {"GiveUp": GiveUp, "from_bytes": int.from_bytes, **unit.env}
    source = "\n".join(unit.lines) + "\n"
    exec(compile(source, f"<lmaho_wire compiled {entry}>", "exec"), env)
    return env[entry]


def compile_decoder(subcon: Construct) -> Decoder:
    """The fast decoder of a Struct: ``decode(data, pos, end) -> fields``.

    Anything the generated code does not take on the happy path goes through
    the construct-derived plan, which gives the same value or the precise error.
    """
    slow: Plan = make_plan(subcon)

    def reference(data: bytes, pos: int, end: int) -> dict[str, Any]:
        value: dict[str, Any] = slow(data, pos, end, {})[0]
        return value

    struct_ = unrename(subcon)
    if not isinstance(struct_, Struct):
        return reference
    unit = _Unit()
    unit.env["reference"] = reference
    unit.env["FALLBACK"] = FALLBACK
    try:
        _struct_decoder(unit, struct_, "entry")
    except NotImplementedError:
        return reference
    decoder: Decoder = _load(unit, "entry")
    return decoder


def compile_builder(subcon: Construct) -> Builder:
    """The fast builder of a Struct: ``build(values) -> octets``, values prepared.

    When the generated code gives up, construct's own (compiled) build runs:
    the same octets, or construct's error for values it cannot encode.
    """
    reference_build: Callable[[Mapping[str, Any]], bytes] | None = None

    def reference(values: Mapping[str, Any]) -> bytes:
        nonlocal reference_build
        if reference_build is None:
            reference_build = subcon.compile().build
        return reference_build(values)

    struct_ = unrename(subcon)
    if not isinstance(struct_, Struct):
        return reference
    unit = _Unit()
    try:
        fast = _struct_builder(unit, struct_)
    except NotImplementedError:
        return reference
    unit.env["reference"] = reference
    unit.env["FALLBACK"] = FALLBACK
    unit.add(0, "def entry(values):")
    unit.add(1, "try:")
    unit.add(2, f"return {fast}(values)")
    unit.add(1, "except (GiveUp, *FALLBACK):")
    unit.add(2, "return reference(values)")
    builder: Builder = _load(unit, "entry")
    return builder


def path_names(expr: Any) -> list[str]:
    """The field names a construct ``this`` expression reads, at any depth."""
    if isinstance(expr, ExprPath):
        return [expr._Path__field] if expr._Path__field else []
    if isinstance(expr, BinExpr):
        return path_names(expr.lhs) + path_names(expr.rhs)
    return []


def compile_expr(expr: Any, name: str) -> Callable[[int], int]:
    """A construct expression over the one field ``name``, as a Python function of it."""
    source = f"lambda x: {py_expr(expr, {name: 'x'})}"
    function: Callable[[int], int] = eval(source, {})
    return function
