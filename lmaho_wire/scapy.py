"""scapy layers for the draft's messages and options, generated from the schema.

``import lmaho_wire.scapy`` walks the schema in force with the
:class:`~lmaho_wire.fields.FieldVisitor` and makes a scapy ``Packet`` class
per draft message (``LMA_HO_Req``, ``LMA_HO_Resp``, ``LMA_HO_Init``,
``LMA_HAck``, ``Update``, ``Update_Ack``) and per mobility option scapy has
no class for (the PMIPv6 options, New AP Identifier, Previous LMA Address:
``MIP6OptHomeNetworkPrefix``, ``MIP6OptNewApId``, ...), and binds them into
scapy's Mobility Header and option dispatch (``scapy.layers.inet6``), so
``rdpcap`` shows them and ``IPv6(src=..., dst=...)/LMA_HO_Req(sequence=1,
options=[...])`` builds the octets the codec builds, padding and checksum
included (:func:`unbind` gives scapy its own view back, :func:`bind` ours).
Fields carry the schema's names and the codec's units (a lifetime in
seconds); scapy's own names of the Mobility Header fields (``seq``,
``cksum``, ``len``, ...) are accepted too. The type numbers follow
:func:`lmaho_wire.use_numbers`: the classes stay, their numbers and the
dispatch tables are rebound.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

try:
    from scapy.fields import (
        BitField,
        EnumField,
        Field,
        FieldLenField,
        FlagsField,
        IP6Field,
        IPField,
        MultipleTypeField,
        PacketListField,
        StrFixedLenField,
        StrLenField,
    )
    from scapy.layers import inet6
    from scapy.packet import Packet
except ImportError:
    raise ImportError("lmaho_wire.scapy needs scapy: pip install 'lmaho[scapy]'") from None

from construct import Bytes, Construct, GreedyBytes, GreedyRange, Struct, Switch, Terminated

from .codec import (
    CHECKSUM_FIELD,
    NO_NEXT_HEADER,
    Codec,
    current_schema,
    default_codec,
    on_use_numbers,
)
from .compiler import path_names
from .fields import (
    FieldVisitor,
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
    unrename,
)
from .schema import Schema
from .values import Timestamp

IPPROTO_MH = 135
# What scapy dispatches to itself, before any binding of ours: those types keep scapy's classes.
SCAPY_MH_TYPES = frozenset(inet6._mip6_mhtype2cls)
SCAPY_OPTION_TYPES = frozenset(inet6.moboptcls)
# scapy's names of the Mobility Header fields (MIP6MH_BU, MIP6MH_BA), as aliases of the schema's.
SCAPY_NAMES = {
    "nh": "payload_proto",
    "len": "header_len",
    "mhtype": "mh_type",
    "res": "reserved",
    "cksum": "checksum",
    "seq": "sequence",
}
# The field the codec pairs a response with its request by (Message.sequence).
SEQUENCE = "sequence"
_STRUCT_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


# --- field types the schema's adapters become ----------------------------------------


class _TypeNumberField(EnumField):
    """A message's MH type or an option's type: unset, it is the class's number in force."""

    def __init__(self, name: str) -> None:
        super().__init__(name, None, {}, fmt="B")

    def i2h(self, pkt: Packet | None, x: Any) -> Any:
        return type(pkt).type_number if x is None and pkt is not None else x

    def i2m(self, pkt: Packet | None, x: Any) -> int:
        return int(self.i2h(pkt, x))

    def i2repr(self, pkt: Packet | None, x: Any) -> str:
        return str(super().i2repr(pkt, self.i2h(pkt, x)))

    def rename(self, names: dict[int, str]) -> None:
        self.i2s = dict(names)
        self.s2i = {v: k for k, v in names.items()}


class _ChecksumField(Field[int | None, int]):
    """A checksum, computed when unset and shown in hex as scapy shows its own."""

    def __init__(self, name: str, size: int) -> None:
        super().__init__(name, None, "!" + _STRUCT_FORMATS[size])

    def i2repr(self, pkt: Packet | None, x: int | None) -> str:
        return "None" if x is None else f"0x{x:0{2 * self.sz}x}"


class _ScaledField(Field[int, int]):
    """A count of ``factor``-sized units on the wire, the quantity (seconds) in scapy."""

    __slots__ = ["factor", "unit"]

    def __init__(self, name: str, size: int, factor: int, unit: str) -> None:
        super().__init__(name, 0, "!" + _STRUCT_FORMATS[size])
        self.factor = factor
        self.unit = unit

    def m2i(self, pkt: Packet | None, x: int) -> int:
        return x * self.factor

    def i2m(self, pkt: Packet | None, x: int | None) -> int:
        units, rest = divmod(int(x or 0), self.factor)
        if rest:
            raise ValueError(f"{x} {self.unit} is not a multiple of {self.factor} {self.unit}")
        return units

    def i2repr(self, pkt: Packet | None, x: int) -> str:
        return f"{x} {self.unit}"


class _TimestampField(Field[Timestamp, int]):
    """RFC 5213 8.8 seconds and fractions in one word, as :class:`~lmaho_wire.Timestamp`."""

    __slots__ = ["fraction_bits"]

    def __init__(self, name: str, size: int, fraction_bits: int) -> None:
        super().__init__(name, Timestamp(0), "!" + _STRUCT_FORMATS[size])
        self.fraction_bits = fraction_bits

    def m2i(self, pkt: Packet | None, x: int) -> Timestamp:
        return Timestamp(x >> self.fraction_bits, x & ((1 << self.fraction_bits) - 1))

    def any2i(self, pkt: Packet | None, x: Any) -> Timestamp:
        return x if isinstance(x, Timestamp) else Timestamp.from_float(float(x))

    def i2m(self, pkt: Packet | None, x: Timestamp | None) -> int:
        x = x or Timestamp(0)
        return (x.seconds << self.fraction_bits) | x.fraction

    def i2repr(self, pkt: Packet | None, x: Timestamp) -> str:
        return str(x)


class _TextMixin:
    """UTF-8 text held as octets (scapy's way), shown as text."""

    def any2i(self, pkt: Packet | None, x: Any) -> bytes:
        return x.encode("utf-8", "surrogateescape") if isinstance(x, str) else bytes(x)

    def i2repr(self, pkt: Packet | None, x: bytes) -> str:
        return repr(x.decode("utf-8", "surrogateescape"))


class _HexMixin:
    """Octets shown, and accepted, as colon-separated hex (link-layer identifiers)."""

    def any2i(self, pkt: Packet | None, x: Any) -> bytes:
        if isinstance(x, str):
            return bytes.fromhex(x.replace(":", "").replace("-", ""))
        return bytes(x)

    def i2repr(self, pkt: Packet | None, x: bytes) -> str:
        return x.hex(":")


class _TextField(_TextMixin, StrLenField):
    pass


class _FixedTextField(_TextMixin, StrFixedLenField):
    pass


class _HexField(_HexMixin, StrLenField):
    pass


class _FixedHexField(_HexMixin, StrFixedLenField):
    pass


# --- the walk: schema fields to scapy fields ------------------------------------------

LengthFrom = Callable[[Packet], int]


@dataclass(frozen=True)
class _Place:
    """Where a field sits: its name, the octets left for it (a greedy field takes them all)
    and the layer its repeated items are named after."""

    name: str
    remaining: LengthFrom
    owner: str


class _ScapyField(FieldVisitor[_Place, Any]):
    """One schema field as one scapy field."""

    def integer(self, c: Construct, arg: _Place) -> Any:
        size = int(c.sizeof())
        if size in _STRUCT_FORMATS:
            return Field(arg.name, 0, "!" + _STRUCT_FORMATS[size])
        return BitField(arg.name, 0, 8 * size)

    def enum(self, c: NamedEnum, arg: _Place) -> Any:
        names = {int(v): str(k) for k, v in c.encmapping.items()}
        return EnumField(arg.name, 0, names, fmt=_STRUCT_FORMATS[int(c.sizeof())])

    def flags(self, c: Flags, arg: _Place) -> Any:
        bits = 8 * int(c.sizeof())
        names = [next((n for n, m in c.masks.items() if m == 1 << i), "") for i in range(bits)]
        return FlagsField(arg.name, 0, bits, names)

    def scaled(self, c: Scaled, arg: _Place) -> Any:
        return _ScaledField(arg.name, int(c.sizeof()), c.factor, c.unit)

    def timestamp(self, c: TimestampField, arg: _Place) -> Any:
        fraction = unrename(c.subcon).subcons[-1]
        return _TimestampField(arg.name, int(c.sizeof()), 8 * int(fraction.sizeof()))

    def ipv6(self, c: IPv6Address, arg: _Place) -> Any:
        return IP6Field(arg.name, "::")

    def ipv4(self, c: IPv4Address, arg: _Place) -> Any:
        return IPField(arg.name, "0.0.0.0")

    def _octets(self, c: Construct, arg: _Place, fixed: type, variable: type) -> Any:
        octets = unrename(c.subcon) if not isinstance(c, Bytes) and c is not GreedyBytes else c
        if octets is GreedyBytes:
            return variable(arg.name, b"", length_from=arg.remaining)
        if isinstance(octets.length, int):
            return fixed(arg.name, bytes(octets.length), octets.length)
        (counter,) = path_names(octets.length)
        return variable(arg.name, b"", length_from=lambda pkt: pkt.getfieldval(counter))

    def text(self, c: Text, arg: _Place) -> Any:
        return self._octets(c, arg, _FixedTextField, _TextField)

    def hex(self, c: HexColon, arg: _Place) -> Any:
        return self._octets(c, arg, _FixedHexField, _HexField)

    def octets(self, c: Construct, arg: _Place) -> Any:
        return self._octets(c, arg, StrFixedLenField, StrLenField)

    def switch(self, c: Switch, arg: _Place) -> Any:
        (selector,) = path_names(c.keyfunc)
        cases: list[tuple[Field[Any, Any], Any] | tuple[Field[Any, Any], Any, str]] = [
            (self.visit(case, arg), lambda pkt, key=key: pkt.getfieldval(selector) == key)
            for key, case in c.cases.items()
        ]
        return MultipleTypeField(cases, self.visit(c.default, arg))

    def repeat(self, c: GreedyRange, arg: _Place) -> Any:
        item = unrename(c.subcon)
        name = arg.owner + _camel(arg.name)
        fields = struct_fields(item, _no_rest, name)
        cls = type(name, (_Item,), {"name": name, "fields_desc": fields})
        return PacketListField(arg.name, [], cls, length_from=arg.remaining)


def _no_rest(pkt: Packet) -> int:
    raise NotImplementedError("a variable-length field inside a repeated item")


def _length_counter(c: Construct) -> str | None:
    """The sibling that counts the octets of ``c`` (``Bytes(this.n)`` under adapters)."""
    c = unrename(c)
    while not isinstance(c, Bytes) and hasattr(c, "subcon"):
        c = unrename(c.subcon)
    if isinstance(c, Bytes) and not isinstance(c.length, int):
        (counter,) = path_names(c.length)
        return counter
    return None


def struct_fields(struct: Struct, remaining: LengthFrom, owner: str) -> list[Any]:
    """The scapy fields of a schema Struct. ``remaining(pkt)`` is the octets the Struct has
    (an option's Length); a greedy field gets what the fields before it leave."""
    counted = {
        counter: sc.name for sc in struct.subcons if (counter := _length_counter(sc)) is not None
    }
    fields: list[Any] = []
    before: int | None = 0  # octets of the fields so far; None once one has a variable size
    for sc in struct.subcons:
        if sc is Terminated or not sc.name:
            continue
        if sc.name in counted:
            size = _STRUCT_FORMATS[int(sc.sizeof())]
            fields.append(FieldLenField(sc.name, None, length_of=counted[sc.name], fmt=size))
        else:
            rest = _no_rest if before is None else _minus(remaining, before)
            fields.append(_ScapyField().visit(sc, _Place(sc.name, rest, owner)))
        try:
            before = None if before is None else before + int(sc.sizeof())
        except Exception:  # construct's SizeofError: a variable size
            before = None
    return fields


def _minus(remaining: LengthFrom, octets: int) -> LengthFrom:
    return lambda pkt: remaining(pkt) - octets


def _camel(key: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[_\W]+", key) if part)


# --- the classes --------------------------------------------------------------------


class _Item(Packet):
    """One item of a repeated structure (Context Request's requests)."""

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class _Aliased(Packet):
    """Accepts scapy's Mobility Header field names for the schema's, quietly."""

    def _resolve_alias(self, attr: str) -> str:
        return self.deprecated_fields[attr][0]


def _described(pkt: Packet, skip: frozenset[str]) -> str:
    """``name=value`` of a layer's fields, as scapy shows them, for its summary line."""
    shown = []
    for fld in pkt.fields_desc:
        if fld.name in skip or fld.name in ("autopad", "options"):
            continue
        value = fld.i2repr(pkt, pkt.getfieldval(fld.name))
        if value:  # flags with none set show as nothing
            shown.append(f"{fld.name}={value}")
    return " ".join(shown)


class DraftMobilityHeader(_Aliased, inet6._MobilityHeader):
    """Base of the draft's messages: a Mobility Header whose layout the schema declares."""

    type_number: ClassVar[int]
    type_field: ClassVar[_TypeNumberField]
    message_name: ClassVar[str]
    answers_key: ClassVar[str | None]
    # The codec of the import, for its lengths (the same whatever the numbers).
    codec: ClassVar[Codec]
    # The header fields' (offset, size), the one computed with the checksum when unset,
    # and the fields a summary leaves out.
    header_offsets: ClassVar[dict[str, tuple[int, int]]]
    length_field: ClassVar[str]
    quiet: ClassVar[frozenset[str]]

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        if self.getfieldval(self.length_field) is None:
            at, size = self.header_offsets[self.length_field]
            base = self.codec.mh_length(0)
            length = (len(p) - base) // (self.codec.mh_length(1) - base)
            p = p[:at] + length.to_bytes(size, "big") + p[at + size :]
        if self.getfieldval(CHECKSUM_FIELD) is None:
            at, size = self.header_offsets[CHECKSUM_FIELD]
            checksum = inet6.in6_chksum(IPPROTO_MH, self.underlayer, p)
            p = p[:at] + checksum.to_bytes(size, "big") + p[at + size :]
        return p + pay

    def mysummary(self) -> str:
        return f"{self.message_name} {_described(self, self.quiet)}"

    def answers(self, other: Packet) -> int:
        """A response answers its request (the schema's ``answers``) of the same Sequence
        Number, as the codec pairs them: scapy's ``sr()`` matches them so."""
        request = MESSAGE_LAYERS.get(self.answers_key or "")
        matched = request is not None and isinstance(other, request)
        return int(matched and other.getfieldval(SEQUENCE) == self.getfieldval(SEQUENCE))


class DraftOption(inet6._MIP6OptAlign):
    """Base of the options scapy has no class for: Type, Length, then the schema's fields."""

    type_number: ClassVar[int]
    type_field: ClassVar[_TypeNumberField]
    x = 0
    y = 0

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        if self.olen is None:
            p = p[:1] + bytes([len(p) - 2]) + p[2:]
        return p + pay

    def mysummary(self) -> str:
        return f"{self.name} {_described(self, frozenset({'otype', 'olen'}))}"


def _message_class(body: MessageBody, codec: Codec) -> type[DraftMobilityHeader]:
    layout = codec.schema.layout()
    (type_field,) = path_names(layout.body.keyfunc)
    (length_field,) = path_names(layout.region.length)
    header = struct_fields(layout.header, _no_rest, body.name)
    type_number_field = _TypeNumberField(type_field)
    for i, fld in enumerate(header):
        if fld.name == type_field:
            header[i] = type_number_field
        elif fld.name == CHECKSUM_FIELD:
            header[i] = _ChecksumField(fld.name, layout.offsets[CHECKSUM_FIELD][1])
        elif fld.name == length_field:
            fld.default = None
        elif fld.name == "payload_proto":
            fld.default = NO_NEXT_HEADER
    options_at = layout.header_size + body.length

    def options_length(pkt: Packet) -> int:
        return codec.mh_length(pkt.getfieldval(length_field)) - options_at

    fields = [
        *header,
        *struct_fields(unrename(body.subcon), _no_rest, body.name),
        inet6._PhantomAutoPadField("autopad", 1),
        inet6._OptionsField("options", [], inet6.MIP6OptUnknown, options_at,
                            length_from=options_length),
    ]  # fmt: skip
    names = {f.name for f in fields}
    attributes = {
        "name": f"{body.title} ({body.name})",
        "fields_desc": fields,
        "overload_fields": {inet6.IPv6: {"nh": IPPROTO_MH}},
        "deprecated_fields": {a: (n, "lmaho") for a, n in SCAPY_NAMES.items() if n in names},
        "type_field": type_number_field,
        "message_name": body.name,
        "answers_key": body.answers,
        "codec": codec,
        "header_offsets": layout.offsets,
        "length_field": length_field,
        "quiet": frozenset({*layout.offsets, *body.reserved}),
        "__doc__": f"{body.title}, {body.reference}.",
    }
    return type(body.name, (DraftMobilityHeader,), attributes)


def _option_class(body: OptionBody) -> type[DraftOption]:
    name = "MIP6Opt" + _camel(body.key)

    def data_length(pkt: Packet) -> int:
        return int(pkt.olen)

    x, y = body.align or (0, 0)
    type_number_field = _TypeNumberField("otype")
    fields = [
        type_number_field,
        Field("olen", None, "!B"),
        *struct_fields(unrename(body.subcon), data_length, name),
    ]
    attributes = {
        "name": body.title,
        "fields_desc": fields,
        "type_field": type_number_field,
        "x": x,
        "y": y,
        "__doc__": f"{body.noun}, {body.reference}.",
    }
    return type(name, (DraftOption,), attributes)


# --- binding into scapy's dispatch ------------------------------------------------------


def _make_layers(codec: Codec) -> tuple[dict[str, type[Any]], dict[str, type[Any]]]:
    schema = codec.schema
    messages = {
        body.key: _message_class(body, codec)
        for t, body in schema.messages.items()
        if t not in SCAPY_MH_TYPES
    }
    options = {
        body.key: _option_class(body)
        for t, body in schema.options.items()
        if t not in SCAPY_OPTION_TYPES
    }
    return messages, options


_codec = default_codec()
#: The classes made, by schema key: one per draft message, one per option scapy lacks.
MESSAGE_LAYERS, OPTION_LAYERS = _make_layers(_codec)


# scapy's tables and the classes of ours each dispatches to.
_TABLES = (
    (inet6._mip6_mhtype2cls, MESSAGE_LAYERS),
    (inet6.moboptcls, OPTION_LAYERS),
)
_bound = False


def _renumber(schema: Schema) -> None:
    """Give the layers the type numbers (and the MH type names) of ``schema``."""
    for t, body in schema.messages.items():
        if body.key in MESSAGE_LAYERS:
            MESSAGE_LAYERS[body.key].type_number = t
    for message in MESSAGE_LAYERS.values():
        message.type_field.rename(schema.mh_type_names)
    for t, body in schema.options.items():
        if body.key in OPTION_LAYERS:
            OPTION_LAYERS[body.key].type_number = t
            OPTION_LAYERS[body.key].type_field.rename({t: body.title})


def unbind() -> None:
    """Take the layers out of scapy's dispatch: scapy dissects as it does on its own."""
    global _bound
    for table, layers in _TABLES:
        ours = set(layers.values())
        for number in [n for n, cls in table.items() if cls in ours]:
            del table[number]
    _bound = False


def bind(schema: Schema | None = None) -> None:
    """Bind the layers into scapy's dispatch with the numbers of ``schema`` (the schema in
    force when None). Importing this module does it; :func:`lmaho_wire.use_numbers` rebinds."""
    global _bound
    unbind()
    _renumber(schema or current_schema())
    for table, layers in _TABLES:
        table.update({cls.type_number: cls for cls in layers.values()})
    _bound = True


def _follow_numbers(schema: Schema) -> None:
    if _bound:
        bind(schema)
    else:
        _renumber(schema)


bind(_codec.schema)
on_use_numbers(_follow_numbers)
globals().update({cls.__name__: cls for cls in (*MESSAGE_LAYERS.values(), *OPTION_LAYERS.values())})
