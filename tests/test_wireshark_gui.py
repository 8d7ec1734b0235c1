"""Wireshark itself opens a sample with the plugin `lmaho dissector install` put in place.

Runs the Qt Wireshark on a virtual X display (Xvfb) with a throw-away HOME;
skipped, with the reason, where wireshark, Xvfb or xdotool is missing (CI
installs them: scripts/install-and-test). A Lua probe next to the plugin
records every packet lmaho dissected in the GUI process (lmaho_dissector.gui).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lmaho_dissector.gui import missing_programs, wireshark_gui
from support.paths import PCAPS

MISSING = missing_programs()
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"not installed: {', '.join(MISSING)} (scripts/install-and-test)"
)
# What Wireshark shows when a Lua plugin fails to load or to dissect.
LUA_ERROR_MARKS = ("Lua", "lmaho dissector error", "lmaho.internal_error")


def test_wireshark_loads_the_installed_plugin_and_dissects(tmp_path: Path) -> None:
    sample = PCAPS / "handover.pcapng"
    with wireshark_gui(sample, tmp_path, "-g", "2", timeout=90) as session:
        assert session.installed.is_relative_to(tmp_path), session.installed
        deadline = time.monotonic() + 60
        while len(session.dissected()) < 6 and time.monotonic() < deadline:
            time.sleep(0.5)
        dissected = dict(session.dissected())
        windows = session.window_names()
        stderr = session.stderr()
    # The draft's six messages of the sample, each dissected by lmaho in the GUI.
    assert {dissected.get(n, "").split(" ")[0] for n in (1, 2, 3, 4, 6, 7)} == {
        "LMA_HO_Req",
        "LMA_HO_Init",
        "LMA_HAck",
        "LMA_HO_Resp",
        "Update",
        "Update_Ack",
    }, dissected
    # One main window titled after the capture, and no Lua error dialog or text.
    assert windows == ["handover.pcapng"], windows
    assert not [m for m in LUA_ERROR_MARKS if m in stderr], stderr
