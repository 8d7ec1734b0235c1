"""tshark with the generated dissector loaded, and what its output says about Lua errors."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

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
