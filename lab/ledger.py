"""The record of everything a lab run creates, on disk before it exists.

A run writes ``/run/lmaho/lab-RUN.json`` and keeps it current: each network
namespace is recorded *before* it is made and each process right after it
starts (with its start time, so a reused PID is never killed). Tearing a run
down, normally or from ``lmaho lab down`` after the run was killed, reads
that file and removes exactly what it names: processes (SIGTERM, then
SIGKILL), namespaces (their links, addresses, routes and rules go with
them), the run's runtime directory, then the file itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lmaho_wire.errors import LmahoError

#: Where runs keep their state files and runtime directories.
STATE_DIR = Path("/run/lmaho")
#: Every lab namespace is named ``lmaho-RUN-NODE``.
NAMESPACE_PREFIX = "lmaho-"
#: How long a process gets to exit after SIGTERM before it is killed.
TERM_GRACE = 3.0


class LabError(LmahoError):
    """The lab cannot do what was asked (not root, a tool missing, a namespace refused)."""


@dataclass
class RecordedProcess:
    """A process the run started: PID, kernel start time (clock ticks) and what it is."""

    pid: int
    start_time: int
    what: str


@dataclass
class Teardown:
    """What tearing a run down removed."""

    run_id: str
    processes: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)


def new_run_id() -> str:
    """A short id, unique among the runs on this machine (namespace names must stay short)."""
    return secrets.token_hex(3)


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after it are plain.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None  # a zombie has exited; only its parent's wait remains
    return int(fields[19])


class Ledger:
    """The state file of one run: namespaces, processes and the runtime directory."""

    def __init__(self, run_id: str, directory: Path = STATE_DIR) -> None:
        self.run_id = run_id
        self.directory = directory
        self.namespaces: list[str] = []
        self.processes: list[RecordedProcess] = []
        #: The process running the lab (``lab down`` leaves a live run alone).
        self.owner = RecordedProcess(os.getpid(), process_start_time(os.getpid()) or 0, "lab run")

    @property
    def path(self) -> Path:
        return self.directory / f"lab-{self.run_id}.json"

    @property
    def runtime_dir(self) -> Path:
        """Agent configurations, control sockets, the store's database, capture pieces."""
        return self.directory / self.run_id

    def namespace(self, node: str) -> str:
        return f"{NAMESPACE_PREFIX}{self.run_id}-{node}"

    # --- recording -------------------------------------------------------------------

    def create(self) -> None:
        try:
            self.runtime_dir.mkdir(parents=True, exist_ok=False)
        except OSError as e:
            raise LabError(f"cannot create {self.runtime_dir}: {e.strerror or e}") from None
        self.save()

    def add_namespace(self, name: str) -> None:
        self.namespaces.append(name)
        self.save()

    def add_process(self, pid: int, what: str) -> None:
        start = process_start_time(pid)
        if start is not None:
            self.processes.append(RecordedProcess(pid, start, what))
            self.save()

    def forget_process(self, pid: int) -> None:
        self.processes = [p for p in self.processes if p.pid != pid]
        self.save()

    def save(self) -> None:
        data = {
            "run_id": self.run_id,
            "owner": asdict(self.owner),
            "namespaces": self.namespaces,
            "processes": [asdict(p) for p in self.processes],
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=1))
        temporary.replace(self.path)  # never a half-written file for `lab down` to read

    @classmethod
    def load(cls, path: Path) -> Ledger:
        try:
            data = json.loads(path.read_text())
            ledger = cls(str(data["run_id"]), path.parent)
            ledger.owner = RecordedProcess(**data["owner"])
            ledger.namespaces = [str(n) for n in data["namespaces"]]
            ledger.processes = [RecordedProcess(**p) for p in data["processes"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise LabError(f"{path}: not a lab state file ({e})") from None
        return ledger

    @property
    def owner_alive(self) -> bool:
        return process_start_time(self.owner.pid) == self.owner.start_time

    # --- removing ----------------------------------------------------------------------

    def teardown(self) -> Teardown:
        """Remove everything recorded; safe to call again after a partial teardown."""
        from pyroute2 import netns  # here: the CLI imports this module for its defaults

        done = Teardown(self.run_id)
        done.processes = stop_processes(self.processes)
        self.processes = []
        present = set(netns.listnetns())
        for name in self.namespaces:
            if name in present:
                with contextlib.suppress(OSError):
                    netns.remove(name)
                    done.namespaces.append(name)
        self.namespaces = []
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        return done


def stop_processes(processes: list[RecordedProcess]) -> list[str]:
    """SIGTERM each still-running process, SIGKILL what is left after the grace time."""
    alive = [p for p in processes if process_start_time(p.pid) == p.start_time]
    for p in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + TERM_GRACE
    while time.monotonic() < deadline and any(_running(p) for p in alive):
        time.sleep(0.02)
    for p in alive:
        if _running(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
    return [f"{p.what} (pid {p.pid})" for p in alive]


def _running(p: RecordedProcess) -> bool:
    if process_start_time(p.pid) != p.start_time:
        return False
    # Our own children linger as zombies until waited for; reap them here.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(p.pid, os.WNOHANG)[0] == p.pid:
            return False
    return True


def leftover_ledgers(directory: Path = STATE_DIR) -> Iterator[Ledger]:
    """The state files of runs that did not tear themselves down."""
    if directory.is_dir():
        for path in sorted(directory.glob("lab-*.json")):
            yield Ledger.load(path)
