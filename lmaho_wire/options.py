"""Mobility options: the :class:`Option` value and the one walk over an options area.

The walk is shared by the :class:`~lmaho_wire.codec.Codec` (with its compiled
decoders) and by the schema's own construct (with construct-derived plans), so
both read an options area by the same rules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from .errors import MalformedPacket
from .values import jsonable

PAD1 = 0
PADN = 1

T = TypeVar("T")


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
    #: Read-only when decoded: a remembered option is the same object in every message.
    fields: Mapping[str, Any]
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


def frozen_maker(cls: type[T]) -> tuple[type, Callable[..., T]]:
    """A fast constructor of the frozen slots dataclass ``cls``, all fields positional.

    A frozen dataclass's __init__ sets each field through object.__setattr__,
    which counts when a message decodes ten options. The twin returned with
    the constructor is a plain slots dataclass of the same fields in the same
    order, so the same slot layout: an instance made by its fast __init__
    becomes a ``cls`` by assigning ``__class__``, equal in every way to one
    made by ``cls(...)``, in two thirds of the time.
    """
    twin = dataclasses.make_dataclass(
        f"_{cls.__name__}Fields",
        [(f.name, Any) for f in dataclasses.fields(cls)],  # type: ignore[arg-type]
        slots=True,
        eq=False,
    )

    def make(*values: Any) -> T:
        made = twin(*values)
        made.__class__ = cls
        return made  # type: ignore[no-any-return]

    return twin, make


_OptionFields, make_option = frozen_maker(Option)
PAD1_OPTION = Option(PAD1, "pad1", "Pad1", {}, b"")


def padding(n: int) -> list[Option]:
    """Options filling ``n`` octets: nothing, one Pad1, or one PadN."""
    if n == 0:
        return []
    if n == 1:
        return [PAD1_OPTION]
    return [Option(PADN, "padn", "PadN", {"padding": "00:" * (n - 3) + "00" if n > 2 else ""},
                   bytes(n - 2))]  # fmt: skip


def option_noun(title: str) -> str:
    """How a sentence names an option: "LMA Address option"; "Unknown option", not
    "Unknown option option"."""
    return title if title.endswith(" option") else f"{title} option"


class OptionSpec(NamedTuple):
    """What the walk needs of one option type: its data decoder and its rules."""

    decode: Callable[[bytes, int, int], dict[str, Any]]
    length: int | None
    min_length: int
    align: tuple[int, int] | None
    key: str
    title: str


# Options decoded before, by their MH offset and octets (type, length and data): the
# options of one MN recur in each message about it. Cleared when full.
OptionMemo = dict[tuple[int, bytes], tuple["Option", tuple[Finding, ...]]]
MAX_REMEMBERED_OPTIONS = 2048


def walk_options(
    table: Mapping[int, OptionSpec],
    unknown: OptionSpec,
    mh: bytes,
    start: int,
    end: int,
    memo: OptionMemo | None = None,
) -> tuple[list[Option], list[Finding]]:
    """Decode the options in ``mh[start:end]``; offsets are MH offsets.

    ``table`` maps option type to its spec, ``unknown`` serves the other
    types. Strict: an option whose Length runs past ``end`` or whose data
    does not decode is an error. Misalignment and non-zero padding are findings.
    With ``memo`` (one per ``table``), an option met before at the same offset
    is taken from it: the same Option object, and its findings.
    """
    options: list[Option] = []
    findings: list[Finding] = []
    decode: Callable[[bytes, int, int], dict[str, Any]]
    fixed: int | None
    min_length: int
    align: tuple[int, int] | None
    key: str
    title: str
    append = options.append
    get = table.get
    if memo is None:
        memo = {}
    recall = memo.get
    # make_option, inlined: ten options a message make the call count.
    twin = _OptionFields
    pos = start
    while pos < end:
        opt_type = mh[pos]
        # Where the option ends, if it fits: then it may be one met before.
        try:
            stop = pos + 2 + mh[pos + 1] if opt_type != PAD1 else pos + 1
        except IndexError:
            stop = end + 1  # no Length octet: the walk below says so
        if stop <= end:
            known = recall((pos, mh[pos:stop]))
            if known is not None:
                append(known[0])
                if known[1]:
                    findings += known[1]
                pos = stop
                continue
        if opt_type == PAD1:
            opt = twin(PAD1, "pad1", "Pad1", {}, b"", pos)
            opt.__class__ = Option
            append(opt)
            _remember(memo, pos, mh[pos : pos + 1], opt, ())
            pos += 1
            continue
        decode, fixed, min_length, align, key, title = get(opt_type, unknown)
        if pos + 2 > end:
            raise MalformedPacket(
                f"{option_noun(title)} (type {opt_type}) has no Length octet", pos
            )
        length = mh[pos + 1]
        data_start = pos + 2
        stop = data_start + length
        if stop > end:
            raise MalformedPacket(
                f"{option_noun(title)} length {length} runs past the end of the "
                f"Mobility Header ({end - pos - 2} octets left)",
                pos + 1,
            )
        if fixed is not None and length != fixed:
            raise MalformedPacket(
                f"{option_noun(title)} has length {length}, must be {fixed}", pos + 1
            )
        if length < min_length:
            raise MalformedPacket(
                f"{option_noun(title)} has length {length}, at least {min_length} needed", pos + 1
            )
        try:
            fields = MappingProxyType(decode(mh, data_start, stop))
        except MalformedPacket as e:
            raise MalformedPacket(f"{option_noun(title)}: {e.what}", e.offset) from None
        data = mh[data_start:stop]
        opt = twin(opt_type, key, title, fields, data, pos)
        opt.__class__ = Option
        append(opt)
        found: tuple[Finding, ...] = ()
        if align is not None and pos % align[0] != align[1]:
            found += (
                Finding(
                    "alignment",
                    f"{option_noun(title)} starts at offset {pos}, "
                    f"not aligned {align[0]}n+{align[1]}",
                    pos,
                ),
            )
        if opt_type == PADN and any(data):
            found += (Finding("padding", "PadN option carries non-zero octets", pos),)
        if found:
            findings += found
        _remember(memo, pos, mh[pos:stop], opt, found)
        pos = stop
    return options, findings


def _remember(
    memo: OptionMemo, pos: int, octets: bytes, opt: Option, found: tuple[Finding, ...]
) -> None:
    if len(memo) >= MAX_REMEMBERED_OPTIONS:
        memo.clear()
    memo[pos, octets] = (opt, found)
