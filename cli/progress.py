"""The progress bar of the long-running commands (craft, replay), on stderr."""

from __future__ import annotations

import time


class StderrProgress:
    """A rich progress bar on stderr, redrawn at most ten times a second, by
    :meth:`update` in the caller's thread: rich's own refresh thread would hold the
    GIL while it draws (milliseconds) whenever it liked, and a replay's frames due
    meanwhile would leave late.

    ``total`` None means an open-ended run (a spinner and a count); ``unit``
    names what is counted; ``forced`` draws even when stderr is no terminal
    (``--progress``, as asked). The bar is gone once the run ends.
    """

    def __init__(self, description: str, total: int | None, unit: str, forced: bool) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        known = total is not None
        self._progress = Progress(
            BarColumn() if known else SpinnerColumn(),
            TextColumn("{task.description}"),
            MofNCompleteColumn() if known else TextColumn("{task.completed}"),
            TextColumn(unit),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            *([TimeRemainingColumn()] if known else []),
            console=Console(stderr=True, force_terminal=True if forced else None),
            transient=True,
            auto_refresh=False,
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
