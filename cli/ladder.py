"""``lmaho ladder``: the message sequence chart of a capture, in the terminal or as SVG.

Two passes over the capture, each streaming: the first learns who is who
(bMAG, PLMA, NLMA, policy store, MN, CN), how many rows there are and which
frames carry violations; the second draws, one row per message or data
packet, so memory stays flat however long the capture is.
"""

from __future__ import annotations

import html
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, TextIO

import typer

from lmaho_check import Entity, FrameEvent, ProcedureAnalyser
from lmaho_procedure import CN, MN
from lmaho_wire.dissect import analyse_capture
from lmaho_wire.errors import CaptureError

from .app import CAPTURE_HELP, app, quiet_on_broken_pipe, rereadable
from .progress import ProgressOption, reading_progress

EPILOG = """\
Examples:

  lmaho ladder pcaps/handover.pcapng

  lmaho ladder capture.pcap --max-rows 40           # the first 40 arrows

  lmaho ladder capture.pcap --mn mn2@lmaho.example  # one MN of a multi-MN capture

  lmaho ladder capture.pcap --svg handover.svg      # an SVG file as well

  lmaho ladder capture.pcap --signalling-only --ascii --width 100

Columns are the entities, named by the role the procedure shows they play
(MN, bMAG, PLMA, NLMA, Policy store, CN; an LMA that is NLMA in one handover
and PLMA in the next is "NLMA/PLMA"), else by address. Each row is one frame:
"(c) LMA_HO_Init seq=1" is step (c) of the draft's section 4.2; data packets
show their step (j) downlink or (k) uplink, tunnelled ones (IPv6-in-IPv6) as
a double line in the terminal and a dashed line in SVG. A "!" before a row
marks a frame that `lmaho check` reports a violation for.
"""

MIN_WIDTH = 60
# More MNs (or CNs) than this share one column: "MNs", "CNs".
MAX_COLUMNS_OF_A_KIND = 4
SHARED_TITLES = (MN, CN)
DEFAULT_WIDTH_RANGE = (100, 120)
GUTTER = 19  # "frame  +seconds ! "


@dataclass(slots=True)
class Column:
    """One entity of the chart: its title (role), subtitle (address) and position."""

    key: str
    title: str
    subtitle: str
    index: int


@dataclass(slots=True)
class Survey:
    """What the first pass learns: the rows to draw, their entities, the flagged frames."""

    rows: int = 0
    rows_total: int = 0
    keys: dict[str, int] = field(default_factory=dict)  # entity key -> first row
    violation_frames: set[int] = field(default_factory=set)
    frames: int = 0
    error: CaptureError | None = None
    last_row_time: float = float("-inf")
    read_all: bool = True  # False: stopped once the drawn rows' handovers were judged
    mns: set[str] = field(default_factory=set)  # the MNs the drawn rows belong to

    @property
    def names_mns(self) -> bool:
        """Rows say their MN when more than one MN's rows are drawn."""
        return len(self.mns) > 1

    @property
    def undrawn(self) -> int:
        """Frames read that are no row (other traffic, other MNs, data left out)."""
        return self.frames - self.rows_total


def _wanted(mn: str | None, signalling_only: bool) -> Callable[[FrameEvent], bool]:
    def wanted(event: FrameEvent) -> bool:
        if signalling_only and event.kind == "data":
            return False
        return mn is None or event.mn == mn

    return wanted


MAX_FLAGGED_FRAMES = 100_000
# A chart needs no data-plane summary per handover: judge each one soon after it ends.
LINGER = 1.0


def _survey(
    capture: Path,
    wanted: Callable[[FrameEvent], bool],
    max_rows: int | None,
    progress: bool | None,
) -> tuple[Survey, ProcedureAnalyser]:
    survey = Survey()

    def on_event(event: FrameEvent) -> None:
        if not wanted(event):
            return
        survey.rows_total += 1
        if max_rows is not None and survey.rows >= max_rows:
            return
        survey.rows += 1
        survey.last_row_time = event.time
        if event.mn:
            survey.mns.add(event.mn)
        survey.keys.setdefault(event.sender, survey.rows)
        survey.keys.setdefault(event.receiver, survey.rows)

    analyser = ProcedureAnalyser(linger=LINGER, on_event=on_event)

    def flag(frames: tuple[int, ...]) -> None:
        if len(survey.violation_frames) < MAX_FLAGGED_FRAMES:
            survey.violation_frames.update(frames)

    # With --max-rows, reading on is only needed until every handover holding a drawn
    # row has been closed and judged (its violations flag rows).
    settled = analyser.linger + analyser.stall_after
    try:
        # The chart is drawn after this first pass: the bar is gone by then.
        with reading_progress(capture, progress, "surveying", prints_meanwhile=False) as on_read:
            for record in analyse_capture(capture, on_read=on_read):
                if (
                    max_rows is not None
                    and survey.rows >= max_rows
                    and record.frame.time > survey.last_row_time + settled
                ):
                    survey.read_all = False
                    break
                for handover in analyser.feed(record):
                    for issue in handover.violations:
                        flag(issue.frames)
    except CaptureError as e:
        if not analyser.counters.frames:
            raise  # not a capture at all: the error alone, no chart
        # Draw what could be read; the error still ends the command with status 2.
        survey.error = e
    for handover in analyser.finish():
        for issue in handover.violations:
            flag(issue.frames)
    for issue in analyser.global_violations:
        flag(issue.frames)
    survey.frames = analyser.counters.frames
    return survey, analyser


def _columns(survey: Survey, analyser: ProcedureAnalyser) -> dict[str, Column]:
    """The column of every entity key drawn; many MNs (or CNs) share one column."""
    entities = [analyser.entities.get(key) or Entity(key) for key in survey.keys]
    # Figure 2's order (MN, bMAG, PLMA, NLMA, Policy store, CN), then by first appearance.
    entities.sort(key=lambda entity: (entity.rank, survey.keys[entity.key]))
    titles = [_title(entity) for entity in entities]
    counts: dict[str, int] = {}
    for title in titles:
        counts[title] = counts.get(title, 0) + 1
    numbered: dict[str, int] = {}
    shared: dict[str, Column] = {}
    column_of: dict[str, Column] = {}
    distinct: list[Column] = []  # left to right
    for entity, title in zip(entities, titles, strict=True):
        if title in SHARED_TITLES and counts[title] > MAX_COLUMNS_OF_A_KIND:
            if title not in shared:
                shared[title] = Column(f"{title}*", f"{title}s", f"{counts[title]} of them", 0)
                distinct.append(shared[title])
            column_of[entity.key] = shared[title]
            continue
        if counts[title] > 1 and title != entity.address:
            # The same title twice (two bMAGs, two MNs): number them.
            numbered[title] = numbered.get(title, 0) + 1
            title = f"{title} {numbered[title]}"
        subtitle = entity.address if title != entity.address else ""
        column_of[entity.key] = Column(entity.key, title, subtitle, 0)
        distinct.append(column_of[entity.key])
    for index, column in enumerate(distinct):
        column.index = index
    return column_of


def _distinct(column_of: dict[str, Column]) -> list[Column]:
    return sorted({id(c): c for c in column_of.values()}.values(), key=lambda c: c.index)


def _title(entity: Entity) -> str:
    if entity.is_mobile:
        return MN
    roles = entity.ordered_roles()
    return "/".join(roles) if roles else entity.address


def _event_text(event: FrameEvent, with_mn: bool = False) -> str:
    """A row's label; ``with_mn`` adds whose it is, for charts of several MNs."""
    text = event.label
    if event.note:
        text += f" [{event.note}]"
    if with_mn and event.mn:
        text += f" for {event.mn}"
    return text


def _shorten(text: str, room: int) -> str:
    """Fit an address by its distinctive end ("…db8:a::2"), anything else by its start."""
    if len(text) <= room or ":" not in text or "@" in text:
        return _fit(text, room)
    return "…" + text[-(room - 1) :] if room > 1 else ""


def _tooltip(event: FrameEvent) -> str:
    text = f"frame {event.frame}: {_event_text(event)}"
    if event.mn:
        text += f", MN {event.mn}"
    if event.detail:
        text += f", {event.detail}"
    return text


# --- the terminal -------------------------------------------------------------------


class TextChart:
    """A chart of fixed-width lines: two per row (label, then arrow)."""

    def __init__(
        self,
        out: TextIO,
        column_of: dict[str, Column],
        width: int,
        ascii_only: bool,
        with_mn: bool = False,
    ) -> None:
        self.out = out
        self.with_mn = with_mn
        self.column_of = column_of
        self.ordered = _distinct(column_of)
        self.count = max(len(self.ordered), 1)
        self.width = width
        span = (width - GUTTER) // self.count
        self.span = max(span, 8)
        self.width = max(width, GUTTER + self.span * self.count)
        self.ascii = ascii_only
        self.lifeline = "|" if ascii_only else "│"
        self.t0: float | None = None
        self.centres = [GUTTER + self.span * c.index + self.span // 2 for c in self.ordered]

    def _blank(self) -> list[str]:
        line = [" "] * self.width
        for x in self.centres:
            line[x] = self.lifeline
        return line

    def _emit(self, line: list[str], style: dict[str, object] | None = None) -> None:
        text = "".join(line).rstrip()
        typer.echo(typer.style(text, **style) if style else text, file=self.out)  # type: ignore[arg-type]

    def _centred(self, texts: list[str]) -> list[str]:
        line = [" "] * self.width
        for x, text in zip(self.centres, texts, strict=True):
            text = _fit(text, self.span - 1)
            start = max(0, x - len(text) // 2)
            line[start : start + len(text)] = list(text)
        return line[: self.width]

    def header(self) -> None:
        ordered = self.ordered
        if not ordered:
            return  # nothing to draw: the footer says so
        head = self._centred([c.title for c in ordered])
        head[0:GUTTER] = list(f"{'frame':>6} {'time':>9}".ljust(GUTTER))
        self._emit(head, {"bold": True})
        self._emit(
            self._centred([_shorten(c.subtitle, self.span - 1) for c in ordered]), {"dim": True}
        )
        self._emit(self._blank())

    def row(self, event: FrameEvent, flagged: bool) -> None:
        if self.t0 is None:
            self.t0 = event.time
        a = self.centres[self.column_of[event.sender].index]
        b = self.centres[self.column_of[event.receiver].index]
        label = self._blank()
        gutter = f"{event.frame:>6} {event.time - self.t0:>+9.4f} {'!' if flagged else ' '}"
        label[0:GUTTER] = list(gutter.ljust(GUTTER))
        text = _event_text(event, self.with_mn)
        start = min(a, b) + 2 if a != b else a + 2
        room = self.width - start
        text = _fit(text, room)
        label[start : start + len(text)] = list(text)
        arrow = self._blank()
        if event.kind == "data" and event.tunnelled:
            shaft = "=" if self.ascii else "═"
        elif event.kind == "data":
            shaft = "-" if self.ascii else "┄"
        else:
            shaft = "-" if self.ascii else "─"
        if a == b:
            arrow[a + 1 : a + 3] = list("-'" if self.ascii else "─┘")
        elif a < b:
            arrow[a + 1 : b] = [shaft] * (b - a - 1)
            arrow[b - 1] = ">" if self.ascii else "▶"
        else:
            arrow[b + 1 : a] = [shaft] * (a - b - 1)
            arrow[b + 1] = "<" if self.ascii else "◀"
        style: dict[str, object] | None = None
        if flagged:
            style = {"fg": typer.colors.RED}
        elif event.kind == "data":
            style = {"dim": True}
        self._emit(label, style)
        self._emit(arrow, style)

    def footer(self, lines: list[str]) -> None:
        for line in lines:
            typer.echo(line, file=self.out)


def _fit(text: str, room: int) -> str:
    if room <= 0:
        return ""
    if len(text) <= room:
        return text
    return text[: max(room - 1, 0)] + "…"


# --- SVG ---------------------------------------------------------------------------


def _escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as XML entities (html rather than xml.sax: far quicker to import)."""
    return html.escape(text, quote=False)


SVG_COLUMN = 170
SVG_LEFT = 110
SVG_TOP = 70
SVG_ROW = 30
SVG_STYLE = """
text { font-family: DejaVu Sans Mono, Menlo, Consolas, monospace; font-size: 11px; }
.entity rect { fill: #eef3fb; stroke: #3b5b92; }
.entity .title { font-weight: bold; font-size: 13px; }
.entity .address, .frame { fill: #555; font-size: 10px; }
.lifeline { stroke: #9aa7bd; stroke-dasharray: 2 3; }
.arrow line { stroke: #1f3d7a; stroke-width: 1.4; }
.arrow.data line { stroke: #2f7d32; }
.arrow.tunnel line { stroke-dasharray: 7 3; stroke-width: 2.2; }
.arrow.malformed line { stroke: #b26a00; }
.arrow.violation line { stroke: #c62828; }
.arrow.violation text { fill: #c62828; }
"""


class SvgChart:
    """Hand-written SVG, streamed: the size is known from the first pass."""

    def __init__(
        self, out: TextIO, column_of: dict[str, Column], rows: int, with_mn: bool = False
    ) -> None:
        self.out = out
        self.with_mn = with_mn
        self.column_of = column_of
        self.ordered = _distinct(column_of)
        self.width = SVG_LEFT + SVG_COLUMN * max(len(self.ordered), 1) + 40
        self.height = SVG_TOP + SVG_ROW * (rows + 1) + 40
        self.bottom = SVG_TOP + SVG_ROW * (rows + 1)
        self.row_number = 0
        self.t0: float | None = None

    def x(self, key: str) -> int:
        return SVG_LEFT + SVG_COLUMN * self.column_of[key].index + SVG_COLUMN // 2

    def _write(self, text: str) -> None:
        self.out.write(text + "\n")

    def header(self) -> None:
        self._write('<?xml version="1.0" encoding="UTF-8"?>')
        self._write(
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
            f'height="{self.height}" viewBox="0 0 {self.width} {self.height}">'
        )
        self._write(f"<style>{SVG_STYLE}</style>")
        self._write(
            "<defs>"
            + "".join(
                f'<marker id="{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
                f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
                f'fill="{colour}"/></marker>'
                for name, colour in (
                    ("head", "#1f3d7a"),
                    ("head-data", "#2f7d32"),
                    ("head-violation", "#c62828"),
                    ("head-malformed", "#b26a00"),
                )
            )
            + "</defs>"
        )
        self._write('<rect width="100%" height="100%" fill="white"/>')
        for column in self.ordered:
            x = SVG_LEFT + SVG_COLUMN * column.index + SVG_COLUMN // 2
            self._write(
                f'<g class="entity"><rect x="{x - SVG_COLUMN // 2 + 8}" y="10" '
                f'width="{SVG_COLUMN - 16}" height="40" rx="4"/>'
                f'<text class="title" x="{x}" y="27" text-anchor="middle">'
                f"{_escape(column.title)}</text>"
                f'<text class="address" x="{x}" y="42" text-anchor="middle">'
                f"{_escape(_shorten(column.subtitle, 26))}</text>"
                f'<line class="lifeline" x1="{x}" y1="50" x2="{x}" y2="{self.bottom}"/></g>'
            )

    def row(self, event: FrameEvent, flagged: bool) -> None:
        if self.t0 is None:
            self.t0 = event.time
        self.row_number += 1
        y = SVG_TOP + SVG_ROW * self.row_number
        x1, x2 = self.x(event.sender), self.x(event.receiver)
        classes = ["arrow", event.kind]
        if event.tunnelled:
            classes.append("tunnel")
        if flagged:
            classes.append("violation")
        marker = (
            "head-violation"
            if flagged
            else {
                "data": "head-data",
                "malformed": "head-malformed",
            }.get(event.kind, "head")
        )
        if x1 == x2:
            path = f'<path d="M{x1},{y} h30 v8 h-28" fill="none" marker-end="url(#{marker})"/>'
            shape = path
        else:
            shape = (
                f'<line x1="{x1}" y1="{y}" x2="{x2 - 4 if x2 > x1 else x2 + 4}" y2="{y}" '
                f'marker-end="url(#{marker})"/>'
            )
        label_x = min(x1, x2) + 6
        step = f' data-step="{event.step}"' if event.step else ""
        if event.mn:
            step += f' data-mn="{_escape(event.mn)}"'
        self._write(
            f'<g class="{" ".join(classes)}" data-frame="{event.frame}"{step}>'
            f'<text class="frame" x="8" y="{y + 4}">{event.frame}  '
            f"{event.time - self.t0:+.4f}{' !' if flagged else ''}</text>"
            f"{shape}"
            f'<text x="{label_x}" y="{y - 5}">{_escape(_event_text(event, self.with_mn))}</text>'
            f"<title>{_escape(_tooltip(event))}</title></g>"
        )

    def footer(self, lines: list[str]) -> None:
        for number, line in enumerate(lines):
            self._write(
                f'<text class="frame" x="8" y="{self.bottom + 16 + 14 * number}">'
                f"{_escape(line)}</text>"
            )
        self._write("</svg>")


# --- the command ---------------------------------------------------------------------


def _terminal_width() -> int:
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        columns = shutil.get_terminal_size((DEFAULT_WIDTH_RANGE[1], 24)).columns
        return min(max(columns, DEFAULT_WIDTH_RANGE[0]), DEFAULT_WIDTH_RANGE[1])
    return DEFAULT_WIDTH_RANGE[1]


@app.command("ladder", epilog=EPILOG)
def ladder_command(
    capture: Annotated[
        Path,
        typer.Argument(help=CAPTURE_HELP, show_default=False),
    ],
    svg: Annotated[
        Path | None,
        typer.Option("--svg", help="Also write the chart as SVG to this file.", show_default=False),
    ] = None,
    max_rows: Annotated[
        int | None,
        typer.Option(
            "--max-rows", min=1, help="Draw at most this many arrows.", show_default=False
        ),
    ] = None,
    mn: Annotated[
        str | None,
        typer.Option("--mn", help="Only this MN's messages and data (its MN Identifier)."),
    ] = None,
    signalling_only: Annotated[
        bool, typer.Option("--signalling-only", help="Leave out the data plane (j), (k).")
    ] = False,
    width: Annotated[
        int | None,
        typer.Option(
            "--width",
            min=MIN_WIDTH,
            help="Terminal chart width in characters (default: the terminal's, 100 to 120).",
            show_default=False,
        ),
    ] = None,
    ascii_only: Annotated[
        bool, typer.Option("--ascii", help="Plain ASCII lines and arrows.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No terminal chart (with --svg).")
    ] = False,
    progress: ProgressOption = None,
) -> None:
    """Draw the message sequence chart of CAPTURE: entities as columns, one arrow per frame."""
    if quiet and svg is None:
        raise typer.BadParameter("--quiet leaves nothing to show without --svg FILE")
    with rereadable(capture) as path:
        _draw(path, svg, max_rows, mn, signalling_only, width, ascii_only, quiet, progress)


def _draw(
    capture: Path,
    svg: Path | None,
    max_rows: int | None,
    mn: str | None,
    signalling_only: bool,
    width: int | None,
    ascii_only: bool,
    quiet: bool,
    progress: bool | None,
) -> None:
    """The chart of a capture that is read twice: once to lay out the columns, once to draw."""
    wanted = _wanted(mn, signalling_only)
    survey, analyser = _survey(capture, wanted, max_rows, progress)
    column_of = _columns(survey, analyser)
    read = "" if survey.read_all else " read"
    footer = [f"{survey.rows} arrow(s) drawn, from {survey.frames} frame(s){read}"]
    if not survey.read_all:
        footer.append("more not drawn (--max-rows)")
    elif survey.rows_total > survey.rows:
        footer.append(f"{survey.rows_total - survey.rows} more not drawn (--max-rows)")
    if survey.undrawn and survey.read_all:
        footer.append(
            f"{survey.undrawn} frame(s) not drawn: other traffic"
            + (", other MNs" if mn is not None else "")
            + (", data" if signalling_only else "")
        )
    if survey.rows == 0:
        footer.append(
            f"nothing to draw: no message or data of MN {mn}"
            if mn is not None
            else "nothing to draw: no Mobility Header message or data of a known MN"
        )
    charts: list[TextChart | SvgChart] = []
    svg_file = None
    if not quiet:
        charts.append(
            TextChart(
                sys.stdout,
                column_of,
                width or _terminal_width(),
                ascii_only=ascii_only,
                with_mn=survey.names_mns,
            )
        )
    if svg is not None:
        try:
            svg_file = svg.open("w", encoding="utf-8", errors="backslashreplace")
        except OSError as e:
            raise CaptureError(f"{svg}: cannot write: {e.strerror}") from None
        charts.append(SvgChart(svg_file, column_of, survey.rows, with_mn=survey.names_mns))
    try:
        with quiet_on_broken_pipe():
            for chart in charts:
                chart.header()
            drawn = 0

            def on_event(event: FrameEvent) -> None:
                nonlocal drawn
                if not wanted(event) or drawn >= survey.rows:
                    return
                drawn += 1
                flagged = event.frame in survey.violation_frames
                for chart in charts:
                    chart.row(event, flagged)

            second = ProcedureAnalyser(linger=LINGER, on_event=on_event)
            try:
                for record in analyse_capture(capture):
                    if drawn >= survey.rows:
                        break
                    second.feed(record)
            except CaptureError:
                pass  # the first pass met it too: survey.error
            for chart in charts:
                chart.footer(footer)
    finally:
        if svg_file is not None:
            svg_file.close()
    if svg is not None and quiet:
        columns = len(_distinct(column_of))
        typer.echo(f"{svg}: {survey.rows} arrow(s), {columns} columns", err=True)
    if survey.error is not None:
        raise survey.error
