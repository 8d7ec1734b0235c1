"""``lmaho craft``: a capture of the draft's handover, made by running its entities.

The entities of :mod:`lmaho_entities` (bMAG, PLMA, NLMA, policy store, CN,
MNs) run on a virtual clock over simulated Ethernet links; every packet they
send is encoded with :mod:`lmaho_wire` and streamed to the capture file at
the moment it leaves its sender, so memory stays flat however long the run.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from lmaho_entities import (
    DEFAULT_SCENARIO,
    Campaign,
    Packet,
    ReferenceNetwork,
    Scenario,
    Scheduler,
    Signal,
    SimulatedNetwork,
    Transmission,
    Variant,
    load_scenario,
    lost_message_rule,
)
from lmaho_procedure import SIGNALLING_LETTERS
from lmaho_wire.capture import CaptureWriter
from lmaho_wire.errors import LmahoError
from lmaho_wire.schema import BA_STATUS, HANDOVER_STATUS

from .app import app, quiet_on_broken_pipe
from .progress import StderrProgress

CaptureFormat = Literal["pcap", "pcapng"]

# The OUTPUT that means standard output, as "-" means standard input to the readers.
STANDARD_OUTPUT = "-"


class FormatChoice(enum.StrEnum):
    PCAP = "pcap"
    PCAPNG = "pcapng"


# --lost-step: the letters of the steps that send a message, b to i, from the procedure.
StepChoice = enum.StrEnum(  # type: ignore[misc]  # members from the table, not literals
    "StepChoice", {letter.upper(): letter for letter in SIGNALLING_LETTERS}
)


_STATUS_NAMES = {
    "PBA": {v: k for k, v in BA_STATUS.items()},
    "other": {v: k for k, v in HANDOVER_STATUS.items()},
}


# --- the run -------------------------------------------------------------------------


@dataclass
class CraftSummary:
    """What a crafting run wrote."""

    path: Path
    format: CaptureFormat
    mobiles: int
    handovers: int
    completed: int
    failed: int
    packets: int
    signalling: int
    data: int
    lost: int
    octets: int
    seconds: float

    def line(self) -> str:
        rate = self.packets / self.seconds if self.seconds > 0 else 0.0
        lost = f", {self.lost} lost on purpose" if self.lost else ""
        where = "standard output" if str(self.path) == STANDARD_OUTPUT else self.path
        return (
            f"lmaho craft: {where} ({self.format}): {self.packets} packets "
            f"({self.signalling} signalling, {self.data} data{lost}), {self.octets} octets; "
            f"{self.mobiles} MN(s), {self.handovers} handover(s): {self.completed} completed, "
            f"{self.failed} failed; {self.seconds:.2f} s, {rate:,.0f} packets/s"
        )


def comment_for(tx: Transmission, label: Callable[[str], str]) -> str:
    """The pcapng comment of one packet: its step, message, hop, and whose handover.

    ``(b) LMA_HO_Req bMAG -> PLMA [mn1@lmaho.example, handover 1]``; tunnelled
    hops are drawn ``=>``.
    """
    packet = tx.packet
    trace = packet.trace
    sender, receiver = label(tx.hop.sender.name), label(tx.hop.receiver.name)
    payload = packet.payload
    if trace is None:
        return f"{sender} -> {receiver}"
    if isinstance(payload, Signal):
        # A message outside the draft's steps (a re-registration) is named by its label.
        where = f"({trace.step})" if trace.step else trace.label
        text = f"{where} {payload.message} {sender} -> {receiver}"
        if payload.status is not None and not payload.accepted:
            names = _STATUS_NAMES["PBA" if payload.message == "PBA" else "other"]
            text += f", status {payload.status} {names.get(payload.status, '')}".rstrip()
    elif isinstance(payload, Packet):
        text = f"({trace.step}) {trace.label} {sender} => {receiver} in IPv6-in-IPv6"
    else:
        text = f"({trace.step}) {trace.label} {sender} -> {receiver}"
    if trace.attempt:
        answer = isinstance(payload, Signal) and payload.is_response
        text += f", {'answering ' if answer else ''}retransmission {trace.attempt}"
    return f"{text} [{trace.mn}, handover {trace.handover}]"


def craft(
    path: Path,
    *,
    fmt: CaptureFormat,
    scenario: Scenario = DEFAULT_SCENARIO,
    mobiles: int = 1,
    handovers: int = 1,
    variant: Variant = Variant.NONE,
    seed: int = 0,
    progress: bool | None = None,
) -> CraftSummary:
    """Run the handovers and stream every packet into ``path``.

    ``progress``: True draws a progress bar on stderr, None draws one when
    stderr is a terminal, False never does.
    """
    started = time.perf_counter()
    scheduler = Scheduler(scenario.timing.epoch)
    network = SimulatedNetwork(
        scheduler,
        # Separate streams, so the jitter drawn never shifts the MNs' start times.
        rng=random.Random(f"lmaho-jitter-{seed}"),
        jitter=scenario.timing.jitter,
        loss=lost_message_rule(scenario.failures.lost_step)
        if variant is Variant.LOST_MESSAGE
        else None,
    )
    world = ReferenceNetwork(scenario, scheduler, network, variant)
    campaign = Campaign(
        world, mobiles=mobiles, handovers=handovers, rng=random.Random(f"lmaho-offsets-{seed}")
    )
    counts = {"signalling": 0, "data": 0, "octets": 0}
    with CaptureWriter(path, fmt) as writer:
        write = writer.write
        epoch_us = scheduler.epoch_us
        label = world.label

        def sink(tx: Transmission) -> None:
            if isinstance(tx.packet.payload, Signal):
                counts["signalling"] += 1
            else:
                counts["data"] += 1
            counts["octets"] += len(tx.frame)
            when = (epoch_us + tx.time) / 1_000_000
            if fmt == "pcapng":
                write(tx.frame, when, comment=comment_for(tx, label))
            else:
                write(tx.frame, when)

        network.sink = sink
        show = sys.stderr.isatty() if progress is None else progress
        if show:
            with StderrProgress(
                "crafting", mobiles * handovers, "handovers", forced=bool(progress)
            ) as bar:
                done = itertools.count(1)
                campaign.on_handover = lambda _result: bar.update(next(done))
                result = campaign.run()
        else:
            result = campaign.run()

    return CraftSummary(
        path=path,
        format=fmt,
        mobiles=result.mobiles,
        handovers=result.handovers,
        completed=result.completed,
        failed=result.failed,
        packets=counts["signalling"] + counts["data"],
        signalling=counts["signalling"],
        data=counts["data"],
        lost=network.lost,
        octets=counts["octets"],
        seconds=time.perf_counter() - started,
    )


# --- committed samples -----------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One committed capture in pcaps/: its file name, the craft options, what it shows."""

    file: str
    options: tuple[str, ...]
    shows: str


SAMPLES: tuple[Sample, ...] = (
    Sample("handover.pcapng", (), "the default handover: one MN, steps (b)-(k), a comment each"),
    Sample("handover.pcap", (), "the same packets as pcap (no comments)"),
    Sample("mobiles-4.pcapng", ("--mobiles", "4"), "four MNs handing over, interleaved"),
    Sample(
        "back-and-forth.pcapng",
        ("--handovers", "2"),
        "one MN handed over to the NLMA and back to its anchor, the PLMA",
    ),
    Sample(
        "nlma-refuses.pcapng",
        ("--variant", "nlma-refuses"),
        "LMA_HAck with an error, LMA_HO_Resp NLMA_REJECTED_HANDOVER, no PBU",
    ),
    Sample(
        "pba-error.pcapng",
        ("--variant", "pba-error"),
        "the NLMA rejects the PBU; the bMAG re-registers the MN with the PLMA (PBU/PBA)",
    ),
    Sample(
        "policy-update-fails.pcapng",
        ("--variant", "policy-update-fails"),
        "Update_Ack POLICY_UPDATE_FAILED, then PBA with status 128, then the "
        "re-registration with the PLMA",
    ),
    Sample(
        "lost-message.pcapng",
        ("--variant", "lost-message"),
        "the first LMA_HO_Init is lost: the PLMA sends it again after 1 s, "
        "and the bMAG its LMA_HO_Req (answered once the PLMA has the LMA_HAck)",
    ),
)

SAMPLES_README = """\
# Sample captures

Made by `lmaho craft` with the built-in reference network (`cli/scenarios/default.toml`)
and seed 0. Regenerate them all with

    lmaho craft --samples pcaps/

`tests/test_pcaps_current.py` fails when a committed file differs from what that
command writes. The pcapng files carry a comment on each packet naming the draft's
step, e.g. `(b) LMA_HO_Req bMAG -> PLMA [mn1@lmaho.example, handover 1]`.

| file | options | shows |
|---|---|---|
"""


def write_samples(directory: Path) -> list[CraftSummary]:
    """Write every sample of :data:`SAMPLES` and the README into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    summaries = []
    for sample in SAMPLES:
        summaries.append(_run_sample_options(directory / sample.file, sample.options))
    rows = "".join(
        f"| `{s.file}` | `{' '.join(s.options) or '(defaults)'}` | {s.shows} |\n" for s in SAMPLES
    )
    (directory / "README.md").write_text(SAMPLES_README + rows, encoding="utf-8")
    return summaries


def _run_sample_options(path: Path, options: tuple[str, ...]) -> CraftSummary:
    # Samples spell their options as a user would type them; parse the few they use.
    given = dict(zip(options[::2], options[1::2], strict=True))
    return craft(
        path,
        fmt=_format_for(path, None),
        mobiles=int(given.get("--mobiles", 1)),
        handovers=int(given.get("--handovers", 1)),
        variant=Variant(given.get("--variant", "none")),
        progress=False,
    )


def _format_for(path: Path, explicit: FormatChoice | None) -> CaptureFormat:
    if explicit is not None:
        return "pcapng" if explicit is FormatChoice.PCAPNG else "pcap"
    if str(path) == STANDARD_OUTPUT:
        return "pcapng"  # keeps the comments; tshark -r - and lmaho decode - read it
    return "pcapng" if path.suffix.lower() in (".pcapng", ".ntar") else "pcap"


def craft_to_standard_output(**options: Any) -> CraftSummary:
    """:func:`craft` with the capture on standard output (progress and summary stay on
    stderr). The capture writer writes a named file, so the run goes into a spool
    file first, then out: memory stays flat, only the pipe's reader waits longer."""
    if sys.stdout.isatty():
        raise typer.BadParameter(
            "- writes a binary capture to standard output, which is a terminal here; "
            "pipe it (| tshark -r -) or redirect it (> file.pcapng)",
            param_hint="OUTPUT",
        )
    with tempfile.NamedTemporaryFile(prefix="lmaho-craft-", suffix=".cap") as spool:
        summary = craft(Path(spool.name), **options)
        sys.stdout.flush()
        with quiet_on_broken_pipe():
            shutil.copyfileobj(spool, sys.stdout.buffer)
            sys.stdout.buffer.flush()
    return replace(summary, path=Path(STANDARD_OUTPUT))


# --- the command ---------------------------------------------------------------------

EPILOG = "\n".join(
    [
        "[bold]Examples[/bold]",
        "",
        "  [dim]# the draft's handover in the reference network, a comment on each packet[/dim]",
        "  lmaho craft handover.pcapng",
        "",
        "  [dim]# 1000 MNs, each handed over 4 times (to the NLMA and back), as pcap[/dim]",
        "  lmaho craft big.pcap --mobiles 1000 --handovers 4 --seed 7",
        "",
        "  [dim]# the failure variants[/dim]",
        "  lmaho craft refused.pcapng --variant nlma-refuses",
        "  lmaho craft lost.pcapng --variant lost-message --lost-step f",
        "",
        "  [dim]# your addresses, delays and identifiers (see cli/scenarios/default.toml)[/dim]",
        "  lmaho craft lab.pcapng --scenario lab.toml",
        "",
        "  [dim]# to standard output, into another program[/dim]",
        "  lmaho craft - | tshark -r -",
        "",
        "  [dim]# regenerate the committed samples[/dim]",
        "  lmaho craft --samples pcaps/",
        "",
        "[bold]What is in the capture[/bold]: signalling (b)-(i) as docs/wire-format.md section 7"
        " lays it out, then per completed handover the data plane (j) (CN -> PLMA => NLMA =>"
        " bMAG -> MN) and (k) (MN -> bMAG => NLMA -> CN). Every packet is captured when it"
        " leaves its sender, each link with its own MACs. Step (a) is link-layer signalling"
        " and never appears. The same options and seed always give the same bytes.",
    ]
)

HELP = (
    "Write LMA handovers of draft-lim-netext-lma-handover-01 into a pcap or pcapng file.\n\n"
    "The draft's entities (bMAG, PLMA, NLMA, remote policy store, CN, MNs) run as state"
    " machines on a virtual clock; every packet they send is written as it leaves its"
    " sender, streamed, so any number of MNs and handovers fits in constant memory."
)


@app.command("craft", help=HELP, epilog=EPILOG)
def craft_command(
    output: Annotated[
        Path | None,
        typer.Argument(
            help="Capture file to write, e.g. handover.pcapng (a .pcapng name gives pcapng, "
            "anything else pcap, unless --format says otherwise); - writes pcapng to "
            "standard output.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        FormatChoice | None,
        typer.Option(
            "--format",
            "-F",
            help="pcap or pcapng, whatever the file name says. "
            "Example: --format pcapng (comments name each packet's step).",
            show_default=False,
        ),
    ] = None,
    scenario_file: Annotated[
        Path | None,
        typer.Option(
            "--scenario",
            "-s",
            help="TOML file changing the reference network: addresses, MACs, delays, "
            "MN identifiers, prefixes, access technology, lifetimes, traffic. Keys left out "
            "keep the defaults of cli/scenarios/default.toml. Example: --scenario lab.toml",
            show_default=False,
        ),
    ] = None,
    mobiles: Annotated[
        int,
        typer.Option(
            "--mobiles",
            "-n",
            min=1,
            help="Number of MNs, their handovers interleaved in time. Example: --mobiles 500",
        ),
    ] = 1,
    handovers: Annotated[
        int,
        typer.Option(
            "--handovers",
            "-k",
            min=1,
            help="Handovers per MN, alternately to the NLMA and back to the PLMA. "
            "Example: --handovers 4",
        ),
    ] = 1,
    variant: Annotated[
        Variant,
        typer.Option(
            "--variant",
            "-v",
            help="Make every handover fail one way: nlma-refuses (LMA_HAck error, "
            "LMA_HO_Resp NLMA_REJECTED_HANDOVER, no PBU), pba-error (PBA with an error "
            "status), policy-update-fails (Update_Ack POLICY_UPDATE_FAILED, PBA 128), "
            "lost-message (one message lost, retransmitted after the timeout). "
            "Example: --variant pba-error",
        ),
    ] = Variant.NONE,
    lost_step: Annotated[
        StepChoice | None,
        typer.Option(
            "--lost-step",
            help="With --variant lost-message: the step whose first message is lost "
            "(default: the scenario's failures.lost_step, c: LMA_HO_Init). A lost PBU comes "
            "back with a new Sequence Number, any other request with the same one; a lost "
            "response is sent again when its request is. Example: --lost-step f",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            help="Seed of the random MN start offsets and per-hop delay jitter: the same "
            "seed and options give the same bytes. Example: --seed 42",
        ),
    ] = 0,
    epoch: Annotated[
        dt.datetime | None,
        typer.Option(
            "--epoch",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
            help="Virtual clock's time zero (UTC unless an offset is given), for capture "
            "timestamps and Timestamp options; default the scenario's, 2009-10-26. "
            "Example: --epoch 2024-05-01T12:00:00",
            show_default=False,
        ),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Draw a progress bar on stderr (default: only when stderr is a terminal). "
            "Example: --progress",
            show_default=False,
        ),
    ] = None,
    samples: Annotated[
        Path | None,
        typer.Option(
            "--samples",
            help="Instead of one capture, write every committed sample capture (and its "
            "README) into this directory. Example: --samples pcaps/",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
) -> None:
    if samples is not None:
        if output is not None:
            raise typer.BadParameter("give either OUTPUT or --samples, not both")
        for summary in write_samples(samples):
            typer.echo(summary.line(), err=True)
        return
    if output is None:
        raise typer.BadParameter("missing the capture file to write", param_hint="OUTPUT")
    if lost_step is not None and variant is not Variant.LOST_MESSAGE:
        raise typer.BadParameter(
            "only means something with --variant lost-message", param_hint="--lost-step"
        )
    scenario = DEFAULT_SCENARIO if scenario_file is None else load_scenario(scenario_file)
    if lost_step is not None:
        scenario = replace(scenario, failures=replace(scenario.failures, lost_step=lost_step.value))
    if epoch is not None:
        when = epoch if epoch.tzinfo is not None else epoch.replace(tzinfo=dt.UTC)
        scenario = replace(scenario, timing=replace(scenario.timing, epoch=when))
    options: dict[str, Any] = {
        "fmt": _format_for(output, fmt),
        "scenario": scenario,
        "mobiles": mobiles,
        "handovers": handovers,
        "variant": variant,
        "seed": seed,
        "progress": progress,
    }
    try:
        if str(output) == STANDARD_OUTPUT:
            summary = craft_to_standard_output(**options)
        else:
            summary = craft(output, **options)
    except OSError as e:
        raise LmahoError(f"{output}: {e.strerror or e}") from None
    typer.echo(summary.line(), err=True)


__all__ = ["SAMPLES", "CraftSummary", "Sample", "comment_for", "craft", "write_samples"]
