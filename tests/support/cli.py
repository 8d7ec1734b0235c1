"""The ``lmaho`` command run the ways the tests need: in this process, or as a user runs it."""

from __future__ import annotations

import gc
import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

# lmaho in a fresh interpreter, as `python -m lmaho_cli` (the same main() as the script).
LMAHO_COMMAND = [sys.executable, "-m", "lmaho_cli"]


@dataclass(frozen=True)
class Run:
    """What a run of the ``lmaho`` command gave: exit status, stdout, stderr."""

    returncode: int
    stdout: str
    stderr: str


def lmaho(*args: str) -> Run:
    """``lmaho ARGS`` in this process, through the real entry point (errors, exit status)."""
    from lmaho_cli.main import main

    out, err = io.StringIO(), io.StringIO()
    status = 0
    with (
        redirect_stdout(out),
        redirect_stderr(err),
        mock.patch.object(sys, "argv", ["lmaho", *args]),
        collector_kept(),
    ):
        try:
            main()
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else int(e.code is not None)
    return Run(status, out.getvalue(), err.getvalue())


@contextmanager
def collector_kept() -> Iterator[None]:
    """The collector's thresholds as they were, after ``main()`` ran in this process.

    main() sets them for the process it runs in; this one is the test session's, whose
    garbage (pyshark's subprocess transports among it) should go when it went before.
    """
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def lmaho_process(*args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Run:
    """``lmaho ARGS`` as a separate process: what a user sees, tracebacks included.

    ``env`` adds to (or overrides) this process's environment.
    """
    result = subprocess.run(
        [*LMAHO_COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=None if env is None else {**os.environ, **env},
        cwd=cwd,
    )
    return Run(result.returncode, result.stdout, result.stderr)
