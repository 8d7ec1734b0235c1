"""Wireshark itself (the Qt program) on a virtual X display, with lmaho's plugin installed.

Used by the GUI smoke test (``tests/test_wireshark_gui.py``) and by
``scripts/wireshark-screenshot``. :func:`wireshark_gui` starts Xvfb on a
free display, installs the dissector with ``lmaho dissector install`` into a
throw-away HOME (so the user's own Wireshark profile is never touched),
opens a capture with ``wireshark -r`` and waits for its main window; on
leaving it ends the two processes it started, by their ids.

A small Lua probe (``-X lua_script:``) runs inside Wireshark next to the
plugin: a tap on ``lmaho`` writes, per packet lmaho dissected, the frame
number and the Info column to a file. That file is the proof that the
installed plugin loaded and dissected in the GUI process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# The programs a session needs, by the Debian package that has them.
PROGRAMS = {"wireshark": "wireshark-qt", "Xvfb": "xvfb", "xdotool": "xdotool"}
SCREEN = (1600, 1000)

PROBE = """
-- Written by lmaho_dissector.gui: proves lmaho dissected in this Wireshark.
local out = assert(io.open(%s, "w"))
local mh_type = Field.new("lmaho.mh_type")
local tap = Listener.new("frame", "lmaho")
function tap.packet(pinfo)
    local value = mh_type()
    out:write(pinfo.number, "\\t", value and value.display or "", "\\n")
    out:flush()
end
"""


class GuiError(Exception):
    """Wireshark or Xvfb did not come up as expected."""


def missing_programs() -> list[str]:
    """The Debian packages whose programs a session needs and that are not installed."""
    return [package for program, package in PROGRAMS.items() if shutil.which(program) is None]


def _free_display() -> int:
    for number in range(90, 200):
        if (
            not Path(f"/tmp/.X11-unix/X{number}").exists()
            and not Path(f"/tmp/.X{number}-lock").exists()
        ):
            return number
    raise GuiError("no free X display number between :90 and :199")


def _lmaho_command() -> str:
    beside = Path(sys.executable).with_name("lmaho")
    found = str(beside) if beside.exists() else shutil.which("lmaho")
    if found is None:
        raise GuiError("the lmaho command is not installed (pip install -e .)")
    return found


@dataclass
class WiresharkSession:
    """A running Wireshark: its display, environment, output and probe file."""

    display: str
    env: dict[str, str]
    wireshark: subprocess.Popen[bytes]
    stderr_path: Path
    probe_path: Path
    installed: Path

    def run(self, *command: str) -> str:
        """Run an X client (xdotool, import, ...) on the session's display."""
        result = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=30, check=False
        )
        return result.stdout

    def window_names(self) -> list[str]:
        """The names of every window Wireshark has mapped (dialogs included)."""
        ids = self.run("xdotool", "search", "--onlyvisible", "--name", ".").split()
        return sorted({self.run("xdotool", "getwindowname", i).strip() for i in ids} - {""})

    def window(self, name: str) -> str | None:
        ids = self.run("xdotool", "search", "--onlyvisible", "--name", name).split()
        return ids[0] if ids else None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def dissected(self) -> list[tuple[int, str]]:
        """(frame, MH Type as shown) of each packet lmaho dissected, as the probe saw them."""
        if not self.probe_path.exists():
            return []
        rows = []
        for line in self.probe_path.read_text(errors="replace").splitlines():
            number, _, info = line.partition("\t")
            if number.isdigit():
                rows.append((int(number), info))
        return rows

    def wait_for(self, name: str, timeout: float) -> str:
        """The id of the first visible window whose name contains ``name``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.wireshark.poll() is not None:
                code = self.wireshark.returncode
                raise GuiError(f"wireshark exited with {code}: {self.stderr()}")
            found = self.window(name)
            if found:
                return found
            time.sleep(0.5)
        raise GuiError(
            f"no window named {name!r} after {timeout:.0f} s: {self.window_names()}; "
            f"wireshark said: {self.stderr()}"
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def wireshark_gui(
    capture: Path,
    home: Path,
    *args: str,
    timeout: float = 60,
    screen: tuple[int, int] = SCREEN,
) -> Iterator[WiresharkSession]:
    """Wireshark showing ``capture`` on a fresh virtual display, lmaho installed in ``home``.

    ``args`` go to wireshark (``-o`` preferences, ``-g`` a packet, ``-Y``);
    its main window fills the ``screen``.
    """
    missing = missing_programs()
    if missing:
        raise GuiError(f"not installed: {', '.join(missing)}")
    number = _free_display()
    display = f":{number}"
    runtime = home / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_RUNTIME_DIR": str(runtime),
        "DISPLAY": display,
    }
    env.pop("WAYLAND_DISPLAY", None)
    width, height = screen
    xvfb = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if xvfb.poll() is not None or time.monotonic() > deadline:
                raise GuiError(f"Xvfb did not start on {display}")
            time.sleep(0.1)
        install = subprocess.run(
            [_lmaho_command(), "dissector", "install"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if install.returncode != 0:
            raise GuiError(f"lmaho dissector install failed: {install.stderr}")
        installed = Path(install.stdout.split()[-1])
        probe = home / "probe.lua"
        probe_path = home / "dissected.txt"
        probe.write_text(PROBE % f'"{probe_path}"')
        stderr_path = home / "wireshark.stderr"
        with stderr_path.open("wb") as err:
            wireshark = subprocess.Popen(
                ["wireshark", "-X", f"lua_script:{probe}", "-r", str(capture), *args],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        session = WiresharkSession(display, env, wireshark, stderr_path, probe_path, installed)
        try:
            main = session.wait_for(capture.name, timeout)
            session.run("xdotool", "windowmove", main, "0", "0")
            session.run("xdotool", "windowsize", main, str(width), str(height))
            yield session
        finally:
            _stop(wireshark)
    finally:
        _stop(xvfb)
