"""The ``lmaho`` typer app and what its commands share: the global options, the
CAPTURE argument's help, standard input as a capture, quiet broken pipes, and the
command line's manners: usage errors as one line, flags shown as flags.

Each command module registers its command(s) on :data:`app` when imported;
:mod:`lmaho_cli.main` imports them all, so the complete app is ``lmaho_cli.main.app``.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click import exceptions as click_errors  # typer's own copy of click
from typer._click.core import Context as ClickContext
from typer.core import TyperCommand, TyperGroup, TyperOption

from lmaho_wire.errors import CaptureError

USAGE_ERROR_STATUS = 2


# --- manners: one-line usage errors, flags shown as flags --------------------------------


def parameter_name(param: Any) -> str:
    """How the user spells a parameter: its long option (``--mobiles``), or its
    metavar / upper-case name for an argument (``CAPTURE``)."""
    if isinstance(param, TyperOption):
        return max(param.opts, key=len)
    return str(param.metavar or param.name or "?").upper()


def _a_number(kind: str, low: float | None, high: float | None) -> str:
    bounds = [f">= {low:g}" if low is not None else "", f"<= {high:g}" if high is not None else ""]
    return " ".join([kind, " and ".join(b for b in bounds if b)]).strip()


def accepts(param: Any) -> str:
    """What a parameter accepts, in words: ``one of pcap, pcapng``, ``an integer >= 1``."""
    if isinstance(param, TyperOption) and param.is_flag:
        return "no value (it is a flag)"
    desc = param.type_descriptor
    if desc.choices is not None:
        names = [c.value if isinstance(c, enum.Enum) else c for c in desc.choices]
        return "one of " + ", ".join(str(n) for n in names)
    annotation = desc.annotation
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if annotation is int:
        return _a_number("an integer", low, high)
    if annotation is float:
        return _a_number("a number", low, high)
    if desc.is_datetime:
        return "a date or time such as 2024-05-01 or 2024-05-01T12:00:00"
    if desc.is_path:
        return "a path"
    return f"a value ({param.metavar})" if param.metavar else "a value"


def _given(error: BaseException) -> Any:
    """The value a type check refused (its cause is a pydantic ValidationError)."""
    errors = getattr(error.__cause__, "errors", None)
    if callable(errors):
        found = errors()
        if found and "input" in found[0]:
            return found[0]["input"]
    return None


def _hint(param_hint: Sequence[str] | str) -> str:
    return param_hint if isinstance(param_hint, str) else " / ".join(param_hint)


def _find_option(ctx: typer.Context | None, spelled: str) -> Any:
    if ctx is None:
        return None
    return next((p for p in ctx.command.params if spelled in p.opts), None)


def usage_error_line(error: click_errors.ClickException) -> str:
    """One line saying what was wrong on the command line, without click's or
    pydantic's wording: the option (or argument), what it accepts, what was given."""
    ctx: typer.Context | None = getattr(error, "ctx", None)
    message = " ".join(error.message.split())
    if isinstance(error, click_errors.MissingParameter) and error.param is not None:
        kind = "option" if isinstance(error.param, TyperOption) else "argument"
        return f"missing {kind} {parameter_name(error.param)} ({accepts(error.param)})"
    if isinstance(error, click_errors.BadParameter):
        if error.param_hint is not None:
            return f"{_hint(error.param_hint)}: {message}"
        if error.param is None:
            return message
        name = parameter_name(error.param)
        if error.__cause__ is None:  # raised by a command, in its own words
            return f"{name}: {message}"
        return f"{name}: expected {accepts(error.param)}, got {_given(error)!r}"
    if isinstance(error, click_errors.NoSuchOption):
        alike = sorted(error.possibilities or ())
        maybe = f" (did you mean {' or '.join(alike)}?)" if alike else ""
        return f"no such option {error.option_name}{maybe}"
    if isinstance(error, click_errors.BadOptionUsage):
        param = _find_option(ctx, error.option_name)
        if param is not None and "requires an argument" in message:
            return f"{parameter_name(param)}: needs a value, {accepts(param)}"
        if param is not None and "does not take a value" in message:
            return f"{parameter_name(param)}: is a flag and takes no value"
    return message[:1].lower() + message[1:].rstrip(".")


class _Manners:
    """Typer writes ``<bool>`` after every flag in --help, as if it took a value;
    a flag's type column stays empty here (its help says what it does). And every
    usage error knows its command, for the one line :class:`LmahoGroup` prints."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _show_as_flag(param)

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc]
        except click_errors.UsageError as e:
            # The option parser raises without a context; the message needs its command.
            if e.ctx is None:
                e.ctx, e.cmd = ctx, ctx.command
            raise

    def get_help_option(self, ctx: ClickContext) -> TyperOption | None:
        option: TyperOption | None = super().get_help_option(ctx)  # type: ignore[misc]
        _show_as_flag(option)
        return option


def _show_as_flag(param: Any) -> None:
    if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
        param.metavar = ""


class LmahoCommand(_Manners, TyperCommand):
    """Every lmaho command (the class :class:`LmahoTyper` gives them)."""


class LmahoGroup(_Manners, TyperGroup):
    """``lmaho`` and its command groups. The top one runs the command line: a usage
    error is one line on stderr and exit status 2, never a box or a traceback."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            status = super().main(*args, **kwargs)
        except click_errors.NoArgsIsHelpError:  # the help is out already
            status = USAGE_ERROR_STATUS
        except click_errors.ClickException as e:
            ctx = getattr(e, "ctx", None)
            see = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
            typer.echo(f"lmaho: error: {usage_error_line(e)}{see}", err=True)
            status = USAGE_ERROR_STATUS
        except typer.Abort:
            typer.echo("lmaho: aborted", err=True)
            status = 1
        sys.exit(status if isinstance(status, int) else 0)


class LmahoTyper(typer.Typer):
    """A typer app whose groups and commands have lmaho's manners (see above).
    Every command module registers on :data:`app`, or on a LmahoTyper of its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("cls", LmahoGroup)
        super().__init__(*args, **kwargs)

    def command(  # type: ignore[override]
        self, name: str | None = None, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        kwargs.setdefault("cls", LmahoCommand)
        return super().command(name, **kwargs)


def _version(asked: bool) -> None:
    if not asked:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        typer.echo(f"lmaho {version('lmaho')}")
    except PackageNotFoundError:
        typer.echo("lmaho (version unknown: the package is not installed)")
    raise typer.Exit(0)


def _numbers_from_the_environment() -> None:
    """LMAHO_NUMBERS is read when the codec is first used, and importing the commands
    uses it (the entities build tables from the schema), before any command line is
    parsed: a bad file is then reported here, as one line and exit status 2 like any
    other bad input, rather than as a traceback from an import."""
    from lmaho_wire.errors import LmahoError
    from lmaho_wire.registry import current_schema

    try:
        current_schema()
    except LmahoError as e:
        print(f"lmaho: error: LMAHO_NUMBERS={e}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR_STATUS) from None


_numbers_from_the_environment()

app = LmahoTyper(
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
    _version_asked: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print lmaho's version and exit.",
            callback=_version,
            is_eager=True,
            expose_value=False,
        ),
    ] = False,
) -> None:
    if numbers is not None:
        from lmaho_wire.registry import use_numbers_file

        use_numbers_file(numbers)


# The CAPTURE argument of the commands that read one (decode, check, ladder).
CAPTURE_HELP = (
    "pcap or pcapng file, gzip-compressed or not (Ethernet, raw IPv6, Linux cooked); "
    "- reads standard input."
)


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
