"""The two ways to start lmaho: the ``lmaho`` script and ``python -m lmaho_cli``."""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points

from lmaho_cli.main import main
from support.cli import LMAHO_COMMAND, lmaho_process
from support.paths import ROOT

COMMANDS = ["decode", "craft", "check", "ladder", "replay", "dissector"]


def test_python_m_lmaho_cli_runs_the_command() -> None:
    assert LMAHO_COMMAND[1:] == ["-m", "lmaho_cli"]
    result = lmaho_process("--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: python -m lmaho_cli" in result.stdout
    listed = [line.split()[1] for line in result.stdout.splitlines() if line[2:3].isalpha()]
    assert [name for name in listed if name in COMMANDS] == COMMANDS


def test_the_lmaho_script_is_main() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"lmaho": "lmaho_cli.main:main"}
    (installed,) = entry_points(group="console_scripts", name="lmaho")
    assert installed.load() is main
