"""Entry point of the ``lmaho`` command: one typer app, one module per command."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from lmaho_wire.errors import CaptureError, LmahoError

app = typer.Typer(
    name="lmaho",
    help=(
        "LMA handover tooling for Proxy Mobile IPv6 "
        "(draft-lim-netext-lma-handover-01): craft, replay, decode and check captures."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global_options(
    numbers: Annotated[
        Path | None,
        typer.Option(
            "--numbers",
            help=(
                "TOML file overriding the MH type and option type numbers of the "
                "draft's messages (see docs/wire-format.md). Also LMAHO_NUMBERS."
            ),
            envvar="LMAHO_NUMBERS",
            show_default=False,
        ),
    ] = None,
) -> None:
    if numbers is not None:
        from lmaho_wire.registry import use_numbers_file

        use_numbers_file(numbers)


# The CAPTURE argument of the commands that read one (decode, check, ladder).
CAPTURE_HELP = "pcap or pcapng file (Ethernet, raw IPv6, Linux cooked); - reads standard input."


@contextmanager
def rereadable(capture: Path) -> Iterator[Path]:
    """``capture`` as a file that can be read more than once: standard input
    ("-") is copied to a temporary file first (a pipe can be read only once)."""
    if str(capture) != "-":
        yield capture
        return
    import shutil
    import tempfile

    from lmaho_wire.capture import standard_input

    with tempfile.NamedTemporaryFile(prefix="lmaho-stdin-", suffix=".cap") as spool:
        try:
            shutil.copyfileobj(standard_input(), spool)
            spool.flush()
        except OSError as e:
            raise CaptureError(f"standard input: cannot spool it: {e.strerror or e}") from None
        try:
            yield Path(spool.name)
        except CaptureError as e:
            # Errors name what the user gave, not the spool file.
            raise CaptureError(str(e).replace(spool.name, "standard input")) from None


@contextmanager
def quiet_on_broken_pipe() -> Iterator[None]:
    """A pager or `head` closing the pipe ends the command quietly, exit status 0, as tshark."""
    try:
        yield
    except BrokenPipeError:
        sys.stderr.close()
        raise typer.Exit(0) from None


def _register_commands() -> None:
    # Each module adds its command(s) to ``app``; importing is registering.
    from . import decode  # noqa: F401

    for optional in (
        "craft",
        "check",
        "ladder",
        "replay",
        "dissector_cmd",
        "agent",
        "policy",
        "lab",
    ):
        try:
            __import__(f"{__package__}.{optional}")
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{optional}":
                raise


_register_commands()


def main() -> None:
    """Run the CLI; lmaho's own errors become one line on stderr and exit status 2."""
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
