"""Processes started inside a lab namespace, recorded in the run's ledger.

A child enters its namespace between fork and exec (``preexec_fn`` calling
``setns``, no ``ip netns exec``) and starts a session of its own, so a
Ctrl-C at the terminal reaches the lab alone, which then stops everything
in order. Each child's standard output is read line by line by a thread;
JSON lines land in a queue the lab waits on.
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from pyroute2 import netns

from .ledger import TERM_GRACE, LabError, Ledger

Event = dict[str, Any]


class NamespaceProcess:
    """One child process in a namespace; its JSON output lines as events."""

    def __init__(
        self,
        ledger: Ledger,
        namespace: str,
        argv: Sequence[str],
        what: str,
        *,
        stderr: Path | None = None,
        events: queue.Queue[tuple[str, Event]] | None = None,
    ) -> None:
        self.what = what
        self.ledger = ledger
        #: Events of this process alone; ``events`` (shared) gets them too, tagged.
        self.events: queue.Queue[Event] = queue.Queue()
        self.lines: list[str] = []
        self._shared = events
        self._signalled = False
        self._stderr: IO[bytes] | None = stderr.open("wb") if stderr else None
        try:
            self.popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr if self._stderr else subprocess.DEVNULL,
                preexec_fn=_enter(namespace),
                start_new_session=True,
            )
        except OSError as e:
            raise LabError(f"cannot start {what}: {e}") from None
        ledger.add_process(self.popen.pid, what)
        self._reader = threading.Thread(target=self._read, daemon=True, name=what)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.events.put(event)
                if self._shared is not None:
                    self._shared.put((self.what, event))
        self.events.put({"event": "exit"})

    def wait_for(self, name: str, timeout: float) -> Event:
        """The next event called ``name``; LabError if the process ends or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise LabError(f"{self.what}: no {name!r} within {timeout:g} s") from None
            if event.get("event") == name:
                return event
            if event.get("event") == "error":
                raise LabError(f"{self.what}: {event.get('error')}")
            if event.get("event") == "exit":
                self.popen.wait()
                tail = "; ".join(self.lines[-3:])
                raise LabError(
                    f"{self.what} exited with status {self.popen.returncode} "
                    f"before {name!r}{': ' + tail if tail else ''}"
                )

    def close_input(self) -> None:
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()

    def send(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send ``sig`` once (unless the process has exited)."""
        if self.popen.poll() is None and not self._signalled:
            self._signalled = True
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM, grace: float = TERM_GRACE) -> int:
        """Send ``sig`` (unless sent already), wait, kill after ``grace``; the exit status."""
        self.send(sig)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self.finish()
        return self.popen.returncode

    def finish(self) -> None:
        """After the process has exited: drain its output, forget it in the ledger."""
        self._reader.join(timeout=2.0)
        self.close_input()
        if self._stderr is not None:
            self._stderr.close()
        self.ledger.forget_process(self.popen.pid)


def _enter(namespace: str) -> Callable[[], None]:
    def enter() -> None:
        netns.setns(namespace, flags=0)

    return enter


def python_module(module: str, *args: str) -> list[str]:
    """The command line running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]
