"""``lmaho lab``: the lab built, run and removed for real (root: namespaces, veths, raw sockets)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute, netns

from lmaho_entities import Variant
from lmaho_lab.ledger import STATE_DIR, Ledger, process_start_time
from lmaho_lab.report import LabReport
from lmaho_lab.run import Lab, LabOptions
from support import root
from support.cli import LMAHO_COMMAND
from support.root import IS_ROOT

needs_root = root.needs_root("network namespaces, veth links, raw sockets")
LMAHO = LMAHO_COMMAND


def lab_names(run_id: str) -> list[str]:
    return [n for n in netns.listnetns() if n.startswith(f"lmaho-{run_id}-")]


def assert_nothing_left(run_id: str, processes: list[tuple[int, int]], state_dir: Path) -> None:
    """No namespace, process, state file or runtime directory of the run remains, and no
    link of the lab appears in this namespace."""
    assert lab_names(run_id) == []
    for pid, start in processes:
        assert process_start_time(pid) != start, f"process {pid} of run {run_id} still runs"
    assert not (state_dir / f"lab-{run_id}.json").exists()
    assert not (state_dir / run_id).exists()
    with IPRoute() as ipr:
        names = {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
    assert not {n for n in names if "-bmag" in n or n.startswith(("bmag-", "plma-", "cn-"))}


def running_ledger(owner: int, timeout: float = 20.0, helpers: int = 3) -> Ledger:
    """The state file of the lab run by process ``owner``, once its traffic helpers run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in STATE_DIR.glob("lab-*.json"):
            try:
                ledger = Ledger.load(path)
            except Exception:
                continue
            started = [p for p in ledger.processes if p.what in ("tcp sink", "tcp source", "echo")]
            if ledger.owner.pid == owner and len(started) >= helpers:
                return ledger
        time.sleep(0.1)
    raise AssertionError(f"no lab run of process {owner} came up within {timeout} s")


def check(pcap: Path) -> dict[str, Any]:
    """``lmaho check --json`` of a lab capture."""
    result = subprocess.run(
        [*LMAHO, "check", str(pcap), "--json"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode in (0, 1), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def violations(checked: dict[str, Any]) -> list[dict[str, Any]]:
    return [*checked["violations"], *(v for h in checked["handovers"] for v in h["violations"])]


def lab_run(tmp_path: Path, **options: Any) -> LabReport:
    state = tmp_path / "state"
    options = {"pcap": tmp_path / "lab.pcapng", **options}
    lab = Lab(LabOptions(settle=0.3, state_dir=state, **options))
    report = lab.run()
    assert_nothing_left(lab.run_id, [], state)
    return report


@dataclass
class Ran:
    report: LabReport
    checked: dict[str, Any] | None


RUNS: dict[str, dict[str, Any]] = {
    # One MN to the NLMA and back, and each failure variant once.
    "default": {"handovers": 2},
    **{v.value: {"variant": v} for v in Variant if v is not Variant.NONE},
    # The MN's registration seeded through the control sockets (no PBU/PBA), as craft starts.
    "register-seed": {"register": "seed"},
    # The scale: 200 MNs, every handover completed (no capture: 10 s of dumpcap
    # opening 202 interfaces would buy nothing the others do not check).
    "scale": {"mobiles": 200, "pcap": None},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran]:
    """Every run of RUNS, side by side (each lab has namespaces of its own), and the check
    of each capture: one wait for all of them instead of five in a row."""
    if not IS_ROOT:
        pytest.skip("needs root")

    # Made here, not in the threads: the first mktemp also makes the session's base
    # directory, and two threads doing that at once fail.
    directories = {name: tmp_path_factory.mktemp(name) for name in RUNS}

    def one(name: str) -> Ran:
        tmp_path = directories[name]
        report = lab_run(tmp_path, **RUNS[name])
        return Ran(report, check(tmp_path / "lab.pcapng") if report.pcap else None)

    with ThreadPoolExecutor(len(RUNS)) as pool:
        return dict(zip(RUNS, pool.map(one, RUNS), strict=True))


@needs_root
def test_default_run_hands_over_without_breaking_the_session(runs: dict[str, Ran]) -> None:
    report = runs["default"].report
    there, back = report.handovers
    assert (there.outcome, there.tunnel, back.outcome, back.tunnel) == (
        "completed",
        "Tunnel1",
        "completed",
        "Tunnel0",
    )
    for h in report.handovers:
        assert h.latency is not None and h.latency > 0
        assert h.echo is not None and h.echo.sent > 10
        assert h.tcp_sent and h.tcp_verified
    assert report.tcp_intact and report.tcp_sent > 20_000
    # Target: no echo lost; the report says how many were.
    assert report.echo_lost == sum(h.echo.lost for h in report.handovers if h.echo)
    assert report.echo_lost <= report.echo_sent // 50  # 0 here; the batch shares 2 CPUs
    assert report.echo_longest_gap < 0.5
    # The bMAG's policy rule moved from Tunnel0's table to Tunnel1's and back.
    (rule,) = report.state_before["bmag"]["rules"]
    assert rule["interface"] == "Tunnel0"
    (rule,) = report.state_after["bmag"]["rules"]
    assert rule["interface"] == "Tunnel0"
    tunnels = {(t.agent, t.name): t for t in report.tunnels}
    assert tunnels["bmag", "Tunnel1"].packets_out > 10  # the MN's uplink went through the NLMA
    # Every agent removed what it had added and exited 0 on SIGTERM.
    assert report.agent_exits == {"bmag": 0, "plma": 0, "nlma": 0, "store": 0}


@needs_root
def test_default_capture_holds_the_procedure(runs: dict[str, Ran]) -> None:
    checked = runs["default"].checked
    assert checked is not None
    assert [h["outcome"]["status"] for h in checked["handovers"]] == ["completed", "completed"]
    first = checked["handovers"][0]
    assert [s["step"] for s in first["steps"]] == list("bcdefghi")
    assert [h["retransmissions"] for h in checked["handovers"]] == [[], []]
    # (j) and (k) as real IPv6-in-IPv6 on the wire.
    tunnelled = {d["step"] for d in first["data"] if d["tunnelled"]}
    assert {"j", "k"} <= tunnelled


@needs_root
def test_default_capture_passes_check(runs: dict[str, Ran]) -> None:
    checked = runs["default"].checked
    assert checked is not None and violations(checked) == []


@needs_root
def test_a_registration_by_pbu_precedes_the_handovers_in_the_capture(
    runs: dict[str, Ran],
) -> None:
    checked = runs["default"].checked
    assert checked is not None
    # The registration's PBU and PBA (the default --register pbu), then (b)-(i) twice.
    assert checked["summary"]["signalling"] == 2 + 2 * 8
    assert [h["outcome"]["status"] for h in checked["handovers"]] == ["completed"] * 2


@needs_root
def test_a_seeded_registration_hands_over_with_no_pbu_before(runs: dict[str, Ran]) -> None:
    report, checked = runs["register-seed"].report, runs["register-seed"].checked
    assert checked is not None
    (h,) = report.handovers
    assert h.completed and h.tunnel == "Tunnel1" and report.tcp_intact
    # (b)-(i) only: the anchor's binding came from the control sockets.
    assert checked["summary"]["signalling"] == 8
    assert checked["handovers"][0]["outcome"]["status"] == "completed"
    assert violations(checked) == []
    assert checked["warnings"] == []


@needs_root
def test_nlma_refuses_keeps_the_mn_on_tunnel0_with_its_traffic(runs: dict[str, Ran]) -> None:
    report, checked = runs["nlma-refuses"].report, runs["nlma-refuses"].checked
    assert checked is not None
    (h,) = report.handovers
    assert (h.outcome, h.completed, h.tunnel) == ("refused", False, "Tunnel0")
    assert h.echo is not None and h.echo.lost == 0 and h.echo.sent > 10
    assert report.tcp_intact
    assert checked["handovers"][0]["outcome"]["status"] == "failed"
    assert checked["handovers"][0]["outcome"]["step"] == "d"
    assert violations(checked) == []


@needs_root
@pytest.mark.parametrize(
    ("variant", "outcome", "failed_at"),
    [(Variant.PBA_ERROR, "rejected", "i"), (Variant.POLICY_UPDATE_FAILS, "rejected", "h")],
)
def test_rejected_handovers_end_as_the_failure_they_are(
    runs: dict[str, Ran], variant: Variant, outcome: str, failed_at: str
) -> None:
    report, checked = runs[variant.value].report, runs[variant.value].checked
    assert checked is not None
    (h,) = report.handovers
    assert (h.outcome, h.completed, h.latency) == (outcome, False, None)
    assert h.tunnel == "Tunnel0"  # the bMAG keeps the MN's uplink on the PLMA
    # The bMAG re-registers the MN with the PLMA, which takes the downlink back from the
    # PLMA-NLMA tunnel (docs/wire-format.md 8): only the echoes of the few tens of ms
    # of the exchange lost (all but a few before the recovery), every octet delivered.
    assert h.echo is not None and h.echo.sent > 10 and h.echo.lost <= h.echo.sent // 10, h.echo
    assert h.echo.longest_gap < 0.5 and report.tcp_intact
    assert checked["handovers"][0]["outcome"]["status"] == "failed"
    assert checked["handovers"][0]["outcome"]["step"] == failed_at
    # The initial registration and the re-registration are PBU/PBA pairs outside the
    # handover, and so is the PLMA's Update/Update_Ack naming it in the profile again:
    # the checker accepts them.
    assert checked["summary"]["signalling"] == 2 + 8 + 2 + 2
    assert [v for v in violations(checked) if v["rule"] != "tunnel"] == []


@needs_root
def test_lost_message_completes_after_a_retransmission(runs: dict[str, Ran]) -> None:
    report, checked = runs["lost-message"].report, runs["lost-message"].checked
    assert checked is not None
    (h,) = report.handovers
    assert h.completed and h.tunnel == "Tunnel1"
    assert h.latency is not None and h.latency > 0.9  # the first retransmission timeout, 1 s
    assert report.tcp_intact
    assert checked["handovers"][0]["outcome"]["status"] == "completed"
    assert checked["handovers"][0]["retransmissions"]


@needs_root
def test_200_mobiles_complete_every_handover(runs: dict[str, Ran]) -> None:
    report = runs["scale"].report
    assert len(report.handovers) == 200
    assert report.completed == 200
    assert {h.tunnel for h in report.handovers} == {"Tunnel1"}
    assert report.tcp_intact
    # Loss while 200 handovers queue in the agents is reported, per MN and in total.
    assert report.echo_lost == sum(h.echo.lost for h in report.handovers if h.echo)
    assert report.agent_exits == {"bmag": 0, "plma": 0, "nlma": 0, "store": 0}


@needs_root
def test_plain_run_verifies_the_stream_and_leaves_nothing(tmp_path: Path) -> None:
    pcap = tmp_path / "plain.pcapng"
    lab = Lab(
        LabOptions(mobiles=2, agents=False, settle=0.5, pcap=pcap, state_dir=tmp_path / "state")
    )
    report = lab.run()
    assert report.tcp_sent > 20_000
    assert report.tcp_intact
    assert report.echo_sent > 50
    assert report.echo_lost == 0
    assert report.echo_longest_gap < 0.5
    frames = subprocess.run(
        ["tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.interface_name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # Every link is in the one file under its own name; traffic crossed the anchor's links.
    assert {"bmag-plma", "cn-plma", "mn1-bmag", "mn2-bmag"} <= set(frames)
    assert_nothing_left(lab.run_id, [], tmp_path / "state")


def start_lab(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*LMAHO, "lab", "run", "--plain", "--settle", "60", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # As from a terminal: a test run started in the background (a shell's `&`) has
        # SIGINT ignored, which its children inherit, and Python then leaves Ctrl-C alone.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@needs_root
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_tear_the_run_down(sig: signal.Signals) -> None:
    run = start_lab()
    try:
        ledger = running_ledger(run.pid)
        processes = [(p.pid, p.start_time) for p in ledger.processes]
        assert lab_names(ledger.run_id)
        run.send_signal(sig)
        # The lab's own bound is about 12 s (each helper and the agents get 3 s before
        # SIGKILL); the rest is margin for a loaded machine.
        _, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
            # A failed run leaves nothing behind either.
            subprocess.run([*LMAHO, "lab", "down"], capture_output=True, timeout=60)
    assert run.returncode == 130, err.decode()
    assert b"Traceback" not in err
    assert_nothing_left(ledger.run_id, processes, STATE_DIR)


@needs_root
def test_lab_down_leaves_a_live_run_alone_and_removes_a_killed_one() -> None:
    run = start_lab()
    try:
        ledger = running_ledger(run.pid)
        processes = [(p.pid, p.start_time) for p in ledger.processes]
        down = subprocess.run([*LMAHO, "lab", "down"], capture_output=True, text=True, timeout=30)
        assert ledger.run_id not in down.stdout
        assert lab_names(ledger.run_id)
    finally:
        run.kill()
        run.wait()
    # Killed outright: its namespaces and helpers are still there.
    assert lab_names(ledger.run_id)
    assert any(process_start_time(pid) == start for pid, start in processes)
    down = subprocess.run([*LMAHO, "lab", "down"], capture_output=True, text=True, timeout=30)
    assert down.returncode == 0, down.stderr
    assert f"lab run {ledger.run_id}: removed" in down.stdout
    assert_nothing_left(ledger.run_id, processes, STATE_DIR)
    again = subprocess.run([*LMAHO, "lab", "down"], capture_output=True, text=True, timeout=30)
    assert ledger.run_id not in again.stdout


def test_lab_needs_root_or_says_so() -> None:
    if IS_ROOT:
        pytest.skip("runs as root")
    result = subprocess.run([*LMAHO, "lab", "run"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "needs root" in result.stderr


def test_lab_report_json_shape_is_documented() -> None:
    from lmaho_lab.report import LabReport

    fields = set(json.loads(json.dumps(LabReport("x", 1, 1, "none", 0, "auto", 0.0).as_dict())))
    assert {"handovers", "echo_lost", "tcp_verified", "tcp_intact", "completed"} <= fields
