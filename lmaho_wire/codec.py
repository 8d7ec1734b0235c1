"""Decoding and building Mobility Headers: the :class:`Codec` compiled from a schema.

A Codec owns what it compiles from its :class:`~lmaho_wire.schema.Schema`:
the decoder and builder of the Mobility Header header, of every message's
fixed part and of every option's data (:mod:`lmaho_wire.compiler`). The
typed API, :func:`decode`, :func:`build`, :func:`option`, :class:`Message`
and :class:`Option`, works with the default codec, made from the type
numbers in force; :func:`use_numbers` replaces it. Decoding any byte string
either returns a Message or raises :class:`~lmaho_wire.errors.MalformedPacket`;
the work done is linear in the input's length.
"""

from __future__ import annotations

import functools
import inspect
import ipaddress
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar

from construct import Construct, ConstructError, Struct

from .checksum import AddressLike, checksum_matches, upper_layer_checksum
from .compiler import Builder, Decoder, compile_builder, compile_decoder, compile_expr, path_names
from .errors import ChecksumError, MalformedPacket, Truncated
from .fields import MessageBody, NamedEnum, OptionBody, reserved_names, unrename
from .numbers import Numbers, load_numbers_file
from .options import (
    PAD1,
    PAD1_OPTION,
    PADN,
    Finding,
    Option,
    OptionMemo,
    OptionSpec,
    frozen_maker,
    make_option,
    option_noun,
    padding,
    walk_options,
)
from .packet import IPPROTO_NONE
from .schema import RAW_BODY, UNKNOWN_OPTION, Schema, make_schema
from .values import Named, jsonable

__all__ = [
    "PAD1",
    "PADN",
    "Codec",
    "Finding",
    "Message",
    "Option",
    "build",
    "current_schema",
    "decode",
    "default_codec",
    "jsonable",
    "on_use_numbers",
    "option",
    "option_from_fields",
    "padding",
    "use_numbers",
    "use_numbers_file",
]

NO_NEXT_HEADER = IPPROTO_NONE  # the Payload Proto a Mobility Header carries
# The header field the codec computes, by its schema name. The header's other
# fields are Message attributes of the same names (payload_proto, reserved, ...).
CHECKSUM_FIELD = "checksum"

MAX_REMEMBERED_HEADERS = 1024
# construct's compiled build lets struct.error through for out-of-range integers.
P = ParamSpec("P")
R = TypeVar("R")

_BUILD_ERRORS = (ConstructError, ValueError, TypeError, AttributeError, struct.error)


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
    # The codec that decoded it, which re-encodes it (the default one when None).
    codec: Codec | None = field(default=None, compare=False, repr=False)
    # Octets of the message past the end of what was captured (Codec.decode's partial).
    uncaptured: int = 0

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
        return (self.codec or default_codec()).mh_length(self.header_len)

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
        codec = self.codec or default_codec()
        return codec.build(
            self.mh_type,
            options=[codec.option_from_fields(o) for o in self.options],
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
            **({"uncaptured": self.uncaptured} if self.uncaptured else {}),
            **(
                {"findings": [{"kind": f.kind, "what": f.what, "offset": f.offset}
                              for f in self.findings]}
                if self.findings else {}
            ),
        }  # fmt: skip


def _whole_options_end(mh: bytes, pos: int, end: int) -> int:
    """Where the last option wholly inside ``mh[pos:end]`` ends (a capture cut the rest)."""
    while pos < end:
        if mh[pos] == PAD1:
            step = 1
        elif pos + 2 > end:
            break
        else:
            step = 2 + mh[pos + 1]
        if pos + step > end:
            break
        pos += step
    return pos


# As many prefixes as addresses are remembered: a capture of 20,000 MNs interleaves
# their messages, and a smaller cache missed on nearly every one of them.
@functools.lru_cache(maxsize=65_536)
def hnp_network(prefix: ipaddress.IPv6Address, length: int) -> ipaddress.IPv6Network:
    """The prefix a Home Network Prefix option carries, made once: IPv6Network() is slow."""
    return ipaddress.IPv6Network((prefix, length), strict=False)


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[-1] if text else type(e).__name__


class _Fields:
    """A structure's compiled decoder and builder, and how to prepare values for it."""

    def __init__(self, subcon: Construct, title: str) -> None:
        self.title = title
        self.decode: Decoder = compile_decoder(subcon)
        self.build: Builder = compile_builder(subcon)
        struct_ = unrename(subcon)
        subcons = struct_.subcons if isinstance(struct_, Struct) else []
        self.names = [sc.name for sc in subcons if sc.name]
        self.reserved = sorted(reserved_names(subcon))
        self.enums = {
            sc.name: c.encmapping
            for sc in subcons
            if sc.name and isinstance(c := unrename(sc), NamedEnum)
        }

    def prepare(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Fields ready for building: reserved fields zero, enumeration names as numbers.

        Numbers first, because a Switch on an enumeration compares numbers.
        """
        values = dict(fields)
        if not self.reserved and not self.enums:
            return values
        for name in self.reserved:
            values.setdefault(name, 0)
        for name, mapping in self.enums.items():
            value = values.get(name)
            if isinstance(value, str):
                try:
                    values[name] = int(mapping[value])
                except KeyError:
                    known = ", ".join(map(str, mapping))
                    raise ValueError(
                        f"{name} has no value named {value!r}; known: {known}"
                    ) from None
        return values


class _MessageSpec(NamedTuple):
    """What the codec needs of one message type, compiled once."""

    body: MessageBody | None
    fields: _Fields
    length: int
    defaults: dict[str, Any]
    # (flags field, mask) of the flag that makes the proxy variant, if any.
    proxy: tuple[str, int] | None


class Codec:
    """Decoder and builder for one schema, compiled when made.

    ``Codec(make_schema(numbers))`` for other type numbers; the module-level
    functions use :func:`default_codec`.
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        layout = schema.layout()
        region, offsets = layout.region, layout.offsets
        self._header = _Fields(layout.header, "Mobility Header")
        self._header_size = layout.header_size
        (self._type_field,) = path_names(layout.body.keyfunc)
        (self._length_field,) = path_names(region.length)
        self._length_offset = offsets[self._length_field][0]
        self._checksum_at, checksum_size = offsets[CHECKSUM_FIELD]
        self._checksum_zero = bytes(checksum_size)
        # The header's fields but its checksum, by their octets, when the checksum ends the
        # header (RFC 6275 6.1.1): messages share a handful of them. Cleared when full.
        self._headers: dict[bytes, tuple[int, int, int, int]] | None = (
            {} if self._checksum_at + checksum_size == self._header_size else None
        )
        # The region after the header is a linear function of the length field:
        # unit * value + base octets (RFC 6275: 8-octet units, not counting the first 8).
        region_length = compile_expr(region.length, self._length_field)
        self._region_base = region_length(0)
        self._unit = region_length(1) - self._region_base
        self._max_length_value = (1 << (8 * offsets[self._length_field][1])) - 1
        self._messages: dict[int, _MessageSpec] = {
            t: self._message_spec(body) for t, body in schema.messages.items()
        }
        self._raw = self._message_spec(None)
        self._by_name: dict[str, int] = {}
        for t, body in schema.messages.items():
            for name in (body.key, body.name, body.proxy_name):
                if name:
                    self._by_name.setdefault(name, t)
        self._options: dict[int, tuple[OptionSpec, _Fields]] = {
            t: self._option_spec(body) for t, body in schema.options.items()
        }
        self._unknown = self._option_spec(UNKNOWN_OPTION)
        self._option_table = {t: spec for t, (spec, _) in self._options.items()}
        self._option_keys = {spec.key: t for t, (spec, _) in self._options.items()}
        self._option_memo: OptionMemo = {}
        # The octets of padding(n), for every gap an alignment rule or Header Len can leave.
        widest = max([self._unit, *(s.align[0] for s in self._option_table.values() if s.align)])
        self._pad_octets = [b"".join(o.to_bytes() for o in padding(n)) for n in range(widest)]

    @staticmethod
    def _message_spec(body: MessageBody | None) -> _MessageSpec:
        subcon = RAW_BODY if body is None else body.subcon
        fields = _Fields(subcon, "" if body is None else body.title)
        defaults: dict[str, Any] = dict.fromkeys(fields.names, 0)
        if "data" in defaults:
            defaults["data"] = b""
        proxy = None
        if body is not None and body.proxy_flag:
            struct_ = unrename(body.subcon)
            for sc in struct_.subcons:
                masks = getattr(unrename(sc), "masks", None)
                if masks and body.proxy_flag in masks:
                    proxy = (sc.name, masks[body.proxy_flag])
        length = 0 if body is None else body.length
        return _MessageSpec(body, fields, length, defaults, proxy)

    @staticmethod
    def _option_spec(body: OptionBody) -> tuple[OptionSpec, _Fields]:
        fields = _Fields(body.subcon, body.title)
        spec = OptionSpec(
            fields.decode,
            body.length,
            body.min_length,
            body.align,
            body.key,
            body.title,
        )
        return spec, fields

    def mh_length(self, header_len: int) -> int:
        """Octets of a Mobility Header whose Header Len field holds ``header_len``."""
        return self._header_size + self._unit * header_len + self._region_base

    # --- decoding -------------------------------------------------------------------

    def decode(
        self,
        data: bytes,
        src: AddressLike | None = None,
        dst: AddressLike | None = None,
        *,
        strict: bool = False,
        partial: int = 0,
    ) -> Message:
        """Decode one Mobility Header from the start of ``data``.

        With ``src`` and ``dst`` (the addresses of the IPv6 pseudo-header) the
        checksum is verified; ``strict`` turns every finding (bad checksum,
        misaligned option, ...) into an exception. Octets after the Mobility
        Header belong to the next header and are ignored.

        ``partial``: how many octets past ``data`` the packet had on the wire, which
        a capture did not keep (its snapshot length). A message that runs on into
        them is decoded as far as it was kept: the header, the message data and the
        whole options; ``uncaptured`` counts the octets missing, and the checksum is
        not verified. The header and message data must be there. A message longer
        than that is malformed all the same.
        """
        if type(data) is not bytes:
            data = bytes(data)
        size = len(data)
        header_size = self._header_size
        if size < header_size:
            # Truncated: the rest lies in what the capture did not keep (see partial).
            short = Truncated if header_size - size <= partial else MalformedPacket
            raise short(
                f"truncated Mobility Header: {size} octets, the header alone has {header_size}", 0
            )
        payload_proto, header_len, mh_type, reserved, checksum = self._decode_header(data)
        total = header_size + self._unit * header_len + self._region_base  # mh_length
        uncaptured = 0
        if total > size:
            if total - size > partial:
                raise MalformedPacket(
                    f"Header Len {header_len} says {total} octets but only {size} are present",
                    self._length_offset,
                )
            uncaptured = total - size
        mh = data if total == size else data[:total]
        spec = self._messages.get(mh_type)
        findings: list[Finding] = []
        if payload_proto != NO_NEXT_HEADER:
            findings.append(
                Finding("payload_proto", f"Payload Proto is {payload_proto}, RFC 6275 wants 59", 0)
            )
        options: list[Option] = []
        if spec is None:
            fields = self._raw.fields.decode(mh, header_size, total - uncaptured)
            name = self.schema.mh_type_names.get(mh_type, f"MH type {mh_type}")
            key = None
        else:
            body = spec.body
            assert body is not None
            end_fixed = header_size + spec.length
            if end_fixed > total:
                raise MalformedPacket(
                    f"{body.title} needs {spec.length} octets of message data, "
                    f"Header Len leaves {total - header_size}",
                    self._length_offset,
                )
            end = total
            if uncaptured:
                if end_fixed > size:
                    raise Truncated(
                        f"{body.title}: {size} of the {end_fixed} octets of header and "
                        "message data are present",
                        size,
                    )
                end = _whole_options_end(mh, end_fixed, size)
            fields = spec.fields.decode(mh, header_size, end_fixed)
            options, option_findings = walk_options(
                self._option_table, self._unknown[0], mh, end_fixed, end, self._option_memo
            )
            if option_findings:
                findings += option_findings
            name = body.name
            if spec.proxy is not None and fields[spec.proxy[0]] & spec.proxy[1]:
                name = body.proxy_name or body.name
            key = body.key
        checksum_ok = None
        if src is not None and dst is not None and not uncaptured:
            at = self._checksum_at
            if len(self._checksum_zero) == 2:
                checksum_ok = checksum_matches(src, dst, mh, at, checksum)
            else:
                zeroed = mh[:at] + self._checksum_zero + mh[at + len(self._checksum_zero) :]
                checksum_ok = upper_layer_checksum(src, dst, zeroed) == checksum
            if not checksum_ok:
                findings.append(Finding("checksum", f"bad checksum 0x{checksum:04x}", at))
        if strict and findings:
            f = findings[0]
            exc = ChecksumError if f.kind == "checksum" else MalformedPacket
            raise exc(f.what, f.offset)
        return _make_message(
            mh_type, name, key, fields, tuple(options), payload_proto, header_len,
            reserved, checksum, checksum_ok, tuple(findings), self, uncaptured,
        )  # fmt: skip

    def _decode_header(self, data: bytes) -> tuple[int, int, int, int, int]:
        """Payload Proto, Header Len, MH Type, Reserved and Checksum of a header long enough."""
        headers = self._headers
        if headers is not None:
            at = self._checksum_at
            known = headers.get(data[:at])
            if known is not None:
                return (*known, int.from_bytes(data[at : self._header_size], "big"))
        header = self._header.decode(data, 0, self._header_size)
        fields = (
            header["payload_proto"],
            header[self._length_field],
            int(header[self._type_field]),
            header["reserved"],
        )
        checksum: int = header[CHECKSUM_FIELD]
        if headers is not None:
            if len(headers) >= MAX_REMEMBERED_HEADERS:
                headers.clear()
            headers[data[: self._checksum_at]] = fields
        return (*fields, checksum)

    # --- building -------------------------------------------------------------------

    def option(self, key: str, **fields: Any) -> Option:
        """Make an option from its schema key and field values.

        ``option("home_network_prefix", prefix_length=64, prefix="2001:db8:1::")``;
        reserved fields default to zero. Raises ValueError for values the schema
        cannot encode.
        """
        if key == "pad1":
            return PAD1_OPTION
        opt_type = self._option_keys.get(key)
        if opt_type is None:
            raise KeyError(key)
        spec, compiled = self._options[opt_type]
        return self._option_of(opt_type, spec, compiled, fields)

    def option_from_fields(self, opt: Option) -> Option:
        """Re-encode an option from its decoded fields (round-trip checking)."""
        if opt.type == PAD1:
            return opt
        spec, compiled = self._options.get(opt.type, self._unknown)
        return self._option_of(opt.type, spec, compiled, opt.fields)

    @staticmethod
    def _option_of(
        opt_type: int, spec: OptionSpec, compiled: _Fields, fields: Mapping[str, Any]
    ) -> Option:
        values = compiled.prepare(fields)
        try:
            data = compiled.build(values)
        except _BUILD_ERRORS as e:
            raise ValueError(f"cannot encode {option_noun(spec.title)}: {_reason(e)}") from None
        if len(data) > 255:
            raise ValueError(
                f"{option_noun(spec.title)} data is {len(data)} octets, at most 255 fit"
            )
        if len(data) < spec.min_length:
            # What the decoder would refuse, the builder refuses too.
            raise ValueError(
                f"{option_noun(spec.title)} data is {len(data)} octets, "
                f"at least {spec.min_length} needed"
            )
        return make_option(
            opt_type, spec.key, spec.title, compiled.decode(data, 0, len(data)), data, None
        )

    def build(
        self,
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
        if isinstance(message, int):
            mh_type = message
            spec = self._messages.get(mh_type, self._raw)
        else:
            found = self._by_name.get(message)
            if found is None:
                known = sorted(
                    {b.name for b in self.schema.messages.values()}
                    | {b.proxy_name for b in self.schema.messages.values() if b.proxy_name}
                )
                raise ValueError(f"unknown message {message!r}; known: {', '.join(known)}")
            mh_type = found
            spec = self._messages[mh_type]
        body = spec.body
        title = f"MH type {mh_type}" if body is None else body.title
        if body is not None and spec.proxy is not None and message == body.proxy_name:
            flags_field, mask = spec.proxy
            flags = fields.get(flags_field, 0)
            if isinstance(flags, int):
                fields[flags_field] = int(flags) | mask
            else:
                fields[flags_field] = {*flags, body.proxy_flag}
        unknown = fields.keys() - spec.defaults.keys()
        if unknown:
            raise ValueError(
                f"{title} has no field(s) {sorted(unknown)}; fields: {', '.join(spec.defaults)}"
            )
        values = {**spec.defaults, **spec.fields.prepare(fields)}
        try:
            fixed = spec.fields.build(values)
        except _BUILD_ERRORS as e:
            raise ValueError(f"cannot encode {title}: {_reason(e)}") from None
        header_size = self._header_size
        parts = [b"", fixed]
        pos = header_size + len(fixed)
        option_table = self._option_table
        pad_octets = self._pad_octets
        for opt in options:
            if pad and opt.type != PAD1 and opt.type != PADN:
                align = option_table.get(opt.type, self._unknown[0]).align
                if align is not None and (gap := (align[1] - pos) % align[0]):
                    parts.append(pad_octets[gap])
                    pos += gap
            b = opt.to_bytes()
            parts.append(b)
            pos += len(b)
        unit = self._unit
        if pad and pos % unit:
            gap = -pos % unit
            parts.append(pad_octets[gap])
            pos += gap
        if header_len is None:
            if pos % unit:
                raise ValueError(
                    f"Mobility Header of {pos} octets is no multiple of {unit}; build with pad=True"
                )
            header_len = (pos - header_size - self._region_base) // unit
            if header_len > self._max_length_value:
                most = header_size + self._region_base + unit * self._max_length_value
                raise ValueError(
                    f"Mobility Header of {pos} octets exceeds the {most} that Header Len allows"
                )
        head = {
            "payload_proto": payload_proto,
            self._length_field: header_len,
            self._type_field: mh_type,
            "reserved": reserved,
            CHECKSUM_FIELD: 0,
        }
        try:
            parts[0] = self._header.build(head)
        except _BUILD_ERRORS as e:
            raise ValueError(f"cannot encode the Mobility Header: {_reason(e)}") from None
        mh = b"".join(parts)
        if checksum is None:
            if src is None or dst is None:
                return mh
            checksum = upper_layer_checksum(src, dst, mh)
        at = self._checksum_at
        width = len(self._checksum_zero)
        return mh[:at] + checksum.to_bytes(width, "big") + mh[at + width :]


_, _make_message = frozen_maker(Message)

# --- the default codec ------------------------------------------------------------------

_default: Codec | None = None
# Called with the new schema whenever use_numbers replaces the default codec.
_numbers_listeners: list[Callable[[Schema], None]] = []
# The numbers file the default codec was made from (None: defaults or Python).
_source: str | None = None


def default_codec() -> Codec:
    """The codec in force (made on first use, honouring LMAHO_NUMBERS)."""
    global _default, _source
    if _default is None:
        path = os.environ.get("LMAHO_NUMBERS")
        _default = Codec(make_schema(load_numbers_file(path) if path else Numbers()))
        _source = path
    return _default


def current_schema() -> Schema:
    """The schema of the codec in force."""
    return default_codec().schema


def use_numbers(numbers: Numbers) -> Schema:
    """Switch every codec user to ``numbers``; returns the new schema."""
    global _default, _source
    numbers.validate()
    _default = Codec(make_schema(numbers))
    _source = None
    for listener in _numbers_listeners:
        listener(_default.schema)
    return _default.schema


def on_use_numbers(listener: Callable[[Schema], None]) -> None:
    """Have ``listener(schema)`` called whenever :func:`use_numbers` changes the numbers in
    force (the scapy layers rebind so)."""
    _numbers_listeners.append(listener)


def use_numbers_file(path: str | os.PathLike[str]) -> Schema:
    """Switch to the numbers in the TOML file ``path``; nothing to do when the
    codec in force was made from it (LMAHO_NUMBERS read at first use)."""
    global _source
    if _default is not None and _source == os.fspath(path):
        return _default.schema
    schema = use_numbers(load_numbers_file(path))
    _source = os.fspath(path)
    return schema


def _with_default_codec(method: Callable[Concatenate[Codec, P], R]) -> Callable[P, R]:
    """``method`` of the codec in force, as a function (the same signature and help)."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return method(default_codec(), *args, **kwargs)

    signature = inspect.signature(method)
    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:]
    )
    return call


decode = _with_default_codec(Codec.decode)
build = _with_default_codec(Codec.build)
option = _with_default_codec(Codec.option)
option_from_fields = _with_default_codec(Codec.option_from_fields)
