"""Entry point of the ``lmaho`` command: the app of :mod:`lmaho_cli.app` with every command."""

from __future__ import annotations

import gc
import sys

import typer

from lmaho_wire.errors import LmahoError

from .app import app

# Importing a command module registers its command(s) on ``app``, in the order
# ``lmaho --help`` lists them: the order of the workflow, so not sorted.
# isort: off
from . import decode  # noqa: F401
from . import craft  # noqa: F401
from . import check  # noqa: F401
from . import ladder  # noqa: F401
from . import replay  # noqa: F401
from . import dissector_cmd  # noqa: F401
from . import agent  # noqa: F401
from . import policy  # noqa: F401
from . import lab  # noqa: F401

# isort: on

#: The collector's thresholds for every lmaho command: 10,000 allocations between two
#: collections of the youngest generation, where CPython's default is 700.
GC_THRESHOLDS = (10_000, 10, 10)


def main() -> None:
    """Run the CLI; lmaho's own errors become one line on stderr and exit status 2."""
    # check, decode and ladder keep state for every MN of a capture. With CPython's
    # default thresholds (700, 10, 10) the collector walked that growing heap again and
    # again: about a fifth of `lmaho check`'s CPU on 20,000 MNs, at the same peak memory
    # (benchmarks/README-check.md). Young objects are still collected, a fourteenth as often.
    gc.set_threshold(*GC_THRESHOLDS)
    # Decoded text (an NAI, an AP name) may hold any octets; print them escaped
    # rather than die on a terminal or pipe whose encoding cannot show them.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        app()
    except LmahoError as e:
        typer.echo(f"lmaho: error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("lmaho: interrupted", err=True)
        sys.exit(130)
