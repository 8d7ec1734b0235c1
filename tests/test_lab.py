"""``lmaho lab``: the lab built, run and removed for real (root: namespaces, veths, raw sockets)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pyroute2 import IPRoute, netns

from lmaho_lab.ledger import STATE_DIR, Ledger, process_start_time
from lmaho_lab.run import Lab, LabOptions

IS_ROOT = os.geteuid() == 0
F = TypeVar("F", bound=Callable[..., Any])
_skip_unless_root = pytest.mark.skipif(
    not IS_ROOT, reason="needs root: network namespaces, veth links, raw sockets"
)


def needs_root(fn: F) -> F:
    """Marks a test ``root`` and skips it, with the reason, when not running as root."""
    return pytest.mark.root(_skip_unless_root(fn))


LMAHO = [sys.executable, "-c", "from lmaho_cli.main import main; main()"]


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
        _, err = run.communicate(timeout=20)
    finally:
        run.kill()
        run.wait()
    assert run.returncode == 130, err.decode()
    assert b"Traceback" not in err
    assert_nothing_left(ledger.run_id, processes, STATE_DIR)


@needs_root
def test_lab_down_removes_what_a_killed_run_left() -> None:
    run = start_lab()
    try:
        ledger = running_ledger(run.pid)
        processes = [(p.pid, p.start_time) for p in ledger.processes]
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


@needs_root
def test_lab_down_leaves_a_live_run_alone() -> None:
    run = start_lab()
    try:
        ledger = running_ledger(run.pid)
        down = subprocess.run([*LMAHO, "lab", "down"], capture_output=True, text=True, timeout=30)
        assert ledger.run_id not in down.stdout
        assert lab_names(ledger.run_id)
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=20)
    finally:
        run.kill()
        run.wait()
    assert_nothing_left(ledger.run_id, [], STATE_DIR)


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
