"""lmaho_live without root: the real-time scheduler, the SQLite policy store, configs, events,
the control socket, the entities' bounds and data-plane calls, and the CLI's error lines."""

from __future__ import annotations

import io
import json
import os
import selectors
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from lmaho_entities import (
    DEFAULT_SCENARIO,
    ApReport,
    BoundaryMag,
    Packet,
    PolicyProfile,
    PolicyStore,
    Scheduler,
    Signal,
    Variant,
)
from lmaho_entities.context import (
    lma_address_option,
    mag_address_option,
    previous_lma_address_option,
    timestamp_option,
)
from lmaho_entities.state import PolicyRoute, TunnelInterface
from lmaho_live import EventLog, PolicyDatabase, RealTimeScheduler
from lmaho_live.config import AgentConfig, ConfigError, configs_for_scenario
from lmaho_live.control import ControlServer, request
from lmaho_wire import Timestamp
from lmaho_wire.schema import HANDOVER_STATUS
from support.cli import LMAHO_COMMAND, lmaho
from support.entities import (
    AP_NLMA,
    BMAG,
    CTX,
    MN_MAC,
    NLMA,
    PLMA,
    PREFIX,
    STORE,
    Recorder,
    make_lma,
)

# --- the real-time scheduler ------------------------------------------------------------


def run_until(scheduler: RealTimeScheduler, done: Callable[[], bool], limit: float) -> None:
    """What an agent's loop does: sleep until the next timer, run what is due."""
    end = time.monotonic() + limit
    while not done() and time.monotonic() < end:
        time.sleep(min(scheduler.timeout() or 0.001, max(0.0, end - time.monotonic())))
        scheduler.run_due()


def test_real_time_scheduler_fires_timers_no_earlier_than_due() -> None:
    s = RealTimeScheduler()
    fired: list[tuple[str, int]] = []
    s.after(30_000, lambda: fired.append(("late", s.now)))
    s.after(10_000, lambda: fired.append(("early", s.now)))
    cancelled = s.after(20_000, lambda: fired.append(("cancelled", s.now)))
    cancelled.cancel()
    assert s.timeout() is not None and 0 < s.timeout() <= 0.010  # type: ignore[operator]
    run_until(s, lambda: len(fired) == 2, limit=2.0)
    assert [name for name, _ in fired] == ["early", "late"]
    assert fired[0][1] >= 10_000 and fired[1][1] >= 30_000
    assert s.timeout() is None  # the cancelled timer is gone too


def test_real_time_scheduler_clock_is_wall_time_from_its_start() -> None:
    before = time.time()
    s = RealTimeScheduler()
    time.sleep(0.02)
    now = s.advance()
    assert 20_000 <= now < 1_000_000
    assert abs(s.wall_microseconds() / 1e6 - time.time()) < 0.01
    stamp = s.timestamp()
    assert isinstance(stamp, Timestamp) and abs(stamp.seconds - before) <= 1
    assert s.advance() >= now  # never goes back


def test_entity_retransmissions_follow_the_real_clock() -> None:
    """A bMAG on the real clock resends LMA_HO_Req after the 1 s timeout (wire-format 9)."""
    s = RealTimeScheduler()
    net = Recorder()
    bmag = BoundaryMag(
        "bmag", BMAG, s, net, link_local=IPv6Address("fe80::1"), binding_lifetime=3600
    )
    bmag.attach(CTX, MN_MAC, IPv6Address("2001:db8:100::2"), PLMA, sequence=0,
                lifetime=3600, registered_at=0)  # fmt: skip
    s.advance()  # as the agent does before handing the entity anything
    first = time.monotonic()
    bmag.on_report(ApReport("mn1@x", AP_NLMA, 1), "test")
    run_until(s, lambda: len(net.sent) == 2, limit=1.5)
    assert len(net.sent) == 2 and net.sent[0].payload == net.sent[1].payload
    assert 0.95 <= time.monotonic() - first < 1.3


# --- the policy database ------------------------------------------------------------------


PROFILE = PolicyProfile("mn1@x", PLMA, None, (PREFIX,))


def test_policy_database_keeps_profiles_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with PolicyDatabase(path) as db:
        db.put(PROFILE)
        db["mn2@x"] = PolicyProfile("mn2@x", NLMA, PLMA, (IPv6Network("2001:db8:101::/64"),))
        assert len(db) == 2 and db.get("nobody") is None
    with PolicyDatabase(path) as db:
        assert db["mn1@x"] == PROFILE
        assert db.get("mn2@x") == PolicyProfile(
            "mn2@x", NLMA, PLMA, (IPv6Network("2001:db8:101::/64"),)
        )
        assert sorted(db) == ["mn1@x", "mn2@x"]
        assert [s.profile.mn_id for s in db.stored()] == ["mn1@x", "mn2@x"]
        del db["mn2@x"]
        with pytest.raises(KeyError):
            del db["mn2@x"]
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def update(seq: int = 9) -> Packet:
    options = (
        CTX.mn_id,
        lma_address_option(NLMA),
        previous_lma_address_option(PLMA),
        *CTX.prefix_options,
    )
    return Packet(NLMA, STORE, Signal("Update", seq, options))


class CommittedAtSend(Recorder):
    """Reads the database through its own connection when the Update_Ack leaves."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.seen: list[tuple[str, str | None]] = []

    def send(self, sender: str, next_hop: IPv6Address, packet: Packet) -> None:
        super().send(sender, next_hop, packet)
        row = sqlite3.connect(self.path).execute("SELECT lmaa, plmaa FROM profiles").fetchone()
        self.seen.append(row)


def test_an_update_is_committed_before_its_update_ack_leaves(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with PolicyDatabase(path) as db:
        db.put(PROFILE)
    net = CommittedAtSend(path)
    with PolicyDatabase(path) as db:
        store = PolicyStore("store", STORE, Scheduler(), net, profiles=db)
        store.receive(update(), "test")
    ack = net.sent[0].payload
    assert isinstance(ack, Signal) and ack.message == "Update_Ack" and ack.accepted
    assert net.seen == [(str(NLMA), str(PLMA))]
    with PolicyDatabase(path) as db:  # a restarted store finds the change
        assert (db["mn1@x"].lmaa, db["mn1@x"].plmaa) == (NLMA, PLMA)


def test_policy_cli_sets_and_shows_profiles(tmp_path: Path) -> None:
    db = str(tmp_path / "store.sqlite")
    run = lmaho("policy", "set", db, "mn1@x", "--lmaa", str(PLMA), "--prefix", str(PREFIX))
    assert run.returncode == 0, run.stderr
    run = lmaho("policy", "show", db, "--json")
    shown = json.loads(run.stdout)
    assert shown["mn_id"] == "mn1@x" and shown["lmaa"] == str(PLMA) and shown["plmaa"] is None
    assert shown["prefixes"] == [str(PREFIX)]
    table = lmaho("policy", "show", db).stdout
    assert "mn1@x" in table and "2001:db8:100::/64" in table
    missing = lmaho("policy", "show", str(tmp_path / "none.sqlite"))
    assert missing.returncode == 2 and "no such policy database" in missing.stderr
    bad = lmaho("policy", "set", db, "mn1@x", "--lmaa", "nowhere", "--prefix", str(PREFIX))
    assert bad.returncode == 2 and "not an IPv6 address" in bad.stderr


# --- configuration ------------------------------------------------------------------------


def test_scenario_configs_round_trip_through_toml(tmp_path: Path) -> None:
    configs = configs_for_scenario(
        DEFAULT_SCENARIO, runtime_dir=tmp_path, variant=Variant.NLMA_REFUSES
    )
    assert set(configs) == {"bmag", "plma", "nlma", "store"}
    for name, config in configs.items():
        path = tmp_path / f"{name}.toml"
        config.dump(path)
        assert AgentConfig.load(path) == config
    plma, nlma = configs["plma"].lma, configs["nlma"].lma
    assert plma is not None and nlma is not None
    assert plma.refuse_context == nlma.refuse_context == "INSUFFICIENT_RESOURCES"
    assert configs["bmag"].peers == (PLMA, NLMA)
    assert configs["store"].control == tmp_path / "store.sock"
    lost = configs_for_scenario(
        DEFAULT_SCENARIO, runtime_dir=tmp_path, variant=Variant.LOST_MESSAGE
    )
    assert {c.lose_step for c in lost.values()} == {"c"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"role": "mag"}, "role: must be one of"),
        (
            {"role": "lma", "address": "x", "control": "c", "lma": {"store": "::2"}},
            "address: must be an IPv6 address",
        ),
        ({"role": "lma", "address": "::1", "control": "c"}, "[lma]: missing"),
        (
            {"role": "lma", "address": "::1", "control": "c", "lma": {"store": "::2", "x": 1}},
            "lma: unknown key(s) x",
        ),
        (
            {"role": "bmag", "address": "::1", "control": "c", "tunnels": "gre"},
            "tunnels: must be one of",
        ),
        (
            {
                "role": "policy-store",
                "address": "::1",
                "control": "c",
                "policy_store": {"database": "d", "fail_updates": "ACCEPTED"},
            },
            "policy_store.fail_updates: 'ACCEPTED' is not an error Status name",
        ),
        (
            {
                "role": "lma",
                "address": "::1",
                "control": "c",
                "lma": {
                    "store": "::2",
                    "access_points": [{"id_type": "BSSID", "identifier": "zz", "lma": "::3"}],
                },
            },
            "lma.access_points[0].identifier",
        ),
    ],
)
def test_bad_configs_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        AgentConfig.from_dict(data)
    assert message in str(e.value)


def test_agent_command_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = lmaho("agent", "lma", "--config", str(tmp_path / "none.toml"))
    assert missing.returncode == 2 and "no such agent configuration" in missing.stderr
    configs = configs_for_scenario(DEFAULT_SCENARIO, runtime_dir=tmp_path)
    configs["plma"].dump(tmp_path / "plma.toml")
    wrong = lmaho("agent", "bmag", "--config", str(tmp_path / "plma.toml"))
    assert wrong.returncode == 2 and "role is 'lma', not 'bmag'" in wrong.stderr
    for run in (missing, wrong):
        assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    status = lmaho("agent", "status", "--control", str(tmp_path / "none.sock"))
    assert status.returncode == 2 and "cannot connect" in status.stderr


def test_an_agent_without_root_exits_2_saying_so() -> None:
    with tempfile.TemporaryDirectory() as readable:  # pytest's tmp_path is root's only
        folder = Path(readable)
        folder.chmod(0o755)
        configs = configs_for_scenario(DEFAULT_SCENARIO, runtime_dir=folder)
        configs["plma"].dump(folder / "plma.toml")
        command = [*LMAHO_COMMAND, "agent", "lma", "--config", str(folder / "plma.toml")]
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as root and setpriv is missing to drop it")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr == (
        "lmaho: error: agent plma: needs root (CAP_NET_RAW for raw sockets, "
        "CAP_NET_ADMIN for tunnels and routes)\n"
    )


# --- events -------------------------------------------------------------------------------


def test_events_are_json_lines_and_drops_are_rate_limited() -> None:
    out = io.StringIO()
    clock = [1000.0]
    log = EventLog(out, agent="plma", role="lma", as_json=True, clock=lambda: clock[0])
    log.emit("ready", address="2001:db8:1::1")
    for _ in range(500):
        log.dropped("malformed", "2001:db8:b::1")
    clock[0] += 1.0
    log.dropped("malformed", "2001:db8:b::1")
    assert out.getvalue() == ""  # nothing before the agent's loop flushes
    log.flush()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0] == {
        "time": 1000.0,
        "agent": "plma",
        "role": "lma",
        "event": "ready",
        "address": "2001:db8:1::1",
    }
    assert [(e["event"], e["count"]) for e in lines[1:]] == [("dropped", 1), ("dropped", 500)]
    human = io.StringIO()
    human_log = EventLog(human, agent="bmag", role="bmag", as_json=False, clock=lambda: 0.0)
    human_log.emit("sent", message="PBU", status=None)
    human_log.flush()
    assert human.getvalue() == "00:00:00.000000 bmag sent message=PBU\n"


# --- the control socket -------------------------------------------------------------------


def test_control_socket_answers_json_lines(tmp_path: Path) -> None:
    selector = selectors.DefaultSelector()
    path = tmp_path / "run" / "agent.sock"
    server = ControlServer(
        path,
        lambda req: {"ok": True, "echo": req["cmd"]},
        lambda fd, cb: selector.register(fd, selectors.EVENT_READ, cb),
        selector.unregister,
    )
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            for key, _ in selector.select(0.05):
                key.data()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert request(path, {"cmd": "status"}) == {"ok": True, "echo": "status"}

        with socket.socket(socket.AF_UNIX) as raw:
            raw.settimeout(5)
            raw.connect(str(path))
            raw.sendall(b'not json\n{"cmd": "x"}\n')
            lines = raw.makefile()
            replies = lines.readline(), lines.readline()
        assert json.loads(replies[0])["ok"] is False
        assert json.loads(replies[1]) == {"ok": True, "echo": "x"}
    finally:
        stop.set()
        thread.join()
        server.close()
    assert not path.exists()


# --- the entities' bounds and data-plane calls ----------------------------------------------


def lma_ho_init(mn: int, seq: int) -> Packet:
    ctx = type(CTX).build(f"mn{mn}@x", (IPv6Network(f"2001:db8:{mn:x}::/64"),))
    options = (
        ctx.mn_id,
        *ctx.prefix_options,
        mag_address_option(BMAG),
        timestamp_option(Timestamp(1, 0)),
    )
    return Packet(PLMA, NLMA, Signal("LMA_HO_Init", seq, options, frozenset({"T"}), 3600))


def test_an_nlma_at_its_limit_refuses_contexts_and_forgets_old_answers() -> None:
    lma, net = make_lma(NLMA, max_mobiles=2)
    for n in range(1, 1001):
        lma.receive(lma_ho_init(n, n), "test")
    statuses = [p.payload.status for p in net.sent]  # type: ignore[union-attr]
    assert statuses[:2] == [0, 0]
    assert set(statuses[2:]) == {HANDOVER_STATUS["INSUFFICIENT_RESOURCES"]}
    assert len(lma.bindings) == 2 and lma.refused_full == 998
    assert len(lma.answers) == 2  # memory bounded, whatever the flood


class RecordingDataPlane:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def add_tunnel(self, tunnel: TunnelInterface) -> None:
        self.calls.append(("tunnel", tunnel.name, str(tunnel.remote)))

    def route_prefix(self, prefix: IPv6Network, tunnel: TunnelInterface) -> None:
        self.calls.append(("route", str(prefix), tunnel.name))

    def unroute_prefix(self, prefix: IPv6Network) -> None:
        self.calls.append(("unroute", str(prefix)))

    def point_policy_route(self, mn_id: str, route: PolicyRoute) -> None:
        self.calls.append(("policy", mn_id, route.interface))

    def remove_policy_route(self, mn_id: str, route: PolicyRoute) -> None:
        self.calls.append(("unpolicy", mn_id))


def test_entities_tell_their_data_plane_every_tunnel_and_route() -> None:
    plane = RecordingDataPlane()
    lma, _ = make_lma(data_plane=plane)  # type: ignore[arg-type]
    lma.register(CTX, BMAG, 3600, 0)
    lma.forget("mn1@x")
    assert plane.calls == [
        ("tunnel", "Tunnel0", str(BMAG)),
        ("route", str(PREFIX), "Tunnel0"),
        ("unroute", str(PREFIX)),
    ]
    plane.calls.clear()
    bmag = BoundaryMag(
        "bmag",
        BMAG,
        Scheduler(),
        Recorder(),
        link_local=IPv6Address("fe80::1"),
        binding_lifetime=3600,
        data_plane=plane,
        max_mobiles=1,
    )
    bmag.attach(CTX, MN_MAC, IPv6Address("2001:db8:100::2"), PLMA, sequence=0,
                lifetime=3600, registered_at=0)  # fmt: skip
    with pytest.raises(ValueError, match="1 MNs attached already"):
        bmag.attach(
            type(CTX).build("mn2@x", (IPv6Network("2001:db8:101::/64"),)),
            b"\2\0\0\1\0\2",
            IPv6Address("2001:db8:101::2"),
            PLMA,
            sequence=0,
            lifetime=3600,
            registered_at=0,
        )
    bmag.forget("mn1@x")
    assert plane.calls == [
        ("tunnel", "Tunnel0", str(PLMA)),
        ("policy", "mn1@x", "Tunnel0"),
        ("unpolicy", "mn1@x"),
    ]
