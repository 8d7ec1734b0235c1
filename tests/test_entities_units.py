"""The entities' parts one by one: clock, timers, tables, scenarios, and answers to bad requests."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest

from lmaho_entities import (
    DEFAULT_SCENARIO,
    INITIAL_TIMEOUT_US,
    Packet,
    PolicyStore,
    Retransmission,
    ScenarioError,
    Scheduler,
    Signal,
    Trace,
    load_scenario,
    mobile_spec,
)
from lmaho_entities.context import MobileContext, timestamp_option
from lmaho_entities.network import SequenceCounters
from lmaho_entities.packets import (
    Datagram,
    IPv6Address,
    IPv6Network,
    decode_packet,
    encode_packet,
    icmpv6_echo,
    udp_datagram,
)
from lmaho_entities.scenario import link_local, scenario_from_dict
from lmaho_entities.state import AnswerCache, PolicyProfile, PrefixTable
from lmaho_wire import Timestamp, option
from lmaho_wire.checksum import upper_layer_checksum
from lmaho_wire.schema import BA_STATUS, HANDOVER_STATUS
from support.entities import AP_NLMA, CTX, NLMA, PLMA, PREFIX, STORE, Recorder, make_lma
from support.entities import BMAG as A
from support.paths import DEFAULT_SCENARIO_TOML

# --- clock and timers ---------------------------------------------------------------


def test_scheduler_runs_in_time_order_and_ties_in_schedule_order() -> None:
    s = Scheduler()
    order: list[str] = []
    s.at(20, order.append, "c")
    s.at(10, order.append, "a")
    s.at(10, order.append, "b")
    cancelled = s.after(5, order.append, "never")
    cancelled.cancel()
    s.at(30, lambda: s.after(0, order.append, "d"))
    assert s.run() == 4 + 1  # the lambda counts too
    assert order == ["a", "b", "c", "d"]
    assert s.now == 30
    with pytest.raises(ValueError):
        s.at(29, order.append, "past")


def test_scheduler_run_until_stops_the_clock_there() -> None:
    s = Scheduler()
    fired: list[int] = []
    s.at(100, fired.append, 1)
    s.run(until=50)
    assert (fired, s.now, s.pending) == ([], 50, 1)
    s.run()
    assert fired == [1]


def test_cancelled_timers_let_go_of_their_call_and_leave_the_heap_in_bulk() -> None:
    s = Scheduler()
    fired: list[int] = []
    keep = s.at(10, fired.append, 10)
    far = [s.at(3_600_000_000 + i, fired.append, i) for i in range(1000)]
    for timer in far:
        timer.cancel()
    # Rebuilt whenever the cancelled ones reached half of the heap: few are left.
    assert s.pending < 100
    assert far[0].args == ()  # the cancelled call's arguments are no longer held
    s.run()
    assert fired == [10] and not keep.cancelled


def test_scheduler_epoch_and_timestamp() -> None:
    s = Scheduler(dt.datetime(2009, 10, 26, tzinfo=dt.UTC))
    assert s.epoch_us == 1256515200 * 1_000_000
    s.at(1_500_000, lambda: None)
    s.run()
    assert s.timestamp() == Timestamp(1256515201, 32768)
    assert s.wall_microseconds() == 1256515201_500_000


def test_retransmission_doubles_its_timeout_and_gives_up_after_three() -> None:
    s = Scheduler()
    sent: list[tuple[int, int]] = []
    gave_up: list[int] = []
    Retransmission(s, lambda n: sent.append((s.now, n)), lambda: gave_up.append(s.now)).start()
    s.run()
    second = INITIAL_TIMEOUT_US
    assert sent == [(0, 0), (second, 1), (3 * second, 2), (7 * second, 3)]
    assert gave_up == [15 * second]


def test_retransmission_stops_when_answered() -> None:
    s = Scheduler()
    sent: list[int] = []
    r = Retransmission(s, sent.append, lambda: pytest.fail("gave up")).start()
    s.at(500_000, r.stop)
    s.run()
    assert sent == [0] and not r.active


# --- tables ---------------------------------------------------------------------------


def test_prefix_table_longest_match() -> None:
    t: PrefixTable[str] = PrefixTable()
    t.add(IPv6Network("2001:db8:100::/48"), "short")
    t.add(PREFIX, "long")
    assert t.lookup(IPv6Address("2001:db8:100::1")) == "long"
    assert t.lookup(IPv6Address("2001:db8:100:5::1")) == "short"
    assert t.lookup(IPv6Address("2001:db8:200::1")) is None
    t.remove(PREFIX)
    assert t.lookup(IPv6Address("2001:db8:100::1")) == "short" and len(t) == 1


def test_sequence_numbers_increase_per_peer_modulo_2_16() -> None:
    c = SequenceCounters(first=65535)
    assert [c.next(PLMA), c.next(PLMA), c.next(NLMA)] == [65535, 0, 65535]


def test_binding_remaining_lifetime_is_in_4_second_units() -> None:
    from lmaho_entities.state import BindingCacheEntry

    ctx = MobileContext.build("mn@x", (PREFIX,))
    bce = BindingCacheEntry(ctx, A, lifetime=3600, registered_at=0)
    assert bce.remaining_lifetime(0) == 3600
    assert bce.remaining_lifetime(1_000_000) == 3596
    assert bce.remaining_lifetime(3_599_000_000) == 0
    assert bce.remaining_lifetime(10**12) == 0


# --- packets --------------------------------------------------------------------------


def test_upper_layer_checksums_verify() -> None:
    src, dst = IPv6Address("2001:db8:c::1"), IPv6Address("2001:db8:100::1")
    for dg, proto in (
        (icmpv6_echo(src, dst, reply=False, identifier=7, sequence=3, data=b"abc"), 58),
        (udp_datagram(src, dst, src_port=5001, dst_port=5000, data=b"0123456789"), 17),
    ):
        assert upper_layer_checksum(src.packed, dst.packed, dg.data, proto) == 0


def test_encode_decode_round_trip_through_a_tunnel() -> None:
    mn = MobileContext.build(
        "mn1@x", (PREFIX,), link_layer=b"\x02\0\0\1\0\1", access_technology="IEEE_802_11"
    )
    ts = timestamp_option(Timestamp(1256515201, 5))
    signal = Signal("PBU", 9, (mn.mn_id, *mn.prefix_options, ts), frozenset({"A", "H", "P"}), 400)
    packet = Packet(A, NLMA, signal)
    assert decode_packet(encode_packet(packet)) == packet
    inner = Packet(
        IPv6Address("2001:db8:c::1"),
        IPv6Address("2001:db8:100::1"),
        Datagram(17, udp_datagram(A, A, src_port=1, dst_port=2, data=b"x").data),
    )
    outer = Packet(PLMA, NLMA, inner.forwarded())
    assert decode_packet(encode_packet(outer)) == outer


def test_timestamp_option_matches_the_codec() -> None:
    ts = Timestamp(1256515201, 4242)
    assert timestamp_option(ts) == option("timestamp", timestamp=ts)


# --- scenarios ------------------------------------------------------------------------


def test_shipped_default_toml_is_the_builtin_default_and_complete() -> None:
    # base=None: every key must be in the file, so it documents all of them.
    assert load_scenario(DEFAULT_SCENARIO_TOML, base=None) == DEFAULT_SCENARIO


def test_every_scenario_key_has_a_comment_in_default_toml() -> None:
    import tomllib

    text = DEFAULT_SCENARIO_TOML.read_text()
    lines = text.splitlines()
    data = tomllib.loads(text)

    def leaf_keys(table: dict, prefix: str = "") -> list[str]:
        out = []
        for k, v in table.items():
            if isinstance(v, dict):
                out += leaf_keys(v, f"{prefix}{k}.")
            else:
                out.append(k)
        return out

    for key in set(leaf_keys(data)):
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{key} ="))
        # The key's block (back to the table header or a blank line) has a comment.
        block = []
        for line in reversed(lines[:at]):
            if not line.strip() or line.startswith("["):
                break
            block.append(line)
        header = next(line for line in reversed(lines[:at]) if line.startswith("["))
        documented = any(line.startswith("#") for line in block) or any(
            line.startswith("#") for line in lines[lines.index(header) - 3 : lines.index(header)]
        )
        assert documented, f"{key} has no comment in default.toml"


def test_a_partial_scenario_changes_only_its_keys(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(
        '[plma]\naddress = "2001:db8:aa::1"\n[links.cn-plma]\ndelay = 0.05\n'
        '[mobiles]\nhome_network_prefix = "2001:db8:9900::/56"\n'
    )
    s = load_scenario(f)
    assert s.plma.address == IPv6Address("2001:db8:aa::1") and s.plma.label == "PLMA"
    assert s.links["cn-plma"].delay == 0.05
    assert s.links["cn-plma"].macs == DEFAULT_SCENARIO.links["cn-plma"].macs
    assert s.nlma == DEFAULT_SCENARIO.nlma
    spec = mobile_spec(s.mobiles, 3)
    assert spec.prefix == IPv6Network("2001:db8:9900:200::/56")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"plma": {"adress": "x"}}, "unknown key(s) adress"),
        ({"plma": {"address": "nope"}}, "plma.address: must be an IPv6 address"),
        ({"timing": {"jitter": 1.5}}, "timing.jitter"),
        ({"timing": {"epoch": "2009"}}, "timing.epoch: must be a TOML date-time"),
        ({"links": {"cn-nlma": {"macs": ["02:00:00:00:0c:01", "x"]}}}, "not a MAC address"),
        (
            {
                "links": {
                    "cn-mn": {"macs": ["02:00:00:00:0c:09", "02:00:00:00:0c:0a"], "delay": 0.1}
                }
            },
            "links: must be exactly",
        ),
        ({"nlma": {"address": "2001:db8:1::1"}}, "two nodes share an address"),
        ({"mobiles": {"identifier": "mn@x"}}, 'must contain "{n}"'),
        ({"mobiles": {"access_technology": "WIFI"}}, "mobiles.access_technology"),
        ({"access_points": {"ap2": {"lma": "plma"}}}, "need an AP served by each LMA"),
        ({"access_points": {"ap1": {"identifier": "zz"}}}, "access_points.ap1.identifier"),
        ({"failures": {"nlma_refuses_status": "ACCEPTED"}}, "failures.nlma_refuses_status"),
        ({"failures": {"lost_step": "j"}}, "failures.lost_step"),
        ({"bmag": {"binding_lifetime": 10}}, "bmag.binding_lifetime"),
        ({"traffic": {"protocol": "tcp"}}, "traffic.protocol"),
    ],
)
def test_bad_scenarios_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(").replace(")", r"\)")):
        scenario_from_dict(data)


def test_scenario_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[timing\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)


def test_mobile_n_is_derived_from_its_number() -> None:
    m = DEFAULT_SCENARIO.mobiles
    one, two = mobile_spec(m, 1), mobile_spec(m, 2)
    assert one.identifier == "mn1@lmaho.example" and two.identifier == "mn2@lmaho.example"
    assert one.mac == bytes.fromhex("020000010001") and two.mac == bytes.fromhex("020000010002")
    assert two.prefix == IPv6Network("2001:db8:100:1::/64")
    # SLAAC with a modified EUI-64 (U/L bit flipped).
    assert one.address == IPv6Address("2001:db8:100::ff:fe01:1")
    assert link_local(bytes.fromhex("02000000 0b00".replace(" ", ""))) == ipaddress.IPv6Address(
        "fe80::ff:fe00:b00"
    )


# --- LMA and policy store answers to requests they cannot serve ---------------------------


AP_UNKNOWN = option("new_ap_id", id_type="NAME", identifier="elsewhere")


def ho_req(*, ap=AP_NLMA, seq: int = 5, drop: str | None = None) -> Packet:
    opts = [CTX.mn_id, *CTX.prefix_options, ap, timestamp_option(Timestamp(1, 0))]
    opts = [o for o in opts if o.key != drop]
    return Packet(A, PLMA, Signal("LMA_HO_Req", seq, tuple(opts)), trace=Trace("b", "mn1@x", 1))


def answer(net: Recorder) -> Signal:
    assert len(net.sent) == 1
    signal = net.sent[0].payload
    assert isinstance(signal, Signal)
    return signal


@pytest.mark.parametrize(
    ("registered", "packet", "status"),
    [
        (False, ho_req(), "UNKNOWN_MOBILE_NODE"),
        (True, ho_req(ap=AP_UNKNOWN), "NO_NLMA_AVAILABLE"),
        (True, ho_req(drop="new_ap_id"), "CONTEXT_INCOMPLETE"),
        (True, ho_req(drop="timestamp"), "CONTEXT_INCOMPLETE"),
    ],
)
def test_plma_refuses_what_it_cannot_hand_over(
    registered: bool, packet: Packet, status: str
) -> None:
    lma, net = make_lma()
    if registered:
        lma.register(CTX, A, 3600, 0)
    lma.receive(packet, "bmag-plma")
    resp = answer(net)
    assert resp.message == "LMA_HO_Resp" and resp.status == HANDOVER_STATUS[status]
    assert resp.sequence == 5 and resp.option("lma_address") is None
    assert net.sent[0].dst == A


def test_plma_in_a_handover_answers_a_new_request_with_handover_in_progress() -> None:
    lma, net = make_lma()
    lma.register(CTX, A, 3600, 0)
    lma.receive(ho_req(seq=5), "bmag-plma")
    lma.receive(ho_req(seq=5), "bmag-plma")  # a retransmission: nothing new to say
    lma.receive(ho_req(seq=6), "bmag-plma")
    messages = [(p.payload.message, p.payload.sequence, p.payload.status) for p in net.sent]
    assert messages == [
        ("LMA_HO_Init", 1, None),
        ("LMA_HO_Resp", 6, HANDOVER_STATUS["HANDOVER_IN_PROGRESS"]),
    ]
    assert net.sent[0].dst == NLMA


def test_nlma_rejects_a_pbu_it_has_no_context_for() -> None:
    lma, net = make_lma()
    hi = option("handoff_indicator", indicator="NOT_CHANGED")
    pbu = Signal(
        "PBU",
        3,
        (
            CTX.mn_id,
            *CTX.prefix_options,
            hi,
            CTX.access_technology,
            timestamp_option(Timestamp(1, 0)),
        ),
        frozenset({"A", "H", "P"}),
        400,
    )
    lma.receive(Packet(A, PLMA, pbu), "bmag-plma")
    pba = answer(net)
    assert pba.message == "PBA" and pba.status == BA_STATUS["NOT_LMA_FOR_THIS_MOBILE_NODE"]
    assert pba.sequence == 3 and pba.option("timestamp") is pbu.option("timestamp")


def test_nlma_refusing_context_incomplete() -> None:
    lma, net = make_lma()
    init = Signal("LMA_HO_Init", 8, (CTX.mn_id, *CTX.prefix_options), frozenset({"T"}), 400)
    lma.receive(Packet(NLMA, PLMA, init), "plma-nlma")
    hack = answer(net)
    assert hack.status == HANDOVER_STATUS["CONTEXT_INCOMPLETE"] and "T" not in hack.flags
    assert not lma.bindings


def test_policy_store_answers_unknown_mn_and_repeats_answers() -> None:
    net = Recorder()
    store = PolicyStore("store", STORE, Scheduler(), net)
    lmaa = option("lma_address", option_code="IPV6", address=str(NLMA))
    update = Signal("Update", 4, (CTX.mn_id, lmaa))
    store.receive(Packet(NLMA, STORE, update), "nlma-store")
    assert answer(net).status == HANDOVER_STATUS["UNKNOWN_MOBILE_NODE"]
    net.sent.clear()
    store.add_profile(PolicyProfile("mn1@x", PLMA))
    store.receive(Packet(NLMA, STORE, Signal("Update", 5, (CTX.mn_id, lmaa))), "nlma-store")
    store.receive(Packet(NLMA, STORE, Signal("Update", 5, (CTX.mn_id, lmaa))), "nlma-store")
    first, again = (p.payload for p in net.sent)
    assert first is again and first.status == 0
    assert store.profiles["mn1@x"].lmaa == NLMA and store.profiles["mn1@x"].plmaa is None


def test_an_answer_cache_with_room_for_no_mn_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one MN"):
        AnswerCache(0)
    assert AnswerCache(1).limit == 1
