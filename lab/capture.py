"""Every link of the lab into one pcapng: dumpcap per namespace, then mergecap.

Each link is captured at one of its ends: a core link at the first node of
its name (``bmag-plma`` in the bMAG), an MN's access link at the bMAG. Both
ends of a link carry the link's name, so each interface in the merged file
is named after its link. One dumpcap runs per namespace that holds captured
ends; their files are merged in time order into the file of ``--pcap``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .ledger import LabError, Ledger
from .processes import NamespaceProcess
from .topology import Topology

#: How long dumpcap may take to start, plus per interface (about 50 ms each here).
START_TIMEOUT = 30.0
START_PER_INTERFACE = 0.2


def captured_end(link_name: str) -> str:
    """The node at whose end a link is captured."""
    first, second = link_name.split("-")
    return second if second == "bmag" else first


def capture_plan(topology: Topology) -> dict[str, list[str]]:
    """node -> the interfaces captured in its namespace, every link once."""
    plan: dict[str, list[str]] = {}
    for link in topology.links:
        plan.setdefault(captured_end(link.name), []).append(link.name)
    return plan


TOOLS = ("dumpcap", "mergecap", "reordercap")


def require_tools() -> dict[str, str]:
    found = {tool: shutil.which(tool) for tool in TOOLS}
    missing = [tool for tool, path in found.items() if path is None]
    if missing:
        raise LabError(
            f"--pcap needs {', '.join(missing)} (Debian: apt-get install wireshark-common)"
        )
    return {tool: str(path) for tool, path in found.items()}


@dataclass
class _Piece:
    node: str
    path: Path
    log: Path
    process: NamespaceProcess


class LinkCapture:
    """dumpcap in each namespace that holds a captured link end, started and stopped together."""

    def __init__(self, topology: Topology, ledger: Ledger, output: Path) -> None:
        self.output = output
        self._tools = require_tools()
        self._directory = ledger.runtime_dir / "capture"
        self._pieces: list[_Piece] = []
        self._directory.mkdir(exist_ok=True)
        self._plan = capture_plan(topology)
        for node, interfaces in self._plan.items():
            path = self._directory / f"{node}.pcapng"
            log = self._directory / f"{node}.log"
            argv = [self._tools["dumpcap"], "-q", "-B", "8", "-w", str(path)]
            for name in interfaces:
                argv += ["-i", name]
            process = NamespaceProcess(
                ledger, topology.namespaces[node], argv, f"dumpcap in {node}", stderr=log
            )
            self._pieces.append(_Piece(node, path, log, process))
        self._wait_started()

    def _wait_started(self) -> None:
        interfaces = sum(len(names) for names in self._plan.values())
        deadline = time.monotonic() + START_TIMEOUT + START_PER_INTERFACE * interfaces
        for piece in self._pieces:
            # dumpcap writes the section header and interface blocks once every interface is open.
            while not (piece.path.exists() and piece.path.stat().st_size > 0):
                if piece.process.popen.poll() is not None or time.monotonic() > deadline:
                    raise LabError(f"dumpcap in {piece.node} did not start: {_tail(piece.log)}")
                time.sleep(0.02)

    def stop(self) -> Path:
        """Stop every dumpcap (they flush on SIGTERM), merge their files, sort by time.

        One dumpcap writing several interfaces interleaves them as its buffers fill,
        not in time order, and mergecap only interleaves files it takes to be sorted;
        reordercap puts every frame in time order (the checker reads steps in order).
        """
        for piece in self._pieces:
            piece.process.stop(signal.SIGTERM)
        merged = self._directory / "merged.pcapng"
        pieces = [str(p.path) for p in self._pieces if p.path.exists()]
        self._tool("mergecap", "-F", "pcapng", "-w", str(merged), *pieces)
        self._tool("reordercap", str(merged), str(self.output))
        return self.output

    def _tool(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            [self._tools[tool], *args], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise LabError(f"{tool} failed: {result.stderr.strip()}")

    def abandon(self) -> None:
        for piece in self._pieces:
            piece.process.stop(signal.SIGKILL, grace=1.0)


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip().splitlines()[-1]
    except (OSError, IndexError):
        return "no message"
