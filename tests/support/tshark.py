"""tshark with the generated dissector loaded, and what its output says about Lua errors;
the dissector's view of a capture read through pyshark."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from support.paths import DISSECTOR_LUA

# What tshark or the dissector prints when the Lua code failed on a packet.
LUA_ERROR_MARKS = ("Lua Error", "Lua: Error", "lmaho.internal_error", "lmaho dissector error")


def tshark_run(
    tshark: str, capture: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``tshark -n`` on ``capture`` with lmaho.lua loaded; ``args`` after ``-r`` (a later
    ``-N`` turns some name resolution back on)."""
    return subprocess.run(
        [tshark, "-n", "-X", f"lua_script:{DISSECTOR_LUA}", "-r", str(capture), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def lua_errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines of tshark's output that report a Lua error."""
    text = result.stdout + result.stderr
    return [line for line in text.splitlines() if any(m in line for m in LUA_ERROR_MARKS)]


def tshark_fields(
    tshark: str,
    capture: Path,
    fields: list[str],
    *args: str,
    env: Mapping[str, str] | None = None,
) -> list[list[str]]:
    """The values of ``fields`` per packet (``-T fields``), tshark and Lua quiet."""
    selected = [x for f in fields for x in ("-e", f)]
    result = tshark_run(tshark, capture, "-T", "fields", *selected, *args, env=env)
    assert result.returncode == 0, result.stderr
    # As root, tshark warns on stderr (running as user "root"): not a Lua problem.
    assert "Lua" not in result.stderr.replace('"root"', ""), result.stderr
    return [line.split("\t") for line in result.stdout.splitlines()]


# Field names of what Wireshark's Lua and the dissector add to a packet when Lua code failed.
LUA_ERROR_FIELDS = ("_ws.lua.error", "lmaho.internal_error")


class DissectorView:
    """One packet as pyshark reads it from tshark's PDML: the values shown per field name."""

    def __init__(self, packet: Any) -> None:
        self.packet = packet

    def has_protocol(self, name: str) -> bool:
        return any(layer.layer_name == name for layer in self.packet.layers)

    def shows(self, name: str, *, anywhere: bool = False) -> list[str]:
        """The ``show`` value of every item named ``name`` in the layer of its protocol (the
        name's first part; with ``anywhere``, in every layer), in tree order."""
        values: list[str] = []
        protocol = name.split(".", 1)[0]
        for layer in self.packet.layers:
            if not anywhere and layer.layer_name != protocol:
                continue
            container = layer.get_field(name)
            # pyshark also matches names that only differ in "." and "_": keep the exact one.
            if container is not None and container.main_field.name == name:
                values += [f.show for f in container.all_fields]
        return values


def _release_event_loop() -> None:
    """Undo what pyshark did to the process: it attaches a SafeChildWatcher (a SIGCHLD
    handler writing to the event loop's wakeup pipe) to the main thread's loop. Once the
    capture is read nobody drains that pipe, so the child exits of every later test fill
    it and Python reports "BlockingIOError ... _sighandler_noop" as unraisable."""
    import asyncio
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # child watchers, Python 3.12+
        asyncio.get_child_watcher().close()
        asyncio.set_child_watcher(None)
        asyncio.get_event_loop_policy().get_event_loop().close()
        asyncio.set_event_loop(asyncio.new_event_loop())


def _confirm_crash(
    reader: Any, tshark: str, capture: Path, parameters: list[str], prefs: Mapping[str, str] | None
) -> None:
    """Re-raise pyshark's crash report unless tshark, run the same way again, exits 0.

    asyncio's child watcher reports exit status 255 when something else reaped the
    child first ("Unknown child process pid ..., will report returncode 255"): seen
    once in CI, with every packet read. Then tshark's own exit status is the verdict.
    """
    reader._running_processes.clear()  # else its __del__ raises the same again
    settings = [x for key, value in (prefs or {}).items() for x in ("-o", f"{key}:{value}")]
    again = subprocess.run(
        [tshark, "-n", *parameters, *settings, "-r", str(capture), "-T", "pdml"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if again.returncode != 0:
        raise


def dissector_views(
    tshark: str, capture: Path, prefs: Mapping[str, str] | None = None
) -> list[DissectorView]:
    """Every packet of ``capture`` as tshark shows it with lmaho.lua loaded, read through
    pyshark (one two-pass tshark run, so request/response tracking is filled in)."""
    import pyshark
    from pyshark.capture.capture import TSharkCrashException

    parameters = ["-2", "-X", f"lua_script:{DISSECTOR_LUA}"]
    reader = pyshark.FileCapture(
        str(capture),
        tshark_path=tshark,
        custom_parameters=parameters,
        override_prefs=dict(prefs or {}),
    )
    try:
        views = [DissectorView(packet) for packet in reader]
    finally:
        try:
            reader.close()
        except TSharkCrashException:
            _confirm_crash(reader, tshark, capture, parameters, prefs)
        finally:
            _release_event_loop()
    errors = [(n, v.shows(f, anywhere=True)) for n, v in enumerate(views, 1)
              for f in LUA_ERROR_FIELDS if v.shows(f, anywhere=True)]  # fmt: skip
    assert not errors, f"{capture.name}: Lua errors {errors}"
    return views
