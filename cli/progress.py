"""The progress bar on stderr of the long-running commands: craft, replay, check, decode, ladder."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from stat import S_ISREG
from typing import Annotated

import typer

ProgressOption = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="A progress bar on stderr, by octets of the capture read (default: when stderr "
        "is a terminal, unless the output streams to a terminal as well while the capture is "
        "read). Example: --progress",
        show_default=False,
    ),
]


class StderrProgress:
    """A rich progress bar on stderr, redrawn at most ten times a second, by
    :meth:`update` in the caller's thread: rich's own refresh thread would hold the
    GIL while it draws (milliseconds) whenever it liked, and a replay's frames due
    meanwhile would leave late.

    ``total`` None means an open-ended run (a spinner and a count); ``unit``
    names what is counted (``"octets"``: shown in kB/MB, with their rate);
    ``forced`` draws even when stderr is no terminal (``--progress``, as asked).
    The bar is gone once the run ends.
    """

    def __init__(self, description: str, total: int | None, unit: str, forced: bool) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        known = total is not None
        counted = (
            (DownloadColumn(), TransferSpeedColumn())
            if unit == "octets"
            else (
                MofNCompleteColumn() if known else TextColumn("{task.completed}"),
                TextColumn(unit),
                TextColumn("{task.fields[rate]}"),
            )
        )
        self._progress = Progress(
            BarColumn() if known else SpinnerColumn(),
            TextColumn("{task.description}"),
            *counted,
            TimeElapsedColumn(),
            *([TimeRemainingColumn()] if known else []),
            console=Console(stderr=True, force_terminal=True if forced else None),
            transient=True,
            auto_refresh=False,
            # The command's own output goes where it was going: check's report to stdout.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = self._progress.add_task(description, total=total, rate="")
        self._completed = 0
        self._next = 0.0

    def __enter__(self) -> StderrProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.update(self._task, completed=self._completed, refresh=True)
        self._progress.stop()

    def update(self, completed: int, rate: str = "") -> None:
        """``completed`` so far, and a rate to show; redrawn a tenth of a second apart."""
        self._completed = completed
        now = time.monotonic()
        if now >= self._next:
            self._next = now + 0.1
            self._progress.update(self._task, completed=completed, rate=rate, refresh=True)


@contextmanager
def reading_progress(
    capture: os.PathLike[str] | str,
    progress: bool | None,
    description: str,
    *,
    prints_meanwhile: bool = True,
) -> Iterator[Callable[[int], None] | None]:
    """The ``on_read`` of :func:`lmaho_wire.dissect.analyse_capture` that draws the
    capture's octets read as a bar on stderr, or None when no bar is wanted.

    By default only when stderr is a terminal, and stdout is not one if the command
    prints to it while it reads (``prints_meanwhile``): a report streamed to the same
    terminal would tear the bar (and the bar the report). A command that prints only
    afterwards (ladder's first pass) has the bar on any terminal: it is gone by then.
    """
    if progress is None:
        show = sys.stderr.isatty() and not (prints_meanwhile and sys.stdout.isatty())
    else:
        show = progress
    if not show:
        yield None
        return
    total: int | None = None
    if str(capture) != "-":
        with suppress(OSError):  # the reader says what is wrong with it
            status = os.stat(capture)
            if S_ISREG(status.st_mode):  # a named pipe has no size to fill
                total = status.st_size
    with StderrProgress(description, total, "octets", forced=progress is True) as bar:
        yield bar.update
