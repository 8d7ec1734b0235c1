"""The Codec object and the code it compiles from the schema.

* a Codec is made from one schema and keeps to it: two codecs with different
  type numbers work side by side, and a Message re-encodes with the codec that
  decoded it, whatever ``use_numbers`` did since;
* the compiled decoder of every structure gives the construct-derived plan's
  value, or its very error (what and offset), on random and cut input;
* the compiled builder of every structure gives construct's own octets, or
  fails where construct fails.
"""

from __future__ import annotations

from typing import Any

import pytest
from construct import Construct, ConstructError
from hypothesis import given, settings
from hypothesis import strategies as st

from lmaho_wire import (
    Codec,
    MalformedPacket,
    Numbers,
    build,
    current_schema,
    decode,
    default_codec,
    option,
    use_numbers,
)
from lmaho_wire.compiler import compile_builder, compile_decoder
from lmaho_wire.plan import make_plan
from lmaho_wire.schema import make_schema
from support.strategies import fields_of

SRC = "2001:db8:b::1"
DST = "2001:db8:a::1"
SCHEMA = current_schema()

_STRUCTURES: list[tuple[str, Any, Construct]] = [
    ("mh_header", None, SCHEMA.mh_header),
    *[(f"message:{b.name}", b, b.subcon) for b in SCHEMA.messages.values()],
    *[(f"option:{b.key}", b, b.subcon) for b in SCHEMA.options.values()],
]


def _outcome(parse: Any, data: bytes) -> Any:
    try:
        return parse(data)
    except MalformedPacket as e:
        return ("error", e.what, e.offset)


@pytest.mark.parametrize("subcon", [s for *_, s in _STRUCTURES], ids=[n for n, *_ in _STRUCTURES])
@settings(max_examples=150, deadline=None, database=None)
@given(data=st.data())
def test_compiled_decoder_gives_the_plan_s_value_or_error(
    subcon: Construct, data: st.DataObject
) -> None:
    compiled = compile_decoder(subcon)
    plan = make_plan(subcon)
    raw = data.draw(st.binary(max_size=64))
    start = data.draw(st.integers(0, len(raw)))
    assert _outcome(lambda d: compiled(d, start, len(d)), raw) == _outcome(
        lambda d: plan(d, start, len(d), {})[0], raw
    )


@pytest.mark.parametrize(
    "body", [b for _, b, _ in _STRUCTURES if b is not None], ids=[n for n, b, _ in _STRUCTURES if b]
)
@settings(max_examples=60, deadline=None, database=None)
@given(data=st.data())
def test_compiled_builder_gives_construct_s_octets(body: Any, data: st.DataObject) -> None:
    values = data.draw(fields_of(body)).expected
    # Values as the codec hands them to the builder: the decoded forms.
    try:
        theirs: bytes | None = body.subcon.compile().build(values)
    except (ConstructError, ValueError, TypeError, AttributeError):
        theirs = None
    try:
        ours: bytes | None = compile_builder(body.subcon)(values)
    except (ConstructError, ValueError, TypeError, AttributeError):
        ours = None
    assert ours == theirs


def test_two_codecs_keep_their_own_numbers() -> None:
    renumbered = Codec(make_schema(Numbers().with_overrides(mh_types={"LMA_HO_Req": 230})))
    default = default_codec()
    mh = renumbered.build("LMA_HO_Req", sequence=9, src=SRC, dst=DST)
    assert mh[2] == 230 and build("LMA_HO_Req", sequence=9)[2] == 200
    assert renumbered.decode(mh, SRC, DST).name == "LMA_HO_Req"
    assert default.decode(mh).name == "MH type 230"


def test_a_message_re_encodes_with_the_codec_that_decoded_it() -> None:
    mh = build(
        "LMA_HO_Req",
        sequence=3,
        options=[option("mn_identifier", subtype="NAI", identifier="mn1@lmaho.example")],
        src=SRC,
        dst=DST,
    )
    msg = decode(mh, SRC, DST)
    before = default_codec()
    try:
        use_numbers(Numbers().with_overrides(mh_types={"LMA_HO_Req": 230}))
        assert default_codec() is not before
        assert msg.encode() == mh
        assert decode(mh).name == "MH type 200"
    finally:
        use_numbers(Numbers())
    assert decode(mh).name == "LMA_HO_Req"


def test_the_header_is_written_through_its_declaration() -> None:
    mh = build("Update", sequence=1, payload_proto=17, reserved=5, src=SRC, dst=DST)
    msg = decode(mh, SRC, DST)
    assert (msg.payload_proto, msg.reserved, msg.checksum_ok) == (17, 5, True)
    assert [f.kind for f in msg.findings] == ["payload_proto"]
    with pytest.raises(ValueError, match="cannot encode the Mobility Header"):
        build("Update", payload_proto=300)
