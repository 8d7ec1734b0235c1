"""The lab's pure parts: the topology plan, the capture plan, the measurements, the ledger."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from lmaho_entities import DEFAULT_SCENARIO
from lmaho_entities.scenario import CORE_LINKS, link_local
from lmaho_lab.capture import capture_plan
from lmaho_lab.ledger import Ledger, process_start_time
from lmaho_lab.report import EchoRecord, StreamRecord
from lmaho_lab.topology import plan
from lmaho_wire.packet import mac_bytes


def namespace(node: str) -> str:
    return f"lmaho-test-{node}"


def test_plan_has_a_namespace_per_node_and_a_veth_per_link() -> None:
    topology = plan(DEFAULT_SCENARIO, 3, namespace)
    assert set(topology.namespaces) == {"bmag", "plma", "nlma", "store", "cn", "mn1", "mn2", "mn3"}
    assert [link.name for link in topology.links] == [
        *CORE_LINKS,
        "mn1-bmag",
        "mn2-bmag",
        "mn3-bmag",
    ]
    for link in topology.links:
        # Both ends carry the link's name; interface names fit IFNAMSIZ.
        assert link.ends[0].name == link.ends[1].name == link.name
        assert len(link.name) <= 15
    macs = DEFAULT_SCENARIO.links["plma-store"].macs
    assert [e.mac for e in topology.link("plma-store").ends] == list(macs)
    access = topology.link("mn2-bmag")
    assert [e.node for e in access.ends] == ["mn2", "bmag"]
    assert access.ends[0].mac == "02:00:00:01:00:02"
    assert access.ends[1].mac == DEFAULT_SCENARIO.bmag.access_mac


def test_plan_routes_reach_every_signalling_peer_and_the_anchor() -> None:
    scenario = DEFAULT_SCENARIO
    topology = plan(scenario, 2, namespace)
    reach = {(r.node, r.destination) for r in topology.routes}
    peers = {
        "bmag": ["plma", "nlma"],
        "plma": ["bmag", "nlma", "store", "cn"],
        "nlma": ["bmag", "plma", "store", "cn"],
        "store": ["plma", "nlma"],
        "cn": ["plma", "nlma"],
    }
    for node, others in peers.items():
        for other in others:
            assert (node, IPv6Network(f"{topology.addresses[other]}/128")) in reach
    mn2 = topology.mobiles[1]
    assert mn2.address == IPv6Address("2001:db8:100:1:0:ff:fe01:2")
    (to_anchor,) = [r for r in topology.routes if r.node == "cn" and r.destination == mn2.prefix]
    assert to_anchor.device == "cn-plma"
    assert to_anchor.gateway == link_local(mac_bytes(scenario.links["cn-plma"].macs[1]))
    (default,) = [r for r in topology.routes if r.node == "mn2"]
    assert default.destination == IPv6Network("::/0")
    assert default.gateway == link_local(mac_bytes(scenario.bmag.access_mac))


def test_plan_makes_every_next_hop_and_each_mn_a_static_neighbour() -> None:
    topology = plan(DEFAULT_SCENARIO, 3, namespace)
    static = {(n.node, n.device, n.address): n.mac for n in topology.neighbours}
    for route in topology.routes:
        mac = static[route.node, route.device, route.gateway]
        assert link_local(mac_bytes(mac)) == route.gateway
    for m in topology.mobiles:
        assert static["bmag", f"mn{m.n}-bmag", m.address] == "02:00:00:01:00:0" + str(m.n)
    assert topology.neighbours_of("mn2") == [n for n in topology.neighbours if n.node == "mn2"]


def test_capture_plan_takes_every_link_once_at_four_namespaces() -> None:
    topology = plan(DEFAULT_SCENARIO, 2, namespace)
    captured = capture_plan(topology)
    assert set(captured) == {"bmag", "plma", "nlma", "cn"}
    names = sorted(n for interfaces in captured.values() for n in interfaces)
    assert names == sorted(link.name for link in topology.links)
    assert captured["bmag"] == ["bmag-plma", "bmag-nlma", "mn1-bmag", "mn2-bmag"]


def test_echo_window_counts_loss_and_the_gap_across_its_start() -> None:
    sent = [float(t) for t in range(10)]
    replied: list[float | None] = [t + 0.1 for t in sent]
    replied[4] = replied[5] = replied[6] = None
    echo = EchoRecord(sent, replied)
    window = echo.window(4.5, 10.0)
    assert (window.sent, window.lost) == (5, 2)
    # Last reply before the window at 3.1, the next at 7.1.
    assert window.longest_gap == pytest.approx(4.0)
    quiet = echo.window(0.0, 4.0)
    assert (quiet.sent, quiet.lost, quiet.longest_gap) == (4, 0, pytest.approx(1.0))


def test_echo_window_without_replies_is_one_gap_to_its_last_request() -> None:
    echo = EchoRecord([0.0, 1.0, 2.0, 3.0], [0.1, None, None, None])
    window = echo.window(0.5, 5.0)
    assert (window.sent, window.lost) == (3, 3)
    assert window.longest_gap == pytest.approx(2.9)


def test_stream_record_counts_and_stalls() -> None:
    stream = StreamRecord([[1.0, 100], [2.0, 200], [2.5, 300], [6.0, 400]])
    assert stream.at(0.5) == 0
    assert stream.at(2.2) == 200
    assert stream.between(1.5, 6.0) == 300
    assert stream.longest_stall(1.5, 7.0) == pytest.approx(3.5)


@pytest.fixture
def recorded_sleeper(tmp_path: Path) -> Iterator[tuple[Ledger, subprocess.Popen[bytes]]]:
    """A ledger in ``tmp_path`` that records one sleeping child process."""
    ledger = Ledger("abc123", tmp_path)
    ledger.create()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ledger.add_process(sleeper.pid, "sleeper")
        yield ledger, sleeper
    finally:
        sleeper.kill()
        sleeper.wait()


def test_ledger_is_on_disk_and_teardown_stops_its_processes(
    recorded_sleeper: tuple[Ledger, subprocess.Popen[bytes]],
) -> None:
    ledger, sleeper = recorded_sleeper
    data = json.loads(ledger.path.read_text())
    assert data["processes"][0]["pid"] == sleeper.pid
    assert data["processes"][0]["start_time"] == process_start_time(sleeper.pid)
    assert Ledger.load(ledger.path).processes == ledger.processes
    started = time.monotonic()
    done = Ledger.load(ledger.path).teardown()
    assert done.processes == [f"sleeper (pid {sleeper.pid})"]
    assert sleeper.wait(1) != 0
    assert time.monotonic() - started < 2
    assert not ledger.path.exists()
    assert not ledger.runtime_dir.exists()


def test_ledger_never_kills_a_reused_pid(
    recorded_sleeper: tuple[Ledger, subprocess.Popen[bytes]],
) -> None:
    ledger, sleeper = recorded_sleeper
    ledger.processes[0].start_time -= 1  # as if the PID now belonged to another process
    assert ledger.teardown().processes == []
    assert sleeper.poll() is None
