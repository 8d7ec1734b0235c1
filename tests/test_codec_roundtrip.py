"""Property-based round trips for every message and option the schema declares.

* build -> decode gives back the values built with (for each message type and
  each option type, strategies derived from the construct field types);
* decode -> encode gives back the same octets, padding included, for Mobility
  Headers laid out by hand (any option order, misaligned, odd padding);
* construct's own parse of the schema agrees with the fast plans and with
  :func:`lmaho_wire.decode`.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from construct import Construct, ConstructError, Container, ListContainer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmaho_wire import MalformedPacket, build, current_schema, decode
from lmaho_wire.checksum import upper_layer_checksum
from lmaho_wire.plan import make_plan
from support.strategies import (
    any_option,
    fields_of,
    known_option_types,
    option_of_type,
    raw_mobility_header,
    unknown_option_types,
)

SRC = "2001:db8:b::1"
DST = "2001:db8:a::1"

SCHEMA = current_schema()
MESSAGE_TYPES = sorted(SCHEMA.messages)
OPTION_TYPES = known_option_types()

FAST = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _non_padding(msg: Any) -> list[tuple[int, dict[str, Any]]]:
    return [(o.type, o.fields) for o in msg.options if not o.is_padding]


# --- build -> decode -----------------------------------------------------------------


@pytest.mark.parametrize(
    "mh_type", MESSAGE_TYPES, ids=[SCHEMA.messages[t].name for t in MESSAGE_TYPES]
)
@FAST
@given(data=st.data())
def test_message_build_decode_gives_the_values_back(mh_type: int, data: st.DataObject) -> None:
    body = SCHEMA.messages[mh_type]
    fields = data.draw(fields_of(body), label="fields")
    opts = data.draw(st.lists(any_option(include_padding=False), max_size=5), label="options")
    mh = build(mh_type, options=[o.option for o in opts], src=SRC, dst=DST, **fields.value)
    assert len(mh) % 8 == 0 and mh[1] == len(mh) // 8 - 1
    msg = decode(mh, SRC, DST, strict=True)
    assert msg.mh_type == mh_type
    assert msg.key == body.key
    assert msg.checksum_ok is True
    assert msg.findings == ()
    assert msg.fields == fields.expected
    assert _non_padding(msg) == [(o.type, o.expected) for o in opts]
    # Every aligned option starts where its RFC rule says.
    for opt in msg.options:
        align = SCHEMA.options.get(opt.type)
        if align is not None and align.align is not None:
            assert opt.offset % align.align[0] == align.align[1]
    assert msg.encode() == mh


@pytest.mark.parametrize(
    "opt_type", OPTION_TYPES, ids=[SCHEMA.options[t].key for t in OPTION_TYPES]
)
@FAST
@given(data=st.data())
def test_option_build_decode_gives_the_values_back(opt_type: int, data: st.DataObject) -> None:
    drawn = data.draw(option_of_type(opt_type))
    assert drawn.option.type == opt_type
    # The option decodes to the same fields on its own ...
    assert drawn.option.fields == drawn.expected
    # ... and inside every message that carries options, at any starting offset.
    mh_type = data.draw(st.sampled_from(MESSAGE_TYPES))
    lead = data.draw(st.lists(any_option(), max_size=2))
    opts = [*[o.option for o in lead], drawn.option]
    mh = build(mh_type, options=opts, src=SRC, dst=DST)
    msg = decode(mh, SRC, DST)
    assert msg.checksum_ok
    found = [(o.fields, o.data) for o in msg.options if o.type == opt_type]
    # (Padding added by build may follow: the option built is among those found.)
    assert (drawn.expected, drawn.option.data) in found
    assert msg.encode() == mh


@settings(max_examples=100, deadline=None, database=None)
@given(data=st.data())
def test_unknown_options_are_kept_octet_for_octet(data: st.DataObject) -> None:
    drawn = data.draw(st.sampled_from(unknown_option_types()).flatmap(option_of_type))
    mh = build("PBU", options=[drawn.option], src=SRC, dst=DST)
    msg = decode(mh, SRC, DST, strict=True)
    (opt,) = _non_padding(msg)
    assert opt == (drawn.type, drawn.expected)
    assert msg.option("unknown").data == drawn.option.data  # type: ignore[union-attr]


@settings(max_examples=100, deadline=None, database=None)
@given(
    mh_type=st.integers(0, 255).filter(lambda t: t not in SCHEMA.messages),
    body=st.integers(0, 20).flatmap(lambda n: st.binary(min_size=8 * n + 2, max_size=8 * n + 2)),
)
def test_other_mh_types_decode_generically(mh_type: int, body: bytes) -> None:
    mh = build(mh_type, data=body, src=SRC, dst=DST)
    msg = decode(mh, SRC, DST, strict=True)
    assert msg.key is None and msg.options == ()
    assert msg.fields == {"data": body.hex(":")}
    assert msg.name == SCHEMA.mh_type_names.get(mh_type, f"MH type {mh_type}")
    assert msg.encode() == mh


# --- decode -> encode --------------------------------------------------------------------


@settings(max_examples=400, deadline=None, database=None)
@given(mh=raw_mobility_header())
def test_decode_then_encode_reproduces_the_octets(mh: bytes) -> None:
    msg = decode(mh)
    assert msg.length == len(mh)
    assert msg.encode() == mh
    # The option offsets tile the options area exactly.
    pos = 6 + (SCHEMA.messages[msg.mh_type].length if msg.key else len(mh))
    for opt in msg.options:
        assert opt.offset == pos
        pos += 1 if opt.type == 0 else 2 + opt.length
    assert pos == len(mh) or not msg.key


@pytest.mark.parametrize(
    "mh_type", MESSAGE_TYPES, ids=[SCHEMA.messages[t].name for t in MESSAGE_TYPES]
)
@FAST
@given(data=st.data())
def test_decode_then_encode_per_message(mh_type: int, data: st.DataObject) -> None:
    mh = data.draw(raw_mobility_header(mh_type))
    # With the right checksum in place it verifies, and encode keeps it.
    mh = (
        mh[:4]
        + upper_layer_checksum(SRC, DST, mh[:4] + b"\0\0" + mh[6:]).to_bytes(2, "big")
        + mh[6:]
    )
    msg = decode(mh, SRC, DST)
    assert msg.checksum_ok is True
    assert msg.encode() == mh


# --- construct itself agrees -------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, Container):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, ListContainer | list):
        return [_plain(v) for v in value]
    return value


_CONSTRUCT_ERRORS = (ConstructError, ValueError, UnicodeError, OverflowError)


def _construct_parse(subcon: Construct, data: bytes) -> tuple[Any, int] | None:
    stream = io.BytesIO(data)
    try:
        value = subcon.parse_stream(stream)
    except _CONSTRUCT_ERRORS:
        return None
    return _plain(value), stream.tell()


def _plan_parse(subcon: Construct, data: bytes) -> tuple[Any, int] | None:
    try:
        return make_plan(subcon)(data, 0, len(data), {})
    except MalformedPacket:
        return None


_SUBCONS: list[tuple[str, Construct]] = [
    ("mh_header", SCHEMA.mh_header),
    *[(f"message:{b.name}", b.subcon) for b in SCHEMA.messages.values()],
    *[(f"option:{b.key}", b.subcon) for b in SCHEMA.options.values()],
]


@pytest.mark.parametrize("subcon", [s for _, s in _SUBCONS], ids=[n for n, _ in _SUBCONS])
@settings(max_examples=150, deadline=None, database=None)
@given(data=st.data())
def test_plans_agree_with_construct(subcon: Construct, data: st.DataObject) -> None:
    """Random octets, and valid encodings cut or extended at random, parse the same."""
    if data.draw(st.booleans(), label="valid-ish") and subcon is not SCHEMA.mh_header:
        body = next(b for _, b in _SUBCONS if b is subcon)
        opt = next((b for b in SCHEMA.options.values() if b.subcon is subcon), None)
        if opt is not None:
            t = next(k for k, v in SCHEMA.options.items() if v is opt)
            raw = data.draw(option_of_type(t)).option.data
        else:
            msg = next(b for b in SCHEMA.messages.values() if b.subcon is subcon)
            drawn = data.draw(fields_of(msg))
            raw = build(next(k for k, v in SCHEMA.messages.items() if v is msg), **drawn.value)[
                6 : 6 + msg.length
            ]
        cut = data.draw(st.integers(0, len(raw)))
        raw = raw[:cut] + data.draw(st.binary(max_size=4)) if data.draw(st.booleans()) else raw
        del body
    else:
        raw = data.draw(st.binary(max_size=64))
    ours = _plan_parse(subcon, raw)
    theirs = _construct_parse(subcon, raw)
    assert ours == theirs


@settings(max_examples=300, deadline=None, database=None)
@given(mh=raw_mobility_header())
def test_construct_mobility_header_agrees_with_decode(mh: bytes) -> None:
    """The schema's whole-MH construct and the fast decoder read the same message."""
    parsed = SCHEMA.mobility_header.parse(mh)
    msg = decode(mh)
    assert (parsed.payload_proto, parsed.header_len, parsed.mh_type, parsed.reserved) == (
        msg.payload_proto,
        msg.header_len,
        msg.mh_type,
        msg.reserved,
    )
    assert parsed.checksum == msg.checksum
    assert _plain(parsed.message.body) == msg.fields
    if msg.key is not None:
        assert [(o.type, o.fields, o.data, o.offset) for o in parsed.message.options] == [
            (o.type, o.fields, o.data, o.offset) for o in msg.options
        ]
