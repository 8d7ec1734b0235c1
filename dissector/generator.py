"""Generate the Wireshark Lua dissector ``dissector/lmaho.lua`` from the codec schema.

The generator walks the construct objects of :mod:`lmaho_wire.schema` (the
Mobility Header envelope, every :class:`~lmaho_wire.fields.MessageBody` and
:class:`~lmaho_wire.fields.OptionBody`, their fields, enumerations, flags,
switches and repeated structures) and writes, in a fixed order:

1. a "generated, do not edit" banner naming the regeneration command;
2. the hand-written runtime ``dissector/runtime.lua`` (tested helpers that
   know nothing about the wire format);
3. one value-string table per distinct enumeration, one ``ProtoField`` per
   schema field (its description is the one the schema declares with the
   field), the experts, and one dissecting function per structure;
4. a descriptor per message and per option, preferences for the draft's type
   numbers, and the registrations (``ip.proto`` 135, ``mip6.option``).

Fields are told apart by :class:`~lmaho_wire.fields.FieldVisitor`, the one
walk over field types the codec's compiler, the samples and the tests share.
A construct the generator does not know, or a field without a description,
is an error, never a silent gap: a field added to the schema either shows up
in Wireshark or stops generation.
Output is deterministic (ordered walks, no timestamps), so the committed
file can be compared with a fresh generation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
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
from construct.expr import BinExpr
from construct.expr import Path as ExprPath

from lmaho_wire.checksum import MH_NEXT_HEADER
from lmaho_wire.codec import NO_NEXT_HEADER, PAD1, PADN, current_schema
from lmaho_wire.fields import (
    FieldVisitor,
    Flags,
    HexColon,
    IPv4Address,
    IPv6Address,
    MessageBody,
    NamedEnum,
    OptionBody,
    Reserved,
    Scaled,
    Text,
    TimestampField,
    description,
    unrename,
)
from lmaho_wire.schema import FIRST_ERROR_STATUS, UNKNOWN_OPTION, MobilityOptions, Schema

HERE = Path(__file__).resolve().parent
RUNTIME = HERE / "runtime.lua"
OUTPUT = HERE / "lmaho.lua"
REGENERATE = "lmaho dissector generate"

PROTO_NAME = "lmaho"
PROTO_TITLE = "LMA Handover for Proxy Mobile IPv6"
OPTION_PROTO_NAME = "lmaho.opt"
OPTION_PROTO_TITLE = "LMA Handover Mobility Option"
PROTOCOL_COLUMN = "LMAHO"
# Wireshark's own Mobile IPv6 dissector, which keeps every MH type lmaho does not own.
WIRESHARK_MIP6 = "mip6"
WIRESHARK_OPTION_TABLE = "mip6.option"

# Fields the dissector reads meaning into, by their schema names. The codec
# reads the same names (Message.sequence, .status, .mn_identifier).
SEQUENCE_FIELD = "sequence"
STATUS_FIELD = "status"
CHECKSUM_FIELD = "checksum"
PAYLOAD_PROTO_FIELD = "payload_proto"
MN_ID_OPTION = "mn_identifier"
# Draft section 4.2: the bMAG's LMA_HO_Req (b) opens a handover, the PBU (f)
# registers the MN at the NLMA, and the NLMA's PBA (i) completes it.
HANDOVER_START = "lma_ho_req"
HANDOVER_REGISTER = "binding_update"
HANDOVER_COMPLETE = "binding_ack"

# (name in R.E, abbreviation, text, group, severity)
EXPERTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("truncated", "lmaho.malformed.truncated", "Truncated Mobility Header", "MALFORMED", "ERROR"),
    (
        "header_len_long",
        "lmaho.malformed.header_len_long",
        "Header Len runs past the packet",
        "MALFORMED",
        "ERROR",
    ),
    (
        "header_len_short",
        "lmaho.malformed.header_len_short",
        "Header Len leaves too little room for the message",
        "MALFORMED",
        "ERROR",
    ),
    (
        "after_mh",
        "lmaho.malformed.after_mh",
        "Octets after the end that Header Len gives",
        "MALFORMED",
        "WARN",
    ),
    (
        "payload_proto",
        "lmaho.payload_proto_unexpected",
        "Payload Proto is not 59 (No Next Header)",
        "PROTOCOL",
        "WARN",
    ),
    ("field_short", "lmaho.malformed.field_short", "Field runs past the end", "MALFORMED", "ERROR"),
    (
        "field_trailing",
        "lmaho.malformed.trailing",
        "Unexpected octets after the last field",
        "MALFORMED",
        "ERROR",
    ),
    (
        "opt_no_length",
        "lmaho.malformed.opt_no_length",
        "Option without Length octet",
        "MALFORMED",
        "ERROR",
    ),
    (
        "opt_overrun",
        "lmaho.malformed.opt_overrun",
        "Option length runs past the end of the Mobility Header",
        "MALFORMED",
        "ERROR",
    ),
    (
        "opt_bad_length",
        "lmaho.malformed.opt_length",
        "Option length not allowed for its type",
        "MALFORMED",
        "ERROR",
    ),
    ("opt_misaligned", "lmaho.opt_misaligned", "Option not aligned", "PROTOCOL", "WARN"),
    ("opt_unknown", "lmaho.opt_unknown_type", "Unknown mobility option", "UNDECODED", "NOTE"),
    ("padn_nonzero", "lmaho.padn_nonzero", "PadN carries non-zero octets", "PROTOCOL", "WARN"),
    ("checksum_bad", "lmaho.checksum.bad", "Bad checksum", "CHECKSUM", "ERROR"),
    ("status_failure", "lmaho.status_failure", "Status reports a failure", "RESPONSE_CODE", "NOTE"),
    ("retransmission", "lmaho.retransmission", "Retransmission", "SEQUENCE", "NOTE"),
    ("ho_completed", "lmaho.handover.completed", "Handover completed", "SEQUENCE", "CHAT"),
    ("ho_failed", "lmaho.handover.failed", "Handover failed", "SEQUENCE", "WARN"),
    ("internal", "lmaho.internal_error", "lmaho dissector error", "MALFORMED", "ERROR"),
    (
        "snapshot",
        "lmaho.snapshot_limited",
        "Packet size limited during capture",
        "UNDECODED",
        "NOTE",
    ),
)

# The dissector's own fields (not schema fields): option framing, checksum
# verification and tracking. (abbreviation, ProtoField kind, label, the
# constructor's middle arguments, blurb); the runtime finds each in R.F by its
# Lua name (lua_name: "lmaho.checksum.status" -> R.F.checksum_status).
# OPTION_NAMES stands for the value string of the option titles by type.
OPTION_NAMES = "OPTION_NAMES"
OWN_FIELDS: tuple[tuple[str, str, str, str, str], ...] = (
    ("lmaho.options", "none", "Mobility Options", "", "The mobility options"),
    ("lmaho.opt.type", "uint8", "Type", f"base.DEC, {OPTION_NAMES}, nil", "Option type"),
    ("lmaho.opt.length", "uint8", "Length", "base.DEC, nil, nil",
        "Octets of option data after the Length octet",
    ),
    ("lmaho.checksum.status", "uint8", "Checksum Status",
        'base.DEC, {[0] = "Bad", [1] = "Good", [2] = "Unverified"}, nil',
        "Result of verifying the Mobility Header checksum (RFC 6275 6.1.1)",
    ),
    ("lmaho.checksum.calculated", "uint16", "Calculated Checksum",
        "base.HEX, nil, nil", "Checksum over the IPv6 pseudo-header and the Mobility Header",
    ),
    ("lmaho.uncaptured", "uint32", "Octets Not Captured", "base.DEC, nil, nil",
        "Octets of the Mobility Header past the capture's snapshot length: options there are "
        "not shown and the checksum is not verified",
    ),
    ("lmaho.response_in", "framenum", "Response In",
        "base.NONE, frametype.RESPONSE, nil", "The response to this request is in this frame",
    ),
    ("lmaho.response_to", "framenum", "Response To",
        "base.NONE, frametype.REQUEST, nil", "This is a response to the request in this frame",
    ),
    ("lmaho.time", "relative_time", "Time", "", "Time between request and response"),
    ("lmaho.retransmission_of", "framenum", "Retransmission Of",
        "base.NONE, frametype.DUP_ACK, nil", "This message repeats the one in this frame",
    ),
    ("lmaho.handover.start", "framenum", "Handover Started In",
        "base.NONE, frametype.REQUEST, nil", "The LMA_HO_Req that opened this handover",
    ),
    ("lmaho.handover.elapsed", "relative_time", "Time Since Handover Start", "",
        "Time since the LMA_HO_Req that opened the handover",
    ),
    ("lmaho.handover.duration", "relative_time", "Handover Duration", "",
        "From the LMA_HO_Req to the message completing the handover",
    ),
    ("lmaho.handover.success", "bool", "Handover Succeeded",
        "base.NONE, nil, nil", "Whether the handover completed successfully",
    ),
)  # fmt: skip

LUA_KEYWORDS = frozenset({
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto",
    "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until",
    "while",
})  # fmt: skip


class GeneratorError(Exception):
    """The schema uses something the generator cannot express in Lua."""


def lua_str(text: str) -> str:
    """A Lua string literal of ``text`` (double quotes, byte escapes)."""
    out = []
    for ch in text.encode("utf-8"):
        c = chr(ch)
        if c in '"\\':
            out.append("\\" + c)
        elif 32 <= ch < 127:
            out.append(c)
        else:
            out.append(f"\\{ch:03d}")
    return '"' + "".join(out) + '"'


def lua_key(table: str, name: str) -> str:
    """``table.name`` or ``table["name"]`` when name is no Lua identifier."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name not in LUA_KEYWORDS:
        return f"{table}.{name}"
    return f"{table}[{lua_str(name)}]"


ACRONYMS = {
    "mh": "MH", "id": "ID", "ap": "AP", "lma": "LMA", "mn": "MN", "nai": "NAI",
    "ipv6": "IPv6", "ipv4": "IPv4",
}  # fmt: skip


def label_of(name: str) -> str:
    """Wireshark-style label of a schema field name: "mh_type" -> "MH Type"."""
    return " ".join(ACRONYMS.get(w, w.capitalize()) for w in name.split("_") if w)


def int_spec(c: Construct) -> tuple[int, bool]:
    """(size in octets, signed) of an integer construct; error for anything else."""
    c = unrename(c)
    if isinstance(c, FormatField):
        fmt = c.fmtstr
        if fmt[0] == "<" or fmt[-1] not in "BHILQbhilq":
            raise GeneratorError(f"unsupported integer format {fmt!r}: big-endian integers only")
        return c.length, fmt[-1].islower()
    if isinstance(c, BytesInteger) and isinstance(c.length, int):
        if c.swapped:
            raise GeneratorError("little-endian BytesInteger is not supported")
        return c.length, bool(c.signed)
    raise GeneratorError(f"not an integer construct: {c!r}")


def path_chain(expr: ExprPath) -> list[str]:
    """The names of a ``this`` path, outermost first: ``this._.x`` -> ["_", "x"].

    Read from the path's repr (``this['_']['x']``), construct's public face
    of it, rather than from its private attributes.
    """
    return re.findall(r"\['([^']*)'\]", repr(expr))


def path_names(expr: Any) -> list[str]:
    """The field names a ``this`` expression reads (the last name of each path)."""
    if isinstance(expr, ExprPath):
        return path_chain(expr)[-1:]
    if isinstance(expr, BinExpr):
        return path_names(expr.lhs) + path_names(expr.rhs)
    return []


def lua_name(abbrev: str) -> str:
    """The Lua name of a field, table or function made for ``abbrev``.

    The abbreviation without the protocol's prefix, dots and other
    non-identifier characters as "_": "lmaho.lma_ho_init.flags.t" ->
    "lma_ho_init_flags_t". Derived from the schema's names alone, so a field
    added to the schema renames nothing else.
    """
    name = re.sub(r"[^A-Za-z0-9_]", "_", abbrev.removeprefix(PROTO_NAME + "."))
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in LUA_KEYWORDS:
        name = "f_" + name
    return name


@dataclass
class _Scope:
    """Where a ``this`` expression is evaluated: Lua tables, innermost first."""

    tables: list[str]


def lua_expr(expr: Any, scope: _Scope) -> str:
    """Translate a construct ``this`` expression (paths and arithmetic) to Lua."""
    if isinstance(expr, int) and not isinstance(expr, bool):
        return str(expr)
    if isinstance(expr, ExprPath):
        chain = path_chain(expr)
        depth = 0
        while chain and chain[0] == "_":
            depth += 1
            chain.pop(0)
        if depth >= len(scope.tables) or len(chain) != 1:
            raise GeneratorError(f"cannot translate path {expr!r}")
        return lua_key(scope.tables[depth], chain[0])
    if isinstance(expr, BinExpr):
        ops = {"add": "+", "sub": "-", "mul": "*"}
        op = ops.get(expr.op.__name__)
        if op is None:
            raise GeneratorError(f"unsupported operator {expr.op.__name__} in {expr!r}")
        return f"({lua_expr(expr.lhs, scope)} {op} {lua_expr(expr.rhs, scope)})"
    raise GeneratorError(f"cannot translate expression {expr!r}")


@dataclass
class _Code:
    """Lua lines with indentation."""

    lines: list[str] = field(default_factory=list)

    def add(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def item(
        self, indent: int, ref: str, size: str, value: str | None, label: str = "", to: str = ""
    ) -> None:
        """Add field ``ref`` to tree ``t`` when there is one.

        A tree that is shown gets the item on its octets (``size`` from
        ``pos``), with ``label`` if given. An invisible one (built for a
        display filter or colouring) gets the bare value: no TvbRange object
        is made (a userdata with a finaliser each, half of an item's cost) and
        no label, which nobody would read; filters see the same value.
        ``to``: the Lua variable that receives the item.
        """
        into = f"{to} = " if to else ""
        shown = ", ".join(x for x in (ref, f"tvb(pos, {size})", value, label) if x)
        bare = ", ".join(x for x in (ref, value) if x)
        self.add(indent, "if t then")
        self.add(indent + 1, f"if vis then {into}add(t, {shown}) else {into}add(t, {bare}) end")
        self.add(indent, "end")


class _Generator:
    """One generation: collects value strings, fields and functions in walk order."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        # Lua name -> table constructor, in walk order.
        self.value_strings: dict[str, dict[int, str]] = {}
        # Lua name -> ProtoField constructor, in walk order.
        self.fields: dict[str, str] = {}
        self.abbrevs: dict[str, str] = {}
        self.functions: list[str] = []
        self.function_names: set[str] = set()
        self.siblings: dict[str, Construct] = {}
        self.header_size = 0
        self.seq_size = 1
        # Lua name -> the {mask, letter} list of a Flags field.
        self.flag_lists: dict[str, str] = {}
        # The value string of the MH type names (set by _header_function).
        self.mh_type_names = "nil"

    # --- declarations -----------------------------------------------------------

    def value_string(self, mapping: dict[int, str], abbrev: str) -> str:
        """``VS.<name>``: the value string of an enumeration, named after the
        first field that declares it (fields with the same names share it)."""
        items = dict(sorted(mapping.items()))
        for name, existing in self.value_strings.items():
            if existing == items:
                return f"VS.{name}"
        if not abbrev:
            raise GeneratorError(f"value string {items} used before its field declared it")
        name = lua_name(abbrev)
        self.value_strings[name] = items
        return f"VS.{name}"

    def declare(self, abbrev: str, ctor: str, args: str, what: str) -> str:
        """Declare the ProtoField ``abbrev``; returns its Lua name ``F.<name>``."""
        if abbrev in self.abbrevs:
            raise GeneratorError(
                f"field {abbrev} declared twice ({self.abbrevs[abbrev]} and {what})"
            )
        name = lua_name(abbrev)
        if name in self.fields:
            raise GeneratorError(f"fields {abbrev} and another both have the Lua name {name}")
        self.abbrevs[abbrev] = what
        self.fields[name] = f"ProtoField.{ctor}({lua_str(abbrev)}, {args})"
        return f"F.{name}"

    def flag_list(self, abbrev: str, lua: str) -> str:
        """``FL.<name>``: the flag list of Flags field ``abbrev``, made once at load time."""
        name = lua_name(abbrev)
        self.flag_lists[name] = lua
        return f"FL.{name}"

    # --- structures -----------------------------------------------------------------

    def struct_function(self, name: str, struct: Struct, abbrev: str, blurb: str) -> str:
        """Emit ``S.<name>(tvb, s, t, pos, stop, v)`` for ``struct``; returns its Lua name."""
        if name in self.function_names:
            raise GeneratorError(f"two structures generate function {name}")
        self.function_names.add(name)
        code = _Code()
        code.add(0, f"S.{name} = function(tvb, s, t, pos, stop, v)")
        code.add(1, "local x, n, vis = nil, nil, R.visible")
        self.struct_body(code, 1, struct, abbrev, blurb, _Scope(["v"]))
        code.add(1, "return pos")
        code.add(0, "end")
        self.functions.append("\n".join(code.lines))
        return f"S.{name}"

    def struct_body(
        self, code: _Code, ind: int, struct: Struct, abbrev: str, blurb: str, scope: _Scope
    ) -> None:
        # A Switch names its cases after the enumeration of a sibling field.
        outer = self.siblings
        self.siblings = {sc.name: unrename(sc) for sc in struct.subcons if isinstance(sc, Renamed)}
        try:
            self.struct_fields(code, ind, struct, abbrev, blurb, scope)
        finally:
            self.siblings = outer

    def struct_fields(
        self, code: _Code, ind: int, struct: Struct, abbrev: str, blurb: str, scope: _Scope
    ) -> None:
        for sc in struct.subcons:
            if sc is Terminated:
                code.add(ind, "if pos < stop then pos = R.trailing(tvb, t, pos, stop) end")
                continue
            if not isinstance(sc, Renamed) or not sc.name:
                raise GeneratorError(f"unnamed field {sc!r} in {abbrev}")
            self.leaf(
                code, ind, sc.name, unrename(sc), f"{abbrev}.{sc.name}", field_blurb(sc), scope
            )

    def leaf(
        self,
        code: _Code,
        ind: int,
        name: str,
        c: Construct,
        abbrev: str,
        blurb: str,
        scope: _Scope,
        label: str | None = None,
    ) -> None:
        """Lua that reads field ``name`` at ``pos`` into the scope's table and shows it."""
        site = _Leaf(code, ind, name, abbrev, blurb, scope, label or label_of(name))
        _LeafWriter(self).visit(c, site)

    def read_int(
        self, code: _Code, ind: int, size: int, signed: bool, label: str, target: str
    ) -> None:
        code.add(ind, f"if pos + {size} > stop then")
        code.add(ind + 1, f"return R.short(tvb, t, pos, stop, {lua_str(label)}, {size})")
        code.add(ind, "end")
        reader = {1: "R.u8(s, pos)", 2: "R.u16(s, pos)", 3: "R.u24(s, pos)", 4: "R.u32(s, pos)"}
        code.add(ind, f"x = {reader.get(size, f'R.uint(s, pos, {size})')}")
        if signed:
            half = 1 << (8 * size - 1)
            code.add(ind, f"if x >= {half} then x = x - {2 * half} end")
        code.add(ind, f"{target} = x")

    def octets(
        self, code: _Code, ind: int, inner: Construct, label: str, scope: _Scope, abbrev: str
    ) -> None:
        """Set ``n`` to the octet count of ``inner`` at ``pos``, clamped and flagged."""
        if inner is GreedyBytes:
            code.add(ind, "n = stop - pos")
            return
        if not isinstance(inner, Bytes):
            raise GeneratorError(f"{abbrev}: octets of {inner!r}; expected Bytes or GreedyBytes")
        length = inner.length
        n = str(length) if isinstance(length, int) else f"({lua_expr(length, scope)} or 0)"
        code.add(ind, f"n = {n}")
        code.add(ind, "if pos + n > stop then")
        code.add(ind + 1, f"return R.short(tvb, t, pos, stop, {lua_str(label)}, n)")
        code.add(ind, "end")

    def timestamp(
        self,
        code: _Code,
        ind: int,
        name: str,
        c: TimestampField,
        abbrev: str,
        blurb: str,
        scope: _Scope,
        label: str,
    ) -> None:
        # TimestampField (RFC 5213 8.8) is its inner Struct of whole seconds and a
        # binary fraction; the item shows the time, its children the two counts.
        inner = unrename(c.subcon)
        if not isinstance(inner, Struct) or len(inner.subcons) != 2:
            raise GeneratorError(f"{abbrev}: TimestampField over {inner!r}")
        sec_c, frac_c = (unrename(sc) for sc in inner.subcons)
        sec_size, _ = int_spec(sec_c)
        frac_size, _ = int_spec(frac_c)
        size = sec_size + frac_size
        scale = 1 << (8 * frac_size)
        ref = self.declare(
            abbrev, "absolute_time", f"{lua_str(label)}, base.UTC, {lua_str(blurb)}", name
        )
        fn = self.struct_function(lua_name(abbrev), inner, abbrev, blurb)
        target = lua_key(scope.tables[0], name)
        code.add(ind, f"if pos + {size} > stop then")
        code.add(ind + 1, f"return R.short(tvb, t, pos, stop, {lua_str(label)}, {size})")
        code.add(ind, "end")
        code.add(ind, "do")
        code.add(ind + 1, "local w, it = {}, nil")
        code.add(ind + 1, f"{target} = w")
        code.item(
            ind + 1,
            ref,
            str(size),
            f"R.nstime(R.uint(s, pos, {sec_size}), R.uint(s, pos + {sec_size}, {frac_size}), "
            f"{scale})",
            to="it",
        )
        code.add(ind + 1, f"pos = {fn}(tvb, s, it, pos, stop, w)")
        code.add(ind, "end")

    def switch(
        self,
        code: _Code,
        ind: int,
        name: str,
        c: Switch,
        abbrev: str,
        blurb: str,
        scope: _Scope,
        label: str,
    ) -> None:
        if callable(c.cases) or not isinstance(c.cases, dict):
            raise GeneratorError(f"{abbrev}: Switch cases must be a dict")
        key = lua_expr(c.keyfunc, scope)
        names = switch_case_names(c, self.siblings.get)
        code.add(ind, f"local k_{name} = {key}")
        first = True
        for case_key, sub_c in c.cases.items():
            if not isinstance(case_key, int):
                raise GeneratorError(f"{abbrev}: Switch case key {case_key!r} is not an integer")
            code.add(ind, f"{'if' if first else 'elseif'} k_{name} == {case_key} then")
            first = False
            self.leaf(
                code,
                ind + 1,
                name,
                unrename(sub_c),
                f"{abbrev}.{names[case_key]}",
                blurb,
                scope,
                label,
            )
        if first:
            self.leaf(code, ind, name, unrename(c.default), abbrev, blurb, scope, label)
            return
        code.add(ind, "else")
        self.leaf(code, ind + 1, name, unrename(c.default), abbrev, blurb, scope, label)
        code.add(ind, "end")

    # --- summaries --------------------------------------------------------------------

    def summary_expr(self, name: str, c: Construct, table: str) -> str | None:
        """Lua text of one top-level field for an option's summary line (None: skip it)."""
        return _SummaryWriter(self).visit(c, lua_key(table, name))

    def summary_function(self, struct: Struct) -> tuple[str, str]:
        """``function(v)`` giving an option's summary line, and one giving its last field.

        The second is what the Info column shows of the MN identifier.
        """
        parts: list[tuple[str, list[str]]] = []
        for sc in struct.subcons:
            c = unrename(sc)
            if not isinstance(sc, Renamed) or isinstance(c, Reserved):
                continue
            if isinstance(c, Switch):
                key = lua_expr(c.keyfunc, _Scope(["v"]))
                body: list[str] = []
                for case_key, sub_c in c.cases.items():
                    expr = self.summary_expr(sc.name, unrename(sub_c), "v") or '""'
                    body.append(f"{'if' if not body else 'elseif'} {key} == {case_key} then")
                    body.append(f"    x = {expr}")
                default = self.summary_expr(sc.name, unrename(c.default), "v") or '""'
                if body:
                    body += ["else", f"    x = {default}", "end"]
                else:
                    body = [f"x = {default}"]
                parts.append((sc.name, body))
                continue
            summary = self.summary_expr(sc.name, c, "v")
            if summary:
                parts.append((sc.name, [f"x = {summary}"]))
        pad = " " * 8
        lines = ["function(v)", f"{pad}local p, x = {{}}, nil"]
        for name, body in parts:
            lines.append(f"{pad}if {lua_key('v', name)} ~= nil then")
            lines += [f"{pad}    {line}" for line in body]
            lines.append(
                f'{pad}    if x ~= "" then p[#p + 1] = {lua_str(label_of(name) + " ")} .. x end'
            )
            lines.append(f"{pad}end")
        lines.append(f'{pad}return concat(p, ", ")')
        lines.append("    end")
        if parts:
            name, body = parts[-1]
            last = [
                "function(v)",
                f"{pad}local x = nil",
                f"{pad}if {lua_key('v', name)} == nil then return nil end",
                *(f"{pad}{line}" for line in body),
                f"{pad}return x",
                "    end",
            ]
            return "\n".join(lines), "\n".join(last)
        return "\n".join(lines), "function(v) return nil end"


@dataclass
class _Leaf:
    """Where one field's Lua goes and how it is named and described."""

    code: _Code
    ind: int
    name: str
    abbrev: str
    blurb: str
    scope: _Scope
    label: str

    @property
    def target(self) -> str:
        return lua_key(self.scope.tables[0], self.name)

    @property
    def desc(self) -> str:
        return lua_str(self.blurb)


class _LeafWriter(FieldVisitor[_Leaf, None]):
    """Lua that reads one field at ``pos`` into the scope's table and shows it."""

    def __init__(self, gen: _Generator) -> None:
        self.gen = gen

    def enum(self, c: NamedEnum, f: _Leaf) -> None:
        gen, code, ind = self.gen, f.code, f.ind
        size, signed = int_spec(c.subcon)
        vs = gen.value_string({int(k): str(v) for k, v in c.decmapping.items()}, f.abbrev)
        ref = gen.declare(
            f.abbrev,
            _int_ctor(size, signed),
            f"{lua_str(f.label)}, base.DEC, {vs}, nil, {f.desc}",
            f.name,
        )
        gen.read_int(code, ind, size, signed, f.label, f.target)
        code.item(ind, ref, str(size), "x")
        code.add(ind, f"pos = pos + {size}")

    def flags(self, c: Flags, f: _Leaf) -> None:
        gen, code, ind, label, abbrev = self.gen, f.code, f.ind, f.label, f.abbrev
        size, _ = int_spec(c.subcon)
        ref = gen.declare(
            abbrev,
            _int_ctor(size, False),
            f"{lua_str(label)}, base.HEX, nil, nil, {f.desc}",
            f.name,
        )
        bits = []
        for letter, mask in c.masks.items():
            bref = gen.declare(
                f"{abbrev}.{letter.lower()}",
                "bool",
                f"{lua_str(letter + ' flag')}, {8 * size}, nil, {mask:#x}, "
                # The schema names and places each flag; what the word is for is its own.
                + lua_str(f"{letter} flag, bit {mask:#x} of {label} ({f.blurb})"),
                f"{f.name}.{letter}",
            )
            bits.append((mask, letter, bref))
        # The flag list is a constant table (FL), not one made per packet.
        flags = ", ".join(f"{{{m:#x}, {lua_str(n)}}}" for m, n, _ in bits)
        flist = gen.flag_list(abbrev, f"{{{flags}}}")
        gen.read_int(code, ind, size, False, label, f.target)
        code.add(ind, "if t and vis then")
        # One TvbRange for the flags word and all its bits.
        code.add(ind + 1, f"local r = tvb(pos, {size})")
        code.add(
            ind + 1,
            f"local ft = add(t, {ref}, r, x, "
            f"R.flags_label({lua_str(label)}, x, {8 * size}, {flist}))",
        )
        for _, _, bref in bits:
            code.add(ind + 1, f"add(ft, {bref}, r)")
        code.add(ind, "elseif t then")
        # The bits take their values from the word through their masks.
        code.add(ind + 1, f"local ft = add(t, {ref}, x)")
        for _, _, bref in bits:
            code.add(ind + 1, f"add(ft, {bref}, x)")
        code.add(ind, "end")
        code.add(ind, f"pos = pos + {size}")

    def scaled(self, c: Scaled, f: _Leaf) -> None:
        gen, code, ind, label = self.gen, f.code, f.ind, f.label
        size, signed = int_spec(c.subcon)
        ref = gen.declare(
            f.abbrev,
            _int_ctor(size, signed),
            f"{lua_str(label)}, base.DEC, nil, nil, "
            + lua_str(f"{f.blurb}; in units of {c.factor} {c.unit}"),
            f.name,
        )
        gen.read_int(code, ind, size, signed, label, f.target)
        code.item(
            ind,
            ref,
            str(size),
            "x",
            f"R.scaled_label({lua_str(label)}, x, {c.factor}, {lua_str(c.unit)})",
        )
        code.add(ind, f"pos = pos + {size}")

    def timestamp(self, c: TimestampField, f: _Leaf) -> None:
        self.gen.timestamp(f.code, f.ind, f.name, c, f.abbrev, f.blurb, f.scope, f.label)

    def _address(self, c: IPv6Address | IPv4Address, f: _Leaf, want: int, ctor: str) -> None:
        code, ind = f.code, f.ind
        inner = unrename(c.subcon)
        if not (isinstance(inner, Bytes) and inner.length == want):
            raise GeneratorError(f"{f.abbrev}: address over {inner!r}, expected Bytes({want})")
        ref = self.gen.declare(f.abbrev, ctor, f"{lua_str(f.label)}, {f.desc}", f.name)
        code.add(ind, f"if pos + {want} > stop then")
        code.add(ind + 1, f"return R.short(tvb, t, pos, stop, {lua_str(f.label)}, {want})")
        code.add(ind, "end")
        code.add(ind, f"{f.target} = sub(s, pos + 1, pos + {want})")
        # An address's value is its octets: the item keeps its TvbRange.
        code.add(ind, f"if t then add(t, {ref}, tvb(pos, {want})) end")
        code.add(ind, f"pos = pos + {want}")

    def ipv6(self, c: IPv6Address, f: _Leaf) -> None:
        self._address(c, f, 16, "ipv6")

    def ipv4(self, c: IPv4Address, f: _Leaf) -> None:
        self._address(c, f, 4, "ipv4")

    def _octets(self, inner: Construct, f: _Leaf, ctor: str, display: str, adder: str) -> None:
        code, ind = f.code, f.ind
        ref = self.gen.declare(f.abbrev, ctor, f"{lua_str(f.label)}, {display}, {f.desc}", f.name)
        self.gen.octets(code, ind, inner, f.label, f.scope, f.abbrev)
        code.add(ind, f"{f.target} = sub(s, pos + 1, pos + n)")
        code.add(ind, f"if t then {adder}(t, {ref}, tvb, pos, n, {lua_str(f.label)}) end")
        code.add(ind, "pos = pos + n")

    def text(self, c: Text, f: _Leaf) -> None:
        self._octets(unrename(c.subcon), f, "string", "base.UNICODE", "R.add_text")

    def hex(self, c: HexColon, f: _Leaf) -> None:
        self._octets(unrename(c.subcon), f, "bytes", "base.COLON", "R.add_bytes")

    def octets(self, c: Construct, f: _Leaf) -> None:
        self._octets(c, f, "bytes", "base.NONE", "R.add_bytes")

    def switch(self, c: Switch, f: _Leaf) -> None:
        self.gen.switch(f.code, f.ind, f.name, c, f.abbrev, f.blurb, f.scope, f.label)

    def repeat(self, c: GreedyRange, f: _Leaf) -> None:
        gen, code, ind, target = self.gen, f.code, f.ind, f.target
        item = unrename(c.subcon)
        if not isinstance(item, Struct):
            raise GeneratorError(f"{f.abbrev}: GreedyRange of {item!r}; only of Struct")
        ref = gen.declare(f.abbrev, "none", f"{lua_str(f.label)}, {f.desc}", f.name)
        fn = gen.struct_function(lua_name(f.abbrev), item, f.abbrev, f.blurb)
        code.add(ind, "do")
        code.add(ind + 1, "local list, i = {}, 0")
        code.add(ind + 1, f"{target} = list")
        code.add(ind + 1, "while pos < stop do")
        code.add(ind + 2, "i = i + 1")
        code.add(ind + 2, "local w, it = {}, nil")
        code.item(ind + 2, ref, "stop - pos", None, to="it")
        code.add(ind + 2, f"local after = {fn}(tvb, s, it, pos, stop, w)")
        code.add(
            ind + 2,
            'if it and vis then it:set_len(after - pos); it:append_text(format(" #%d", i)) end',
        )
        code.add(ind + 2, "list[i] = w")
        code.add(ind + 2, "if after <= pos then break end")
        code.add(ind + 2, "pos = after")
        code.add(ind + 1, "end")
        code.add(ind, "end")

    def struct(self, c: Struct, f: _Leaf) -> None:
        gen, code, ind = self.gen, f.code, f.ind
        struct_size = _sizeof(c)
        ref = gen.declare(f.abbrev, "none", f"{lua_str(f.label)}, {f.desc}", f.name)
        fn = gen.struct_function(lua_name(f.abbrev), c, f.abbrev, f.blurb)
        code.add(ind, "do")
        code.add(ind + 1, "local w, it = {}, nil")
        code.add(ind + 1, f"{f.target} = w")
        span = "stop - pos" if struct_size is None else f"math.min({struct_size}, stop - pos)"
        code.item(ind + 1, ref, span, None, to="it")
        code.add(ind + 1, f"pos = {fn}(tvb, s, it, pos, stop, w)")
        code.add(ind, "end")

    def integer(self, c: Construct, f: _Leaf) -> None:
        gen, code, ind = self.gen, f.code, f.ind
        size, signed = int_spec(c)
        ref = gen.declare(
            f.abbrev,
            _int_ctor(size, signed),
            f"{lua_str(f.label)}, base.DEC, nil, nil, {f.desc}",
            f.name,
        )
        gen.read_int(code, ind, size, signed, f.label, f.target)
        if size > 4:
            # Lua numbers are not exact past 2^53: let Wireshark read the value.
            code.add(ind, f"if t then add(t, {ref}, tvb(pos, {size})) end")
        else:
            code.item(ind, ref, str(size), "x")
        code.add(ind, f"pos = pos + {size}")


class _SummaryWriter(FieldVisitor[str, str | None]):
    """Lua text of one field's value (a Lua expression ``val``) for a summary line."""

    def __init__(self, gen: _Generator) -> None:
        self.gen = gen

    def enum(self, c: NamedEnum, val: str) -> str | None:
        # Declared with its field, which the walk reaches first.
        vs = self.gen.value_string({int(k): str(v) for k, v in c.decmapping.items()}, "")
        return f"R.enum({vs}, {val})"

    def flags(self, c: Flags, val: str) -> str | None:
        return f'format("0x%x", {val})'

    def scaled(self, c: Scaled, val: str) -> str | None:
        return f'format("%d {c.unit}", {val} * {c.factor})'

    def timestamp(self, c: TimestampField, val: str) -> str | None:
        inner = unrename(c.subcon)
        sec, frac = (sc.name for sc in inner.subcons)
        frac_size, _ = int_spec(inner.subcons[1])
        return f"R.utc({lua_key(val, sec)}, {lua_key(val, frac)}, {1 << (8 * frac_size)})"

    def ipv6(self, c: IPv6Address, val: str) -> str | None:
        return f"R.ipv6({val})"

    def ipv4(self, c: IPv4Address, val: str) -> str | None:
        return f"R.ipv4({val})"

    def text(self, c: Text, val: str) -> str | None:
        return f"R.text({val})"

    def hex(self, c: HexColon, val: str) -> str | None:
        return f"R.hex({val})"

    def octets(self, c: Construct, val: str) -> str | None:
        return f"R.hex({val})"

    def repeat(self, c: GreedyRange, val: str) -> str | None:
        return f'format("%d item(s)", #{val})'

    def integer(self, c: Construct, val: str) -> str | None:
        return f'format("%d", {val})'

    def struct(self, c: Struct, val: str) -> str | None:
        return None

    def switch(self, c: Switch, val: str) -> str | None:
        return None


def field_blurb(sc: Construct) -> str:
    """The description a schema field declares: its Wireshark field's description."""
    text = description(sc)
    if not text:
        raise GeneratorError(
            f'field {sc.name!r} has no description: declare it as "{sc.name}" / Type * "what it is"'
        )
    return text


def switch_case_names(c: Switch, lookup: Callable[[str], Construct | None]) -> dict[int, str]:
    """Abbreviation suffix for each case of a Switch keyed on a sibling field.

    The case key's name in the sibling's enumeration, lower case ("nai" for
    an MN identifier of subtype NAI); ``case<N>`` when the key is no enumeration.
    Tests use this same rule to find a switched field's filter name.
    """
    names: dict[int, str] = {}
    enum: NamedEnum | None = None
    paths = path_names(c.keyfunc)
    if len(paths) == 1:
        sibling = lookup(paths[0])
        if isinstance(sibling, NamedEnum):
            enum = sibling
    for key in c.cases:
        name = None
        if enum is not None and key in enum.decmapping:
            name = str(enum.decmapping[key]).lower()
        names[key] = name or f"case{key}"
    return names


def _int_ctor(size: int, signed: bool) -> str:
    kind = "int" if signed else "uint"
    width = {1: 8, 2: 16, 3: 24, 4: 32}.get(size, 64)
    return f"{kind}{width}"


def _sizeof(c: Construct) -> int | None:
    try:
        return int(c.sizeof())
    except Exception:  # construct raises SizeofError for variable sizes
        return None


def generate(schema: Schema | None = None) -> str:
    """The complete text of ``lmaho.lua`` for ``schema`` (the current one by default)."""
    schema = schema or current_schema()
    gen = _Generator(schema)
    try:
        layout = schema.layout()
    except ValueError as e:
        raise GeneratorError(str(e)) from None
    header, offsets, region, body_switch, options_switch = layout
    header_size = layout.header_size
    type_field = path_names(body_switch.keyfunc)
    if len(type_field) != 1 or type_field[0] not in offsets:
        raise GeneratorError("the message Switch must key on one header field")
    type_name = type_field[0]
    for required in (CHECKSUM_FIELD, PAYLOAD_PROTO_FIELD):
        if required not in offsets:
            raise GeneratorError(f"the Mobility Header has no {required} field")
    length_fields = path_names(region.length)
    if len(length_fields) != 1 or length_fields[0] not in offsets:
        raise GeneratorError("the message region length must depend on one header field")
    header_len_name = length_fields[0]
    messages: dict[int, MessageBody] = dict(body_switch.cases)
    option_walkers = {id(w): w for w in options_switch.cases.values()}
    if len(option_walkers) != 1:
        raise GeneratorError("every message must share one MobilityOptions walker")
    walker = next(iter(option_walkers.values()))
    if not isinstance(walker, MobilityOptions):
        raise GeneratorError("options must be walked by MobilityOptions")
    options: dict[int, OptionBody] = dict(walker.cases)
    draft_mh = {v: k for k, v in schema.numbers.mh_types.items()}
    draft_opt = {v: k for k, v in schema.numbers.option_types.items()}

    # Fields of the runtime: the header, option framing, checksum and tracking.
    header_fn = _header_function(gen, header, type_name)
    gen.header_size = header_size
    # The option titles by their default types: Wireshark shows an option's
    # Type with them, and the runtime labels it only where a preference moved
    # a type (as the MH type's names, R.mh_type_label).
    option_names = gen.value_string(
        {t: body.title for t, body in options.items()}, f"{PROTO_NAME}.opt.type"
    )
    for abbrev, ctor, label, args, blurb in OWN_FIELDS:
        args = args.replace(OPTION_NAMES, option_names)
        middle = f"{args}, " if args else ""
        gen.declare(abbrev, ctor, f"{lua_str(label)}, {middle}{lua_str(blurb)}", abbrev)

    # The message length from the Header Len octet, inlined in each message's
    # fast reader (x: that octet's value, read at its 1-based string position).
    fast_len = (
        lua_expr(region.length, _Scope(["hv"])).replace(lua_key("hv", header_len_name), "x"),
        offsets[header_len_name][0] + 1,
    )
    # Messages, in MH type order.
    msg_descs: list[str] = []
    for mh_type in sorted(messages):
        msg_descs.append(_message(gen, mh_type, messages[mh_type], draft_mh, fast_len))
    # Options, in type order, then the unknown option.
    opt_descs: list[str] = []
    pad1_ref = ""
    for opt_type in sorted(options):
        ref, desc = _option(gen, opt_type, options[opt_type], draft_opt)
        opt_descs.append(desc)
        if opt_type == PAD1:
            pad1_ref = ref
    _, unknown_desc = _option(gen, None, UNKNOWN_OPTION, {})
    if not pad1_ref:
        raise GeneratorError("the schema declares no Pad1 option")

    expert_abbrevs = {e[1] for e in EXPERTS}
    clash = expert_abbrevs & set(gen.abbrevs)
    if clash or len(expert_abbrevs) != len(EXPERTS):
        raise GeneratorError(f"expert abbreviations clash with fields: {sorted(clash)}")

    mh_names = {t: n for t, n in sorted(schema.mh_type_names.items()) if t not in draft_mh}
    region_len = lua_expr(region.length, _Scope(["hv"]))
    numbers_line = ", ".join(f"{k}={v}" for k, v in schema.numbers.mh_types.items())
    options_line = ", ".join(f"{k}={v}" for k, v in schema.numbers.option_types.items())

    out: list[str] = []
    w = out.append
    w("-- lmaho.lua: Wireshark dissector for the LMA handover messages of")
    w("-- draft-lim-netext-lma-handover-01 (Proxy Mobile IPv6).")
    w("--")
    w("-- GENERATED by dissector/generator.py from the construct schema in")
    w("-- lmaho_wire/schema.py: DO NOT EDIT. Regenerate with:")
    w(f"--     {REGENERATE}")
    w("--")
    w(f"-- MH types: {numbers_line}")
    w(f"-- Option types: {options_line}")
    w("-- Both are Wireshark preferences (Protocols > LMAHO), or on the tshark command")
    w("-- line: -o lmaho.mh_type_lma_ho_req:240")
    w("--")
    w("-- Use: tshark -X lua_script:lmaho.lua -r capture.pcap, or copy this file into")
    w("-- the personal Lua plugins folder (lmaho dissector install).")
    w("")
    w(f"local lmaho = Proto({lua_str(PROTO_NAME)}, {lua_str(PROTO_TITLE)})")
    w(f"local lmaho_opt = Proto({lua_str(OPTION_PROTO_NAME)}, {lua_str(OPTION_PROTO_TITLE)})")
    w("")
    w("-- ---- runtime: dissector/runtime.lua --------------------------------------------")
    w(RUNTIME.read_text().rstrip("\n"))
    w("-- ---- end of runtime --------------------------------------------------------------")
    w("")
    w("local byte, sub, format, concat = string.byte, string.sub, string.format, table.concat")
    w("local find_mnid = R.find_mnid")
    w("local add = TreeItem.add")
    w("")
    w("-- Value strings, one per distinct enumeration of the schema, named after the")
    w("-- first field that uses it.")
    w("local VS = {}")
    for name, mapping in gen.value_strings.items():
        entries = ", ".join(f"[{k}] = {lua_str(v)}" for k, v in mapping.items())
        w(f"VS.{name} = {{ {entries} }}")
    w("")
    w("-- Flag lists of the Flags fields: {mask, letter} each.")
    w("local FL = {}")
    for name, lua in gen.flag_lists.items():
        w(f"FL.{name} = {lua}")
    w("")
    w("-- Fields: one per schema field, then the dissector's own (R.F is this table).")
    w("local F = {}")
    for name, ctor in gen.fields.items():
        w(f"F.{name} = {ctor}")
    w("-- Registered in this order (a table's own order is not fixed).")
    w("lmaho.fields = {")
    for name in gen.fields:
        w(f"    F.{name},")
    w("}")
    w("R.F = F")
    w("")
    w("-- Experts: every malformed case is filterable.")
    w("local E = {}")
    for key, abbrev, text, group, severity in EXPERTS:
        w(
            f"E.{key} = ProtoExpert.new({lua_str(abbrev)}, {lua_str(text)}, "
            f"expert.group.{group}, expert.severity.{severity})"
        )
    w("lmaho.experts = { " + ", ".join(f"E.{e[0]}" for e in EXPERTS) + " }")
    w("R.E = E")
    w("")
    w("-- One function per structure: S.x(tvb, s, t, pos, stop, v) reads the fields at")
    w("-- pos into v and, when t is a tree, shows them; it returns the offset reached.")
    w("local S = {}")
    for fn in gen.functions:
        w(fn)
    w(header_fn)
    w("R.header = S.header")
    w(f"R.mh_names_registered, R.opt_names_registered = {gen.mh_type_names}, {option_names}")
    w(f"R.msg_len = function(hv) return {region_len} end")
    # The same length from the Header Len value alone, for the tree-less path.
    len_of = region_len.replace(lua_key("hv", header_len_name), "x")
    w(f"R.msg_len_of = function(x) return {len_of} end")
    w("")
    w("-- Messages, by MH type.")
    for desc in msg_descs:
        w(desc)
    w("")
    w("-- Mobility options, by option type.")
    for desc in opt_descs:
        w(desc)
    w(f"R.unknown_opt = {unknown_desc}")
    w("")
    w("R.C = {")
    consts = {
        "header_size": header_size,
        "type_offset": offsets[type_name][0],
        "header_len": lua_str(header_len_name),
        "header_len_offset": offsets[header_len_name][0],
        "checksum": lua_str(CHECKSUM_FIELD),
        "checksum_offset": offsets[CHECKSUM_FIELD][0],
        "payload_proto": lua_str(PAYLOAD_PROTO_FIELD),
        "no_next_header": NO_NEXT_HEADER,
        "next_header": MH_NEXT_HEADER,
        "pad1": PAD1,
        "padn": PADN,
        "mnid_key": lua_str(MN_ID_OPTION),
        "sequence": lua_str(SEQUENCE_FIELD),
        "status": lua_str(STATUS_FIELD),
        "success_below": FIRST_ERROR_STATUS,
        # Sequence Numbers are below this: the tracking's numeric pairing keys.
        "seq_span": 1 << (8 * gen.seq_size),
        "ho_start": lua_str(HANDOVER_START),
        "ho_register": lua_str(HANDOVER_REGISTER),
        "ho_complete": lua_str(HANDOVER_COMPLETE),
        "column": lua_str(PROTOCOL_COLUMN),
    }
    for key, value in consts.items():
        w(f"    {key} = {value},")
    w("}")
    w("R.mh_names_fixed = {")
    for t, n in mh_names.items():
        w(f"    [{t}] = {lua_str(n)},")
    w("}")
    w("")
    w("-- Preferences: the draft's type numbers (defaults from lmaho_wire/numbers.py).")
    for mh_type in sorted(messages):
        body = messages[mh_type]
        if mh_type in draft_mh:
            w(
                f"lmaho.prefs.{_pref(body.key, 'mh')} = Pref.uint("
                f"{lua_str(f'MH type of {body.name}')}, {mh_type}, "
                + lua_str(
                    f"Mobility Header type number of {body.title} ({body.name}); "
                    f"lmaho's default is {mh_type}"
                )
                + ")"
            )
    for opt_type in sorted(options):
        body = options[opt_type]
        if opt_type in draft_opt:
            w(
                f"lmaho.prefs.{_pref(body.key, 'opt')} = Pref.uint("
                f"{lua_str(f'Option type of {body.title}')}, {opt_type}, "
                + lua_str(
                    f"Mobility option type number of the {body.noun}; lmaho's default is {opt_type}"
                )
                + ")"
            )
    w(
        'lmaho.prefs.verify_checksum = Pref.bool("Verify the Mobility Header checksum", true, '
        '"Compute the checksum over the IPv6 pseudo-header and flag a wrong one")'
    )
    w(
        'lmaho.prefs.show_pmip = Pref.bool("Show PBU/PBA fields under lmaho too", false, '
        "\"Besides Wireshark's own MIPv6 tree, decode Proxy Binding Update and "
        "Acknowledgement with lmaho's schema fields\")"
    )
    w("")
    w("-- Registration.")
    w("R.proto, R.opt_proto = lmaho, lmaho_opt")
    w(f"R.mip6 = Dissector.get({lua_str(WIRESHARK_MIP6)})")
    w(f"R.opt_table = DissectorTable.get({lua_str(WIRESHARK_OPTION_TABLE)})")
    w("lmaho.init = R.reset")
    w("lmaho.prefs_changed = function() R.apply_prefs(lmaho.prefs) end")
    w("lmaho.dissector = R.dissect")
    w("lmaho_opt.dissector = R.guarded(R.dissect_option)")
    w("R.apply_prefs(lmaho.prefs)")
    w(f'DissectorTable.get("ip.proto"):add({MH_NEXT_HEADER}, lmaho)')
    return "\n".join(out) + "\n"


def _pref(key: str, kind: str) -> str:
    return f"{kind}_type_{key}"


def _header_function(gen: _Generator, header: Struct, type_name: str) -> str:
    """S.header: the MH header fields, the type shown with the names in force."""
    code = _Code()
    code.add(0, "S.header = function(tvb, s, t, pos, stop, v)")
    code.add(1, "local x, n, vis = nil, nil, R.visible")
    for sc in header.subcons:
        c = unrename(sc)
        abbrev = f"{PROTO_NAME}.{sc.name}"
        if sc.name == type_name and isinstance(c, NamedEnum):
            # The names follow the preferences, so the label is written at run time.
            fsize, _ = int_spec(c.subcon)
            vs = gen.value_string({int(k): str(v) for k, v in c.decmapping.items()}, abbrev)
            gen.mh_type_names = vs
            ref = gen.declare(
                abbrev,
                _int_ctor(fsize, False),
                f"{lua_str(label_of(sc.name))}, base.DEC, {vs}, nil, " + lua_str(field_blurb(sc)),
                sc.name,
            )
            gen.read_int(code, 1, fsize, False, label_of(sc.name), lua_key("v", sc.name))
            code.item(1, ref, str(fsize), "x", f"R.mh_type_label({lua_str(label_of(sc.name))}, x)")
            code.add(1, f"pos = pos + {fsize}")
            continue
        if sc.name == CHECKSUM_FIELD:
            fsize, _ = int_spec(c)
            ref = gen.declare(
                abbrev,
                _int_ctor(fsize, False),
                f"{lua_str(label_of(sc.name))}, base.HEX, nil, nil, " + lua_str(field_blurb(sc)),
                sc.name,
            )
            gen.read_int(code, 1, fsize, False, label_of(sc.name), lua_key("v", sc.name))
            code.item(1, ref, str(fsize), "x")
            code.add(1, f"pos = pos + {fsize}")
            continue
        gen.leaf(code, 1, sc.name, c, abbrev, field_blurb(sc), _Scope(["v"]))
    code.add(1, "return pos")
    code.add(0, "end")
    return "\n".join(code.lines)


def _message(
    gen: _Generator,
    mh_type: int,
    body: MessageBody,
    draft: dict[int, str],
    fast_len: tuple[str, int],
) -> str:
    if not isinstance(body, MessageBody):
        raise GeneratorError(f"MH type {mh_type}: body is {body!r}, not a MessageBody")
    struct = unrename(body.subcon)
    if not isinstance(struct, Struct):
        raise GeneratorError(f"{body.key}: fixed part must be a Struct")
    abbrev = f"{PROTO_NAME}.{body.key}"
    blurb = f"{body.title} ({body.reference})"
    lookup = {sc.name: unrename(sc) for sc in struct.subcons if isinstance(sc, Renamed)}
    ref = gen.declare(abbrev, "none", f"{lua_str(body.title)}, {lua_str(blurb)}", body.key)
    fn = gen.struct_function(lua_name(abbrev), struct, abbrev, blurb)
    if body.role not in ("request", "response"):
        raise GeneratorError(f"{body.key}: role {body.role!r}")
    if body.role == "response" and not body.answers:
        raise GeneratorError(f"{body.key}: a response must name the request it answers")
    if SEQUENCE_FIELD not in lookup:
        raise GeneratorError(f"{body.key}: no {SEQUENCE_FIELD} field to pair requests with")
    seq_size = _sizeof(lookup[SEQUENCE_FIELD])
    if seq_size is None or seq_size > 4:
        raise GeneratorError(f"{body.key}: {SEQUENCE_FIELD} must be an integer of 1 to 4 octets")
    gen.seq_size = max(gen.seq_size, seq_size)
    entries = {
        "key": lua_str(body.key),
        "name": lua_str(body.name),
        "title": lua_str(body.title),
        "role": lua_str(body.role),
        "pair": lua_str(body.answers or body.key if body.role == "response" else body.key),
        "field": ref,
        "length": str(body.length),
        "fast": _fast_function(struct, body, gen.header_size, fast_len),
        "dissect": fn,
        "type": str(mh_type),
        "delegated": "false" if mh_type in draft else "true",
    }
    if mh_type in draft:
        entries["pref"] = lua_str(_pref(body.key, "mh"))
    status = lookup.get(STATUS_FIELD)
    if isinstance(status, NamedEnum):
        entries["status_vs"] = gen.value_string(
            {int(k): str(v) for k, v in status.decmapping.items()}, f"{abbrev}.{STATUS_FIELD}"
        )
    if body.proxy_flag:
        for sc in struct.subcons:
            c = unrename(sc)
            if isinstance(c, Flags) and body.proxy_flag in c.masks:
                entries["proxy_field"] = lua_str(sc.name)
                entries["proxy_mask"] = str(c.masks[body.proxy_flag])
                entries["proxy_name"] = lua_str(body.proxy_name or body.name)
                break
        else:
            raise GeneratorError(f"{body.key}: proxy flag {body.proxy_flag} is in no Flags field")
    return "R.MSG[#R.MSG + 1] = {\n" + _entries(entries) + "}"


def _fast_function(
    struct: Struct, body: MessageBody, header_size: int, fast_len: tuple[str, int]
) -> str:
    """``function(s, cap)``: what the tree-less paths need of one message, from its raw octets.

    Returns false when the header or the fixed part is not all there; else
    true, the sequence, status and proxy-flags values (nil for a field the
    message lacks or that follows a variable-size one) and the raw data of
    the first MN identifier option (R.find_mnid). The fields are read at the
    Mobility Header offsets known because the fixed part is fixed, with one
    ``string.byte`` call over their span: the call, not the arithmetic, is
    the cost, and so is a call per field or per helper.
    """
    proxy = None
    for sc in struct.subcons:
        c = unrename(sc)
        if isinstance(c, Flags) and body.proxy_flag in c.masks:
            proxy = sc.name
    wanted = [SEQUENCE_FIELD, STATUS_FIELD, proxy]
    found: dict[str, tuple[int, int]] = {}
    pos = 0
    for sc in struct.subcons:
        size = _sizeof(sc)
        if size is None:
            break
        if sc.name in wanted:
            c = unrename(sc)
            if isinstance(c, Flags | NamedEnum | FormatField | BytesInteger):
                int_spec(c.subcon if isinstance(c, Adapter) else c)
                found[sc.name] = (header_size + pos, size)
        pos += size
    len_expr, len_pos = fast_len
    fixed_end = header_size + body.length
    pad = " " * 8
    # One string.byte call from the Header Len octet to the first option's
    # Length octet (those two may be past the end: nil then), when that span
    # is short; the MN identifier is most often the first option.
    first_option = fixed_end + 2 <= len_pos + 24
    lo = min([len_pos] + [at + 1 for at, _ in found.values()])
    hi = fixed_end + 2 if first_option else max([len_pos] + [at + s for at, s in found.values()])
    used = {len_pos: "x"}
    for at, size in found.values():
        for i in range(size):
            used[at + 1 + i] = f"b{at + 1 + i}"
    if first_option:
        used[fixed_end + 1], used[fixed_end + 2] = "ty", "len"
    names = [used.get(i, "_") for i in range(lo, hi + 1)]
    exprs = []
    for name in wanted:
        if name not in found:
            exprs.append("nil")
            continue
        at, size = found[name]
        expr = f"b{at + 1}"
        for i in range(at + 2, at + 1 + size):
            expr = f"({expr}) * 256 + b{i}"
        exprs.append(expr)
    values = ", ".join(exprs)
    lines = [
        "function(s, cap)",
        f"{pad}if cap < {max(fixed_end, header_size)} then return false end",
        f"{pad}local {', '.join(names)} = byte(s, {lo}, {hi})",
        f"{pad}local stop = {header_size} + {len_expr}",
        f"{pad}if stop > cap then stop = cap end",
        f"{pad}if stop < {fixed_end} then return false end",
    ]
    if first_option:
        lines += [
            f"{pad}if ty == mnid_type and len and {fixed_end + 2} + len <= stop then",
            f"{pad}    return true, {values}, sub(s, {fixed_end + 3}, {fixed_end + 2} + len)",
            f"{pad}end",
        ]
    lines.append(f"{pad}return true, {values}, find_mnid(s, {fixed_end}, stop)")
    lines.append("    end")
    return "\n".join(lines)


def _option(
    gen: _Generator, opt_type: int | None, body: OptionBody, draft: dict[int, str]
) -> tuple[str, str]:
    if not isinstance(body, OptionBody):
        raise GeneratorError(f"option type {opt_type}: body is {body!r}, not an OptionBody")
    struct = unrename(body.subcon)
    if not isinstance(struct, Struct):
        raise GeneratorError(f"{body.key}: option data must be a Struct")
    abbrev = f"{PROTO_NAME}.opt.{body.key}"
    blurb = f"{body.noun} ({body.reference})"
    ref = gen.declare(abbrev, "none", f"{lua_str(body.title)}, {lua_str(blurb)}", body.key)
    fn = gen.struct_function(lua_name(abbrev), struct, abbrev, blurb)
    summary, info = gen.summary_function(struct)
    entries = {
        "key": lua_str(body.key),
        "title": lua_str(body.title),
        "noun": lua_str(body.noun),
        "field": ref,
        "length": "nil" if body.length is None else str(body.length),
        "min": str(body.min_length),
        "dissect": fn,
        "summary": summary,
        "info": info,
        "fits": "true" if _fits(struct, body.min_length) else "false",
    }
    if body.align is not None:
        entries["ax"], entries["ay"] = str(body.align[0]), str(body.align[1])
    if opt_type is not None:
        entries["type"] = str(opt_type)
        if opt_type in draft:
            entries["pref"] = lua_str(_pref(body.key, "opt"))
        return ref, "R.OPT[#R.OPT + 1] = {\n" + _entries(entries) + "}"
    return ref, "{\n" + _entries(entries) + "}"


def _fits(struct: Struct, min_length: int) -> bool:
    """Whether option data of any allowed length fills ``struct`` exactly.

    True for fixed-size fields followed by one that takes the rest (PadN's
    padding, an unknown option's data): no field can then be short or leave
    octets over, so the tree-less scan need not read the fields (R.scan).
    """
    fields = [sc for sc in struct.subcons if sc is not Terminated]
    if not fields:
        return True
    inner = unrename(fields[-1])
    while isinstance(inner, Adapter):
        inner = unrename(inner.subcon)
    sizes = [_sizeof(sc) for sc in fields[:-1]]
    if inner is not GreedyBytes or None in sizes:
        return False
    return sum(size for size in sizes if size is not None) <= min_length


def _entries(entries: dict[str, str]) -> str:
    return "".join(f"    {k} = {v},\n" for k, v in entries.items())


def write(path: Path | None = None, schema: Schema | None = None) -> Path:
    """Generate and write the dissector (``dissector/lmaho.lua`` by default)."""
    target = path or OUTPUT
    text = generate(schema)
    target.write_text(text)
    return target
