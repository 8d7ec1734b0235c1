"""The scapy layers of lmaho_wire.scapy, judged by the codec.

For every packet of every sample in pcaps/ and for messages drawn from the
schema (support.strategies), scapy's dissection must equal the codec's
decoding field by field, and a layer built in scapy from the same values
must give the codec's octets, padding and checksum included. The expected
scapy value of a field is derived by walking the schema with the
FieldVisitor, never from a list of names written here.
"""

from __future__ import annotations

import doctest
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from construct import Construct, GreedyRange, Struct, Switch, Terminated
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers import inet6
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, Raw, raw
from scapy.utils import rdpcap

import lmaho_wire.scapy as layers
from lmaho_wire import Message, Numbers, Option, build, current_schema, decode, use_numbers
from lmaho_wire.capture import read_frames
from lmaho_wire.dissect import analyse_frame
from lmaho_wire.fields import FieldVisitor, unrename
from support.paths import ROOT, SAMPLE_CAPTURES
from support.strategies import DrawnOption, any_option, fields_of

# Importing binds the layers into scapy for the whole process; the codec judges
# (test_codec_judges.py) want scapy on its own, so they are bound only while this
# module's tests run.
layers.unbind()


@pytest.fixture(autouse=True, scope="module")
def bound_layers() -> Iterator[None]:
    layers.bind()
    yield
    layers.unbind()


# --- codec values as scapy takes them -------------------------------------------------


class _ToScapy(FieldVisitor[tuple[Any, Any, dict[str, Any]], Any]):
    """A decoded codec value as the value to give a scapy field; the argument is (value,
    the scapy field, the decoded siblings)."""

    def integer(self, c: Construct, arg: tuple[Any, Any, dict[str, Any]]) -> Any:
        return int(arg[0])

    enum = flags = scaled = integer

    def _same(self, c: Construct, arg: tuple[Any, Any, dict[str, Any]]) -> Any:
        return arg[0]

    timestamp = text = hex = _same

    def _address(self, c: Construct, arg: tuple[Any, Any, dict[str, Any]]) -> Any:
        return str(arg[0])

    ipv6 = ipv4 = _address

    def switch(self, c: Switch, arg: tuple[Any, Any, dict[str, Any]]) -> Any:
        key = c.keyfunc(arg[2])
        return self.visit(c.cases.get(key, c.default), arg)

    def repeat(self, c: GreedyRange, arg: tuple[Any, Any, dict[str, Any]]) -> Any:
        value, fld, _ = arg
        item = unrename(c.subcon)
        return [fld.cls(**scapy_values(item, v, fld.cls)) for v in value]


def named_fields(struct: Struct) -> list[Construct]:
    return [sc for sc in struct.subcons if sc is not Terminated and sc.name]


def scapy_values(struct: Struct, values: dict[str, Any], cls: type[Packet]) -> dict[str, Any]:
    """The keyword arguments that make ``cls`` hold the codec's decoded ``values``."""
    by_name = {f.name: f for f in cls.fields_desc}
    return {
        sc.name: _ToScapy().visit(sc, (values[sc.name], by_name[sc.name], values))
        for sc in named_fields(struct)
    }


def field_problems(layer: Packet, struct: Struct, values: dict[str, Any]) -> list[str]:
    """Where scapy's dissected ``layer`` differs from the codec's decoded ``values``."""
    problems = []
    for sc in named_fields(struct):
        given = _ToScapy().visit(sc, (values[sc.name], layer.get_field(sc.name), values))
        want = layer.get_field(sc.name).any2i(layer, given)
        got = layer.getfieldval(sc.name)
        if got != want:
            problems.append(f"{layer.name}.{sc.name}: scapy {got!r}, codec {want!r}")
    return problems


# --- a codec message as scapy dissects it and as scapy builds it ------------------------


def scapy_option(opt: Option) -> Packet:
    """``opt`` made in scapy: the generated class from the codec's fields, or scapy's own
    class (the octets dissected) for the options scapy has."""
    schema = current_schema()
    body = schema.options.get(opt.type)
    if body is not None and body.key in layers.OPTION_LAYERS:
        cls = layers.OPTION_LAYERS[body.key]
        return cls(**scapy_values(unrename(body.subcon), opt.fields, cls))
    return inet6.MIP6OptUnknown(opt.to_bytes())


def scapy_build(msg: Message, src: str, dst: str) -> bytes:
    """The Mobility Header scapy builds from the codec's values (padding left to scapy)."""
    body = current_schema().messages[msg.mh_type]
    cls = layers.MESSAGE_LAYERS[body.key]
    options = [scapy_option(o) for o in msg.options if not o.is_padding]
    packet = IPv6(src=src, dst=dst) / cls(**scapy_values(unrename(body.subcon), msg.fields, cls),
                                          options=options)  # fmt: skip
    return raw(packet)[40:]


def mobility_layer(packet: Packet) -> Packet | None:
    layer = packet
    while layer:
        if isinstance(layer, inet6._MobilityHeader):
            return layer
        layer = layer.payload
    return None


def dissection_problems(layer: Packet, msg: Message) -> list[str]:
    """Field by field: scapy's dissected Mobility Header against the codec's Message."""
    schema = current_schema()
    body = schema.messages.get(msg.mh_type)
    problems = []
    if isinstance(layer, layers.DraftMobilityHeader):
        assert body is not None
        header = {sc.name: getattr(msg, sc.name) for sc in schema.mh_header.subcons}
        problems += field_problems(layer, schema.mh_header, header)
        problems += field_problems(layer, unrename(body.subcon), msg.fields)
    else:
        # scapy's own classes (PBU, PBA): the fields it names as lmaho_wire.scapy knows.
        for alias, name in layers.SCAPY_NAMES.items():
            if layer.get_field(alias) is not None and name in {
                *msg.fields,
                *schema.layout().offsets,
            }:
                want = msg.fields[name] if name in msg.fields else getattr(msg, name)
                if int(layer.getfieldval(alias)) != int(want):
                    problems.append(f"{alias}: scapy {layer.getfieldval(alias)}, codec {want}")
    scapy_options = layer.getfieldval("options") if layer.get_field("options") else []
    if [o.otype for o in scapy_options] != [o.type for o in msg.options]:
        return [*problems, f"options: scapy {scapy_options!r}, codec {msg.options!r}"]
    for got, opt in zip(scapy_options, msg.options, strict=True):
        if isinstance(got, layers.DraftOption):
            opt_body = schema.options[opt.type]
            problems += field_problems(got, unrename(opt_body.subcon), opt.fields)
            if got.olen != opt.length:
                problems.append(f"{got.name} length: scapy {got.olen}, codec {opt.length}")
        elif raw(got) != opt.to_bytes():
            problems.append(f"{got.name}: scapy {raw(got).hex()}, codec {opt.to_bytes().hex()}")
    return problems


# --- the samples ------------------------------------------------------------------------


@pytest.mark.parametrize("capture", SAMPLE_CAPTURES, ids=lambda p: p.name)
def test_every_sample_packet_dissects_and_builds_as_the_codec_does(capture: Any) -> None:
    schema = current_schema()
    frames = list(read_frames(capture))
    packets = rdpcap(str(capture))
    assert len(packets) == len(frames)
    shown = set()
    for frame, packet in zip(frames, packets, strict=True):
        rec = analyse_frame(frame)
        layer = mobility_layer(packet)
        if rec.message is None:
            assert layer is None, f"frame {frame.number}"
            continue
        msg, payload = rec.message, rec.payload
        assert layer is not None and payload is not None
        where = f"{capture.name} frame {frame.number}"
        problems = dissection_problems(layer, msg)
        assert not problems, f"{where}: {problems}"
        body = schema.messages[msg.mh_type]
        if body.key in layers.MESSAGE_LAYERS:
            assert type(layer) is layers.MESSAGE_LAYERS[body.key]
            mh = frame.data[payload.offset : payload.end]
            src, dst = (
                str(ipaddress.IPv6Address(a)) for a in (payload.pseudo_src, payload.pseudo_dst)
            )
            assert scapy_build(msg, src, dst) == mh, where
            shown.add(body.key)
    # The samples hold every draft message between them.
    if capture.name == "handover.pcapng":
        assert shown == set(layers.MESSAGE_LAYERS)


def test_show_and_summary_read_as_the_draft() -> None:
    packets = rdpcap(str(next(p for p in SAMPLE_CAPTURES if p.name == "handover.pcap")))
    init = next(p for p in packets if p.haslayer(layers.MESSAGE_LAYERS["lma_ho_init"]))
    text = init.show(dump=True)
    assert "LMA Handover Initiate (LMA_HO_Init)" in text
    assert "mh_type   = LMA_HO_Init" in text and "lifetime  = 3600 s" in text
    assert "###[ Home Network Prefix ]###" in text and "prefix_length= 64" in text
    assert "technology= IEEE_802_11" in text
    assert init.summary().endswith("/ LMA_HO_Init sequence=1 flags=T lifetime=3600 s")


# --- drawn messages ------------------------------------------------------------------------

SRC, DST = "2001:db8:b::1", "2001:db8:a::1"
IPPROTO_MH = 135


def scapy_represents(drawn: DrawnOption) -> bool:
    """Whether scapy's own class for the option (if it has one) reads and rebuilds its
    octets: scapy's Binding Authorization Data, say, has a fixed 12-octet authenticator."""
    if drawn.key in layers.OPTION_LAYERS:
        return True
    octets = drawn.option.to_bytes()
    try:
        parsed = inet6.MIP6OptUnknown(octets)
        parsed.clear_cache()
        return not parsed.payload and raw(parsed) == octets
    except Exception:  # scapy's own classes raise what they raise on octets they misread
        return False


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(st.data())
def test_drawn_messages_dissect_and_build_as_the_codec_does(data: st.DataObject) -> None:
    schema = current_schema()
    mh_type = data.draw(
        st.sampled_from(sorted(t for t, b in schema.messages.items()
                               if b.key in layers.MESSAGE_LAYERS))
    )  # fmt: skip
    body = schema.messages[mh_type]
    fields = data.draw(fields_of(body))
    options = data.draw(st.lists(any_option().filter(scapy_represents), max_size=4))
    mh = build(body.name, options=[o.option for o in options], src=SRC, dst=DST, **fields.value)
    msg = decode(mh, SRC, DST, strict=True)
    assert scapy_build(msg, SRC, DST) == mh
    layer = mobility_layer(IPv6(raw(IPv6(src=SRC, dst=DST, nh=IPPROTO_MH) / Raw(mh))))
    assert layer is not None
    assert not dissection_problems(layer, msg)


# --- numbers and packaging --------------------------------------------------------------------


def test_layers_follow_use_numbers() -> None:
    req = layers.MESSAGE_LAYERS["lma_ho_req"]
    new_ap = layers.OPTION_LAYERS["new_ap_id"]
    default_req = req.type_number
    try:
        use_numbers(Numbers().with_overrides({"LMA_HO_Req": 240}, {"new_ap_id": 241}))
        mh = raw(
            IPv6(src=SRC, dst=DST)
            / req(sequence=3, options=[new_ap(id_type="NAME", identifier="ap")])
        )
        assert mh[40 + 2] == 240 and mh[40 + 12] == 241
        assert mh[40:] == build("LMA_HO_Req", sequence=3, src=SRC, dst=DST,
                                options=[decode(mh[40:]).options[0]])  # fmt: skip
        again = IPv6(mh)
        assert isinstance(again.payload, req) and isinstance(again.payload.options[0], new_ap)
        assert inet6._mip6_mhtype2cls.get(default_req) is None
        assert "mh_type   = LMA_HO_Req" in again.show(dump=True)
    finally:
        use_numbers(Numbers())
    assert req.type_number == default_req and inet6._mip6_mhtype2cls[default_req] is req
    assert inet6._mip6_mhtype2cls.get(240) is None


def test_unbind_gives_scapy_its_own_view_back() -> None:
    capture = next(p for p in SAMPLE_CAPTURES if p.name == "handover.pcap")
    init_type = layers.MESSAGE_LAYERS["lma_ho_init"].type_number
    hnp = layers.OPTION_LAYERS["home_network_prefix"]
    try:
        layers.unbind()
        plain = rdpcap(str(capture))
        # A renumbering while unbound renumbers the classes but binds nothing.
        use_numbers(Numbers().with_overrides({"LMA_HO_Init": 242}))
        assert layers.MESSAGE_LAYERS["lma_ho_init"].type_number == 242
        assert 242 not in inet6._mip6_mhtype2cls
    finally:
        use_numbers(Numbers())
        layers.bind()
    assert not any(isinstance(mobility_layer(p), layers.DraftMobilityHeader) for p in plain)
    generic = [mobility_layer(p) for p in plain if isinstance(mobility_layer(p),
                                                              inet6.MIP6MH_Generic)]  # fmt: skip
    assert init_type in {g.mhtype for g in generic}

    def pbu_options(packets: Any) -> list[Packet]:
        return next(p for p in packets if p.haslayer(inet6.MIP6MH_BU))[inet6.MIP6MH_BU].options

    assert not any(isinstance(o, hnp) for o in pbu_options(plain))
    assert any(isinstance(o, hnp) for o in pbu_options(rdpcap(str(capture))))


def test_responses_answer_their_requests_as_the_codec_pairs_them() -> None:
    bodies = {b.key: b for b in current_schema().messages.values()}
    responses = [b for b in bodies.values() if b.answers and b.key in layers.MESSAGE_LAYERS]
    assert responses
    for body in responses:
        response = layers.MESSAGE_LAYERS[body.key]
        for key, request in layers.MESSAGE_LAYERS.items():
            sent = IPv6(src=SRC, dst=DST) / request(sequence=5)
            assert (IPv6(src=DST, dst=SRC) / response(sequence=5)).answers(sent) == (
                key == body.answers
            )
            assert not (IPv6(src=DST, dst=SRC) / response(sequence=6)).answers(sent)


def test_scapy_s_names_of_the_header_fields_are_accepted() -> None:
    req = layers.MESSAGE_LAYERS["lma_ho_req"]
    assert raw(req(seq=9, cksum=0)) == raw(req(sequence=9, checksum=0))
    assert req(seq=9).seq == 9


def test_import_without_scapy_says_what_to_install() -> None:
    code = "import sys; sys.modules['scapy'] = None; import lmaho_wire.scapy"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == "ImportError: lmaho_wire.scapy needs scapy: pip install 'lmaho[scapy]'"


def test_readme_scapy_session_runs_as_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the session reads pcaps/ from the checkout
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## scapy") :]
    session = section[section.index("```python") + len("```python") :]
    session = session[: session.index("```")]
    test = doctest.DocTestParser().get_doctest(session, {}, "README scapy", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False) == (0, len(test.examples))


def test_layers_take_the_numbers_of_lmaho_numbers(tmp_path: Any) -> None:
    numbers = tmp_path / "numbers.toml"
    numbers.write_text(
        "[mh_types]\nLMA_HO_Resp = 231\n[option_types]\nprevious_lma_address = 232\n"
    )
    code = (
        "from scapy.layers import inet6; import lmaho_wire.scapy as s; "
        "resp, prev = s.MESSAGE_LAYERS['lma_ho_resp'], s.OPTION_LAYERS['previous_lma_address']; "
        "print(resp.type_number, inet6._mip6_mhtype2cls[231] is resp, "
        "prev.type_number, inet6.moboptcls[232] is prev)"
    )
    env = {**os.environ, "LMAHO_NUMBERS": str(numbers)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, check=True)  # fmt: skip
    assert result.stdout.split() == ["231", "True", "232", "True"]
