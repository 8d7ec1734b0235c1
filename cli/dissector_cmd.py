"""``lmaho dissector generate|install``: the Wireshark Lua dissector made from the schema."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from lmaho_wire.errors import LmahoError

from .app import LmahoTyper, app

dissector_app = LmahoTyper(
    name="dissector",
    help="The Wireshark Lua dissector generated from lmaho's wire schema.",
    epilog=(
        "Examples:\n\n"
        "  lmaho dissector generate\n\n"
        "  lmaho dissector install\n\n"
        "  tshark -X lua_script:dissector/lmaho.lua -r pcaps/handover.pcapng -Y lmaho"
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(dissector_app, name="dissector")

GENERATE_EPILOG = """\
Examples:

  lmaho dissector generate                      # rewrite dissector/lmaho.lua

  lmaho dissector generate -o /tmp/lmaho.lua    # somewhere else

  lmaho --numbers lab.toml dissector generate -o lab.lua   # other default type numbers

  lmaho dissector generate --check              # exit 1 if the committed file is stale
"""

INSTALL_EPILOG = """\
Examples:

  lmaho dissector install                       # into Wireshark's personal Lua plugins folder

  lmaho dissector install --dir ~/.local/lib/wireshark/plugins

Then: tshark -r capture.pcap (no -X needed), or restart Wireshark and open the capture.
"""


def _lua_path() -> Path:
    from lmaho_dissector.generator import OUTPUT

    return OUTPUT


@dissector_app.command("generate", epilog=GENERATE_EPILOG)
def generate_command(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the Lua file (default: dissector/lmaho.lua in the project).",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 if the file differs from a fresh one."),
    ] = False,
) -> None:
    """Generate the Lua dissector by walking the construct schema in lmaho_wire.

    The type numbers in force (--numbers or LMAHO_NUMBERS) become the defaults
    of the dissector's preferences.
    """
    from lmaho_dissector.generator import GeneratorError, generate

    target = output or _lua_path()
    try:
        text = generate()
    except GeneratorError as e:
        raise LmahoError(f"cannot generate the dissector: {e}") from None
    if check:
        current = target.read_text() if target.exists() else ""
        if current != text:
            typer.echo(f"{target} is stale: run `lmaho dissector generate`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{target} is current")
        return
    try:
        target.write_text(text)
    except OSError as e:
        raise LmahoError(f"{target}: cannot write: {e.strerror}") from None
    typer.echo(f"wrote {target} ({len(text.splitlines())} lines)")


def personal_lua_plugins() -> Path:
    """Wireshark's personal Lua plugin folder, as tshark reports it (or its default)."""
    tshark = shutil.which("tshark")
    if tshark is not None:
        try:
            out = subprocess.run(
                [tshark, "-G", "folders"], capture_output=True, text=True, timeout=30, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        m = re.search(r"^Personal Lua Plugins:\s*(.+)$", out, re.MULTILINE)
        if m:
            return Path(m.group(1).strip())
    # Wireshark's default on Linux and macOS (XDG_CONFIG_HOME does not move it).
    return Path.home() / ".local" / "lib" / "wireshark" / "plugins"


@dissector_app.command("install", epilog=INSTALL_EPILOG)
def install_command(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Plugin folder to copy into (default: what `tshark -G folders` calls "
            "Personal Lua Plugins).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Copy lmaho.lua into your personal Wireshark Lua plugins folder and say where.

    Wireshark and tshark load it at start-up from there: no -X lua_script needed.
    """
    source = _lua_path()
    if not source.exists():
        raise LmahoError(f"{source} is missing: run `lmaho dissector generate` first")
    target_dir = directory or personal_lua_plugins()
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / source.name
        shutil.copyfile(source, target)
    except OSError as e:
        raise LmahoError(f"{target_dir}: cannot install: {e.strerror}") from None
    typer.echo(f"installed {target}")
