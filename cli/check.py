"""``lmaho check``: every handover of a capture against the draft's procedure."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from lmaho_check import Handover, Issue, ProcedureAnalyser
from lmaho_check.report import address_text, prefix_text
from lmaho_procedure import BMAG, DATA_STEPS, NLMA, PLMA, POLICY_STORE, STEP_BY_LETTER, Rule
from lmaho_wire.dissect import analyse_capture
from lmaho_wire.errors import CaptureError

from .app import CAPTURE_HELP, app, quiet_on_broken_pipe
from .progress import ProgressOption, reading_progress

EPILOG = """\
Examples:

  lmaho check pcaps/handover.pcapng

  lmaho check capture.pcap --brief             # one line per handover, then the problems

  lmaho check capture.pcap --json | jq '.handovers[] | select(.outcome.status != "completed")'

  lmaho check lab.pcap --require-success       # a refused handover fails the check too

  lmaho check --rules                          # what each rule name in a report means

What is checked, per handover (docs/wire-format.md section 7): steps (b) to (i)
in order; every response paired with its request by peers, Sequence Number and
MN ID; retransmissions by the timers of section 9; the PBU sent to the NLMA
that LMA_HO_Resp named; MN ID, prefixes and MN-LL-ID the same in every message;
mandatory options and flags; statuses that agree; the data plane of (j) and (k)
only in the MN's tunnels and every tunnel carrying only its MNs' prefixes;
Mobility Header checksums.

A handover refused by the NLMA, the policy store or the PBA is a failure the
procedure allows: it is reported as such, not as a violation.

Exit status: 0 no violations; 1 violations (or, with --strict, warnings; with
--require-success, a handover that did not complete); 2 unreadable capture.
"""

DEFAULT_LINGER = 30.0
REPORT_WIDTH = 100  # where long lists of the text report wrap


@app.command("check", epilog=EPILOG)
def check_command(
    capture: Annotated[
        Path | None,
        typer.Argument(help=CAPTURE_HELP, show_default=False),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document on stdout instead of the report.")
    ] = False,
    brief: Annotated[
        bool,
        typer.Option("--brief", help="One line per handover, then only its problems."),
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Warnings make the exit status 1 too.")
    ] = False,
    require_success: Annotated[
        bool,
        typer.Option(
            "--require-success",
            help="A handover that failed, was abandoned or is incomplete makes the exit status 1.",
        ),
    ] = False,
    linger: Annotated[
        float,
        typer.Option(
            "--linger",
            min=0.0,
            help=(
                "Seconds of capture time a handover stays open after its last step, "
                "to collect its data plane (j), (k)."
            ),
        ),
    ] = DEFAULT_LINGER,
    rules: Annotated[
        bool, typer.Option("--rules", help="List the rules a report names, and exit.")
    ] = False,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore",
            metavar="RULE[,RULE]",
            help="Drop the findings of these rules (names as --rules lists them): not "
            "reported, not counted, no effect on the exit status. Example: "
            "--ignore encoding,snapshot-length",
            show_default=False,
        ),
    ] = None,
    progress: ProgressOption = None,
) -> None:
    """Check every LMA handover in CAPTURE against draft-lim-netext-lma-handover-01 4.2.

    Prints, per handover, the MN, its bMAG, PLMA, NLMA and policy store, the
    steps seen with their frame numbers, the data plane, the latency from
    LMA_HO_Req to PBA, and every violation and warning with its frame numbers.
    """
    if rules:
        width = max(map(len, Rule))
        for rule in Rule:
            typer.echo(f"{rule:<{width}}  {rule.meaning}")
        return
    if capture is None:
        raise typer.BadParameter("a capture file is needed", param_hint="CAPTURE")
    ignored = _rules(ignore or [])
    with reading_progress(capture, progress, "checking") as on_read:
        records = analyse_capture(capture, on_read=on_read)
        # Not a capture at all (missing, empty, another format): the error alone, no report.
        first = next(records, None)
        analyser = ProcedureAnalyser(linger=linger, ignore=ignored)
        report: Report = (JsonReport if as_json else TextReport)(
            sys.stdout, str(capture), brief=brief, strict=strict, require_success=require_success
        )
        error: CaptureError | None = None
        with quiet_on_broken_pipe():
            report.start()
            try:
                for record in itertools.chain([first] if first is not None else [], records):
                    for handover in analyser.feed(record):
                        report.handover(handover)
            except CaptureError as e:
                error = e  # cut short: report what was read, then the error (exit status 2)
            for handover in analyser.finish():
                report.handover(handover)
            status = report.finish(analyser, error)
            sys.stdout.flush()
    if error is not None:
        raise error
    raise typer.Exit(status)


def _rules(names: list[str]) -> list[Rule]:
    """The rules ``--ignore`` names (repeated, or comma-separated), in Rule's order."""
    wanted = {name.strip() for text in names for name in text.split(",") if name.strip()}
    known = {rule.value for rule in Rule}
    unknown = sorted(wanted - known)
    if unknown:
        raise typer.BadParameter(
            f"no rule {', '.join(map(repr, unknown))}; `lmaho check --rules` lists them",
            param_hint="--ignore",
        )
    return [rule for rule in Rule if rule.value in wanted]


class Tally:
    """Counts over the whole run: what decides the exit status."""

    def __init__(self) -> None:
        self.handovers = 0
        self.violations = 0
        self.warnings = 0
        self.unsuccessful = 0
        self.retransmissions = 0

    def add(self, handover: Handover) -> None:
        self.handovers += 1
        self.violations += len(handover.violations)
        self.warnings += len(handover.warnings)
        self.retransmissions += len(handover.retransmissions)
        if handover.outcome is None or handover.outcome.status != "completed":
            self.unsuccessful += 1

    def add_global(self, analyser: ProcedureAnalyser) -> None:
        self.violations += analyser.global_counts["violation"]
        self.warnings += analyser.global_counts["warning"]


class Report:
    """Where handovers go as they close, then the summary; decides the exit status."""

    def __init__(
        self, out: TextIO, capture: str, *, brief: bool, strict: bool, require_success: bool
    ) -> None:
        self.out = out
        self.capture = capture
        self.brief = brief
        self.strict = strict
        self.require_success = require_success
        self.tally = Tally()

    def handover(self, handover: Handover) -> None:
        self.tally.add(handover)
        self.write_handover(handover)

    def finish(self, analyser: ProcedureAnalyser, error: CaptureError | None) -> int:
        """Write the summary; the exit status: 0, 1 (see --strict, --require-success) or 2."""
        self.tally.add_global(analyser)
        status = 2 if error is not None else int(bool(self.failure_reason()))
        self.write_summary(analyser, status, error)
        return status

    def failure_reason(self) -> str:
        if self.tally.violations:
            return f"{self.tally.violations} violation(s)"
        if self.strict and self.tally.warnings:
            return "warnings (--strict)"
        if self.require_success and self.tally.unsuccessful:
            return "a handover did not complete (--require-success)"
        return ""

    def start(self) -> None:
        raise NotImplementedError

    def write_handover(self, handover: Handover) -> None:
        raise NotImplementedError

    def write_summary(
        self, analyser: ProcedureAnalyser, status: int, error: CaptureError | None
    ) -> None:
        raise NotImplementedError


# --- text ---------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def _frames(frames: tuple[int, ...]) -> str:
    if not frames:
        return ""
    return ("frame " if len(frames) == 1 else "frames ") + ", ".join(map(str, frames))


def _wrap_items(items: list[str], head: str, width: int) -> list[str]:
    """``items`` joined by commas after ``head``, wrapped between items, never inside one."""
    lines: list[str] = []
    line = head
    for n, item in enumerate(items):
        piece = item + ("," if n < len(items) - 1 else "")
        if len(line) > len(head) and len(line) + 1 + len(piece) > width:
            lines.append(line)
            line = " " * len(head)
        line += piece if len(line) == len(head) else " " + piece
    return [*lines, line]


class TextReport(Report):
    """The human report: streamed, one block per handover as it closes."""

    def __init__(
        self, out: TextIO, capture: str, *, brief: bool, strict: bool, require_success: bool
    ) -> None:
        super().__init__(out, capture, brief=brief, strict=strict, require_success=require_success)
        self._lines: list[str] = []

    def _line(self, text: str = "") -> None:
        self._lines.append(text)

    def _write(self) -> None:
        """Write the lines collected in one go (one echo, not one per line: it counts)."""
        # click drops the colours when the output is not a terminal.
        typer.echo("\n".join(self._lines), file=self.out)
        self._lines.clear()

    def start(self) -> None:
        self._line(f"lmaho check {self.capture}")
        self._line()
        self._write()

    def write_handover(self, handover: Handover) -> None:
        self._handover_lines(handover)
        self._write()

    def _handover_lines(self, handover: Handover) -> None:
        outcome = handover.outcome
        assert outcome is not None
        status: str = outcome.status
        if status != "completed":
            status = status.upper() + (f" at ({outcome.step})" if outcome.step else "")
        latency = handover.latency
        latency_text = f", latency (b)->(i) {_ms(latency)}" if latency is not None else ""
        prefixes = ", ".join(prefix_text(p) for p in sorted(handover.prefixes)) or "no prefix"
        head = f"handover {handover.number}: MN {handover.mn_id or '?'} ({prefixes})"
        if self.brief:
            problems = (
                f"{len(handover.violations)} violation(s), {len(handover.warnings)} warning(s)"
            )
            self._line(f"{head}: {status}{latency_text}; {problems}")
            if outcome.reason:
                self._line(f"  {outcome.reason}")
            for issue in handover.issues:
                self._issue(issue, "  ")
            return
        self._line(head)
        roles = handover.roles
        self._line(
            "  "
            + "  ".join(
                f"{role} {address_text(roles[role])}"
                for role in (BMAG, PLMA, NLMA, POLICY_STORE)
                if role in roles
            )
        )
        self._line(f"  outcome: {status}{latency_text}")
        if outcome.reason:
            self._line(f"    {outcome.reason}")
        self._line("  steps:")
        first_time = min(s.first.time for s in handover.steps.values())
        for letter, state in sorted(handover.steps.items()):
            seen = state.first
            extra = f" {seen.status_name}" if seen.status is not None else ""
            again = (
                f" (again in {_frames(tuple(c.frame for c in state.copies))})"
                if state.copies
                else ""
            )
            self._line(
                f"    {STEP_BY_LETTER[letter].label:<17} frame {seen.frame:<7} "
                f"+{seen.time - first_time:.6f} s  seq {seen.sequence}{extra}{again}"
            )
        if handover.data:
            self._line("  data plane:")
            for step in ("before", *DATA_STEPS):
                segments = [s for s in handover.data.values() if s.step == step]
                if not segments:
                    continue
                title = f"({step}) {DATA_STEPS[step]}" if step in DATA_STEPS else "before (i)"
                hops = [
                    f"{s.hop} {s.first_frame}"
                    + (f" to {s.last_frame} ({s.count} packets)" if s.count > 1 else "")
                    for s in segments
                ]
                for line in _wrap_items(hops, f"    {title:<14} ", REPORT_WIDTH):
                    self._line(line)
        for retransmission in handover.retransmissions:
            self._line(f"  retransmission: {retransmission.describe()}")
        for issue in handover.issues:
            self._issue(issue, "  ")
        self._line()

    def _issue(self, issue: Issue, indent: str) -> None:
        where = _frames(issue.frames)
        where = f" {where}" if where else ""
        if issue.severity == "violation":
            word = typer.style("VIOLATION", fg=typer.colors.RED, bold=True)
        else:
            word = typer.style("warning", fg=typer.colors.YELLOW)
        self._line(f"{indent}{word}{where} [{issue.rule}]: {issue.what}")

    def write_summary(
        self, analyser: ProcedureAnalyser, status: int, error: CaptureError | None
    ) -> None:
        if analyser.issues:
            self._line("outside any handover:")
            for issue in analyser.issues:
                self._issue(issue, "  ")
            if analyser.issues_dropped:
                self._line(f"  ... and {analyser.issues_dropped} more")
            self._line()
        counters = analyser.counters
        self._line(
            f"frames: {counters.frames} ({counters.signalling} signalling, "
            f"{counters.data} data of known MNs, {counters.data_unattributed} other IPv6, "
            f"{counters.malformed} malformed, "
            + (
                f"{counters.forwarded} signalling seen again further along its path, "
                if counters.forwarded
                else ""
            )
            + (f"{counters.cut} cut by the snapshot length, " if counters.cut else "")
            + f"{counters.other} not IPv6)"
        )
        outcomes = ", ".join(f"{n} {status}" for status, n in sorted(analyser.outcomes.items()))
        self._line(f"handovers: {self.tally.handovers}" + (f" ({outcomes})" if outcomes else ""))
        if not self.tally.handovers and counters.unknown_messages:
            self._line(
                f"  {counters.unknown_messages} Mobility Header message(s) of unknown types: "
                "were the draft's messages given other type numbers? (lmaho --numbers FILE)"
            )
        if self.tally.retransmissions:
            self._line(f"retransmitted requests: {self.tally.retransmissions}")
        latency = analyser.latency_summary()
        if latency is not None:
            self._line(
                f"latency (b)->(i): min {_ms(latency['min'])}, median {_ms(latency['median'])}, "
                f"max {_ms(latency['max'])} over {int(latency['count'])} handover(s)"
            )
        if error is not None:
            verdict = "capture unreadable past this point (see the error below)"
        elif self.tally.violations:
            verdict = typer.style(
                f"{self.tally.violations} violation(s)", fg=typer.colors.RED, bold=True
            )
        else:
            verdict = typer.style("no violations", fg=typer.colors.GREEN, bold=True)
        ignored = ""
        if analyser.ignore:
            rules = ", ".join(rule for rule in Rule if rule in analyser.ignore)
            ignored = f" ({analyser.ignored} finding(s) of ignored rules left out: {rules})"
        self._line(f"result: {verdict}, {self.tally.warnings} warning(s){ignored}")
        if status == 1 and not self.tally.violations:
            self._line(f"exit status 1: {self.failure_reason()}")
        self._write()


# --- JSON ----------------------------------------------------------------------------


class JsonReport(Report):
    """One JSON document, written as handovers close (so memory stays flat)."""

    def start(self) -> None:
        self.out.write('{"capture": ' + json.dumps(self.capture) + ', "handovers": [')
        self._first = True

    def write_handover(self, handover: Handover) -> None:
        self.out.write(("\n" if self._first else ",\n") + json.dumps(handover.to_json()))
        self._first = False

    def write_summary(
        self, analyser: ProcedureAnalyser, status: int, error: CaptureError | None
    ) -> None:
        latency = analyser.latency_summary()
        counters = analyser.counters
        tail: dict[str, Any] = {
            "violations": [i.to_json() for i in analyser.global_violations],
            "warnings": [i.to_json() for i in analyser.global_warnings],
            "issues_dropped": analyser.issues_dropped,
            "summary": {
                "frames": counters.frames,
                "signalling": counters.signalling,
                "data": counters.data,
                "other_ipv6": counters.data_unattributed,
                "malformed": counters.malformed,
                "cut": counters.cut,
                "forwarded": counters.forwarded,
                "ignored": {
                    "rules": [rule.value for rule in Rule if rule in analyser.ignore],
                    "findings": analyser.ignored,
                },
                "unknown_messages": counters.unknown_messages,
                "not_ipv6": counters.other,
                "handovers": self.tally.handovers,
                "outcomes": dict(sorted(analyser.outcomes.items())),
                "retransmissions": self.tally.retransmissions,
                "violations": self.tally.violations,
                "warnings": self.tally.warnings,
                "latency_s": None
                if latency is None
                else {k: round(v, 6) if k != "count" else int(v) for k, v in latency.items()},
            },
            "error": None if error is None else str(error),
            "exit_status": status,
        }
        self.out.write("\n]")
        for key, value in tail.items():
            self.out.write(f", {json.dumps(key)}: {json.dumps(value)}")
        self.out.write("}\n")
