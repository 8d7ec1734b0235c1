"""Decoding and building Mobility Headers with the schema of :mod:`lmaho_wire.schema`.

The typed API is :class:`Message` and :class:`Option`, :func:`decode`,
:func:`build` and :func:`option`. Decoding any byte string either returns a
Message or raises :class:`~lmaho_wire.errors.MalformedPacket`; the work done is
linear in the input's length.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from construct import Construct, ConstructError, Container, ListContainer

from .checksum import AddressLike, upper_layer_checksum
from .errors import ChecksumError, MalformedPacket
from .fields import MessageBody, NamedEnum, OptionBody
from .packet import IPPROTO_NONE
from .plan import Plan, make_plan
from .registry import current_schema
from .schema import RAW_BODY, UNKNOWN_OPTION
from .values import FlagBits, Named, Timestamp

MH_HEADER_LENGTH = 6
NO_NEXT_HEADER = IPPROTO_NONE  # the Payload Proto a Mobility Header carries
PAD1 = 0
PADN = 1

_DECODE_ERRORS = (ConstructError, ValueError, UnicodeError, OverflowError, IndexError, KeyError)

_compiled: dict[int, Construct] = {}
_plans: dict[int, Plan] = {}


def clear_caches() -> None:
    """Forget compiled parsers and plans (after the type numbers changed)."""
    _compiled.clear()
    _plans.clear()
    _option_tables.clear()


def _fast(subcon: Construct) -> Construct:
    """The compiled form of ``subcon``, made once (used for building)."""
    c = _compiled.get(id(subcon))
    if c is None:
        c = _compiled[id(subcon)] = subcon.compile()
    return c


def _plan(subcon: Construct) -> Plan:
    """The fast parser of ``subcon``: a plan, or construct's compiled parser if none."""
    p = _plans.get(id(subcon))
    if p is None:
        try:
            p = make_plan(subcon)
        except NotImplementedError:
            compiled = _fast(subcon)

            def p(data: bytes, pos: int, end: int, ctx: dict[str, Any]) -> tuple[Any, int]:
                try:
                    return _plain(compiled.parse(data[pos:end])), end
                except _DECODE_ERRORS as e:
                    raise MalformedPacket(_reason(e), pos) from None

        _plans[id(subcon)] = p
    return p


def _plain(value: Any) -> Any:
    """construct containers to plain dicts and lists, dropping construct's private keys."""
    if isinstance(value, Container):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, ListContainer):
        return [_plain(v) for v in value]
    return value


class Finding(NamedTuple):
    """Something wrong with a packet that still decoded: what, and at which MH offset."""

    kind: str
    what: str
    offset: int

    def __str__(self) -> str:
        return f"{self.what} (at offset {self.offset})"


@dataclass(frozen=True, slots=True)
class Option:
    """One mobility option: its type, schema key, decoded fields and exact data octets."""

    type: int
    key: str
    title: str
    fields: dict[str, Any]
    data: bytes
    offset: int | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(f"{self.key} option has no field {name!r}") from None

    @property
    def length(self) -> int:
        """The Length octet: octets of data after Type and Length (Pad1 has none)."""
        return len(self.data)

    @property
    def is_padding(self) -> bool:
        return self.type in (PAD1, PADN)

    def to_bytes(self) -> bytes:
        if self.type == PAD1:
            return b"\x00"
        return bytes((self.type, len(self.data))) + self.data

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "option": self.key,
            "length": self.length,
            **({"offset": self.offset} if self.offset is not None else {}),
            **{k: jsonable(v) for k, v in self.fields.items()},
        }


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded Mobility Header message."""

    mh_type: int
    name: str
    key: str | None
    fields: dict[str, Any]
    options: tuple[Option, ...]
    payload_proto: int
    header_len: int
    reserved: int
    checksum: int
    checksum_ok: bool | None
    findings: tuple[Finding, ...] = field(default=())

    def __getattr__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(f"{self.name} has no field {name!r}") from None

    @property
    def sequence(self) -> int | None:
        return self.fields.get("sequence")

    @property
    def status(self) -> Named | None:
        return self.fields.get("status")

    @property
    def length(self) -> int:
        """Octets of the whole Mobility Header."""
        return (self.header_len + 1) * 8

    def option(self, key: str) -> Option | None:
        """The first option with schema key ``key`` (e.g. "home_network_prefix")."""
        for opt in self.options:
            if opt.key == key:
                return opt
        return None

    def options_of(self, key: str) -> list[Option]:
        return [opt for opt in self.options if opt.key == key]

    @property
    def mn_identifier(self) -> Any:
        opt = self.option("mn_identifier")
        return None if opt is None else opt.fields["identifier"]

    @property
    def home_network_prefixes(self) -> list[ipaddress.IPv6Network]:
        return [
            hnp_network(o.fields["prefix"], o.fields["prefix_length"])
            for o in self.options_of("home_network_prefix")
            if o.fields["prefix_length"] <= 128
        ]

    def encode(self) -> bytes:
        """Re-encode from the decoded fields, padding and checksum as decoded."""
        return build(
            self.mh_type,
            options=[option_from_fields(o) for o in self.options],
            pad=False,
            checksum=self.checksum,
            payload_proto=self.payload_proto,
            reserved=self.reserved,
            header_len=self.header_len,
            **self.fields,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "message": self.name,
            "mh_type": self.mh_type,
            "sequence": self.sequence,
            "payload_proto": self.payload_proto,
            "header_len": self.header_len,
            "checksum": self.checksum,
            "checksum_ok": self.checksum_ok,
            "fields": {k: jsonable(v) for k, v in self.fields.items()},
            "options": [o.to_json() for o in self.options],
            **(
                {"findings": [{"kind": f.kind, "what": f.what, "offset": f.offset}
                              for f in self.findings]}
                if self.findings else {}
            ),
        }  # fmt: skip


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


# --- decoding --------------------------------------------------------------------


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[-1] if text else type(e).__name__


class _OptionSpec(NamedTuple):
    """What walk_options needs of one option type, looked up once per schema."""

    body: OptionBody
    plan: Plan
    length: int | None
    min_length: int
    align: tuple[int, int] | None
    key: str
    title: str


_option_tables: dict[int, tuple[Mapping[int, OptionBody], dict[int, _OptionSpec]]] = {}


def _spec(body: OptionBody) -> _OptionSpec:
    return _OptionSpec(
        body, _plan(body.subcon), body.length, body.min_length, body.align, body.key, body.title
    )


def _option_table(cases: Mapping[int, OptionBody]) -> dict[int, _OptionSpec]:
    entry = _option_tables.get(id(cases))
    if entry is None or entry[0] is not cases:
        entry = (cases, {t: _spec(b) for t, b in cases.items()})
        _option_tables[id(cases)] = entry
    return entry[1]


def walk_options(
    cases: Mapping[int, OptionBody], mh: bytes, start: int, end: int
) -> tuple[list[Option], list[Finding]]:
    """Decode the options in ``mh[start:end]``; offsets are MH offsets.

    Strict: an option whose Length runs past ``end`` or whose data does not
    decode is an error. Misalignment and non-zero padding are findings.
    """
    table = _option_table(cases)
    unknown = table.get(-1)
    if unknown is None:
        unknown = table[-1] = _spec(UNKNOWN_OPTION)
    options: list[Option] = []
    findings: list[Finding] = []
    pos = start
    while pos < end:
        opt_type = mh[pos]
        if opt_type == PAD1:
            options.append(Option(PAD1, "pad1", "Pad1", {}, b"", pos))
            pos += 1
            continue
        _body, plan, fixed, min_length, align, key, title = table.get(opt_type, unknown)
        if pos + 2 > end:
            raise MalformedPacket(f"{title} option (type {opt_type}) has no Length octet", pos)
        length = mh[pos + 1]
        stop = pos + 2 + length
        if stop > end:
            raise MalformedPacket(
                f"{title} option length {length} runs past the end of the "
                f"Mobility Header ({end - pos - 2} octets left)",
                pos + 1,
            )
        if fixed is not None and length != fixed:
            raise MalformedPacket(f"{title} option has length {length}, must be {fixed}", pos + 1)
        if length < min_length:
            raise MalformedPacket(
                f"{title} option has length {length}, at least {min_length} needed", pos + 1
            )
        try:
            fields, _ = plan(mh, pos + 2, stop, {})
        except MalformedPacket as e:
            raise MalformedPacket(f"{title} option: {e.what}", e.offset) from None
        data = mh[pos + 2 : stop]
        options.append(Option(opt_type, key, title, fields, data, pos))
        if align is not None and pos % align[0] != align[1]:
            findings.append(
                Finding(
                    "alignment",
                    f"{title} option starts at offset {pos}, not aligned {align[0]}n+{align[1]}",
                    pos,
                )
            )
        if opt_type == PADN and any(data):
            findings.append(Finding("padding", "PadN option carries non-zero octets", pos))
        pos = stop
    return options, findings


def decode(
    data: bytes,
    src: AddressLike | None = None,
    dst: AddressLike | None = None,
    *,
    strict: bool = False,
) -> Message:
    """Decode one Mobility Header from the start of ``data``.

    With ``src`` and ``dst`` (the addresses of the IPv6 pseudo-header) the
    checksum is verified; ``strict`` turns every finding (bad checksum,
    misaligned option, ...) into an exception. Octets after the Mobility
    Header belong to the next header and are ignored.
    """
    data = bytes(data)
    if len(data) < MH_HEADER_LENGTH:
        raise MalformedPacket(
            f"truncated Mobility Header: {len(data)} octets, the header alone has 6", 0
        )
    payload_proto, header_len, mh_type, reserved = data[0], data[1], data[2], data[3]
    checksum = (data[4] << 8) | data[5]
    total = (header_len + 1) * 8
    if total > len(data):
        raise MalformedPacket(
            f"Header Len {header_len} says {total} octets but only {len(data)} are present", 1
        )
    mh = data[:total]
    schema = current_schema()
    body = schema.messages.get(mh_type)
    findings: list[Finding] = []
    if payload_proto != NO_NEXT_HEADER:
        findings.append(
            Finding("payload_proto", f"Payload Proto is {payload_proto}, RFC 6275 wants 59", 0)
        )
    options: list[Option] = []
    if body is None:
        fields = {"data": mh[MH_HEADER_LENGTH:].hex(":")}
        name = schema.mh_type_names.get(mh_type, f"MH type {mh_type}")
        key = None
    else:
        end_fixed = MH_HEADER_LENGTH + body.length
        if end_fixed > total:
            raise MalformedPacket(
                f"{body.title} needs {body.length} octets of message data, "
                f"Header Len leaves {total - MH_HEADER_LENGTH}",
                1,
            )
        fields, _ = _plan(body.subcon)(mh, MH_HEADER_LENGTH, end_fixed, {})
        options, option_findings = walk_options(schema.options, mh, end_fixed, total)
        findings += option_findings
        name = _message_name(body, fields)
        key = body.key
    checksum_ok = None
    if src is not None and dst is not None:
        checksum_ok = upper_layer_checksum(src, dst, mh[:4] + b"\x00\x00" + mh[6:]) == checksum
        if not checksum_ok:
            findings.append(Finding("checksum", f"bad checksum 0x{checksum:04x}", 4))
    if strict and findings:
        f = findings[0]
        exc = ChecksumError if f.kind == "checksum" else MalformedPacket
        raise exc(f.what, f.offset)
    return Message(
        mh_type, name, key, fields, tuple(options), payload_proto, header_len, reserved,
        checksum, checksum_ok, tuple(findings),
    )  # fmt: skip


@functools.lru_cache(maxsize=4096)
def hnp_network(prefix: ipaddress.IPv6Address, length: int) -> ipaddress.IPv6Network:
    """The prefix a Home Network Prefix option carries, made once: IPv6Network() is slow."""
    return ipaddress.IPv6Network((prefix, length), strict=False)


def _message_name(body: MessageBody, fields: Mapping[str, Any]) -> str:
    if body.proxy_flag and body.proxy_flag in fields["flags"]:
        return body.proxy_name or body.name
    return body.name


# --- building ------------------------------------------------------------------------


def option(key: str, **fields: Any) -> Option:
    """Make an option from its schema key and field values.

    ``option("home_network_prefix", prefix_length=64, prefix="2001:db8:1::")``;
    reserved fields default to zero. Raises ValueError for values the schema
    cannot encode.
    """
    if key == "pad1":
        return Option(PAD1, "pad1", "Pad1", {}, b"")
    opt_type, body = current_schema().option_by_key(key)
    return _option_of(opt_type, body, fields)


def option_from_fields(opt: Option) -> Option:
    """Re-encode an option from its decoded fields (round-trip checking)."""
    if opt.type == PAD1:
        return opt
    body = current_schema().options.get(opt.type, UNKNOWN_OPTION)
    return _option_of(opt.type, body, opt.fields)


def _option_of(opt_type: int, body: OptionBody, fields: Mapping[str, Any]) -> Option:
    values = _prepare(body.subcon, fields)
    try:
        data = _fast(body.subcon).build(values)
    except (ConstructError, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"cannot encode {body.title} option: {_reason(e)}") from None
    if len(data) > 255:
        raise ValueError(f"{body.title} option data is {len(data)} octets, at most 255 fit")
    if len(data) < body.min_length:
        # What the decoder would refuse, the builder refuses too.
        raise ValueError(
            f"{body.title} option data is {len(data)} octets, at least {body.min_length} needed"
        )
    return Option(
        opt_type, body.key, body.title, _plan(body.subcon)(data, 0, len(data), {})[0], data
    )


def _prepare(subcon: Construct, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Fields ready for construct: reserved fields zero, enumeration names as numbers.

    Numbers first, because a Switch on an enumeration compares numbers.
    """
    values = dict(fields)
    for sc in getattr(subcon, "subcons", ()):
        name = sc.name
        if name is None:
            continue
        if name.startswith("reserved"):
            values.setdefault(name, 0)
        inner = sc.subcon
        if isinstance(inner, NamedEnum) and isinstance(values.get(name), str):
            try:
                values[name] = int(inner.encmapping[values[name]])
            except KeyError:
                raise ValueError(
                    f"{name} has no value named {values[name]!r}; "
                    f"known: {', '.join(map(str, inner.encmapping))}"
                ) from None
    return values


def padding(n: int) -> list[Option]:
    """Options filling ``n`` octets: nothing, one Pad1, or one PadN."""
    if n == 0:
        return []
    if n == 1:
        return [Option(PAD1, "pad1", "Pad1", {}, b"")]
    return [Option(PADN, "padn", "PadN", {"padding": "00:" * (n - 3) + "00" if n > 2 else ""},
                   bytes(n - 2))]  # fmt: skip


def build(
    message: str | int,
    *,
    options: Iterable[Option] = (),
    src: AddressLike | None = None,
    dst: AddressLike | None = None,
    pad: bool = True,
    checksum: int | None = None,
    payload_proto: int = NO_NEXT_HEADER,
    reserved: int = 0,
    header_len: int | None = None,
    **fields: Any,
) -> bytes:
    """Encode a Mobility Header.

    ``message`` is a name ("PBU", "LMA_HO_Init", ...), a schema key, or an MH
    type number. Fixed-part fields not given are zero; addressing a message by
    its proxy name sets the proxy flag (a "PBU" always has P). With ``pad``,
    Pad1/PadN go before each option that has an alignment rule and at the
    end; without it the options are laid as given. The checksum is computed
    when ``src`` and ``dst`` are given and ``checksum`` is not.
    """
    schema = current_schema()
    if isinstance(message, int):
        mh_type, body = message, schema.messages.get(message)
    else:
        try:
            mh_type, body = schema.message_by_key(message)
        except KeyError:
            known = sorted(
                {b.name for b in schema.messages.values()}
                | {b.proxy_name for b in schema.messages.values() if b.proxy_name}
            )
            raise ValueError(f"unknown message {message!r}; known: {', '.join(known)}") from None
    if body is None:
        fixed = _build_fixed(RAW_BODY, fields, f"MH type {mh_type}")
    else:
        if body.proxy_flag and message == body.proxy_name:
            flags = fields.get("flags", 0)
            if isinstance(flags, int):
                fields["flags"] = int(flags) | body.subcon.flags.masks[body.proxy_flag]
            else:
                fields["flags"] = {*flags, body.proxy_flag}
        fixed = _build_fixed(body.subcon, fields, body.title)
    parts = [bytes((payload_proto, 0, mh_type, reserved)), b"\x00\x00", fixed]
    pos = MH_HEADER_LENGTH + len(fixed)
    for opt in options:
        if pad and opt.type not in (PAD1, PADN):
            align = schema.options.get(opt.type, UNKNOWN_OPTION).align
            if align is not None:
                for p in padding((align[1] - pos) % align[0]):
                    parts.append(p.to_bytes())
                    pos += 1 + (p.length + 1 if p.type else 0)
        b = opt.to_bytes()
        parts.append(b)
        pos += len(b)
    if pad:
        for p in padding(-pos % 8):
            parts.append(p.to_bytes())
        pos += -pos % 8
    if pos % 8 and header_len is None:
        raise ValueError(
            f"Mobility Header of {pos} octets is no multiple of 8; build with pad=True"
        )
    if header_len is None:
        header_len = pos // 8 - 1
        if header_len > 255:
            raise ValueError(
                f"Mobility Header of {pos} octets exceeds the 2048 that Header Len allows"
            )
    mh = bytearray(b"".join(parts))
    mh[1] = header_len
    if checksum is None:
        checksum = (
            upper_layer_checksum(src, dst, bytes(mh)) if src is not None and dst is not None else 0
        )
    mh[4] = checksum >> 8
    mh[5] = checksum & 0xFF
    return bytes(mh)


def _build_fixed(subcon: Construct, fields: Mapping[str, Any], title: str) -> bytes:
    names = [sc.name for sc in subcon.subcons if sc.name]
    unknown = set(fields) - set(names)
    if unknown:
        raise ValueError(f"{title} has no field(s) {sorted(unknown)}; fields: {', '.join(names)}")
    values: dict[str, Any] = {n: 0 for n in names}
    if "data" in names and "data" not in fields:
        values["data"] = b""
    values.update(_prepare(subcon, fields))
    try:
        return _fast(subcon).build(values)
    except (ConstructError, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"cannot encode {title}: {_reason(e)}") from None
