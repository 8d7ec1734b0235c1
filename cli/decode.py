"""``lmaho decode``: every Mobility Header in a capture, as a table, a tree or JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lmaho_wire.codec import Message, current_schema, jsonable
from lmaho_wire.dissect import FrameRecord, analyse_capture
from lmaho_wire.errors import CaptureError, SnapshotCut
from lmaho_wire.options import option_noun
from lmaho_wire.schema import UNKNOWN_OPTION
from lmaho_wire.values import FlagBits

from .app import CAPTURE_HELP, app, quiet_on_broken_pipe
from .progress import ProgressOption, reading_progress

EPILOG = """\
Examples:

  lmaho decode pcaps/handover.pcapng

  lmaho decode capture.pcap --verbose          # every field and option, like tshark -V

  lmaho decode capture.pcap --json | jq 'select(.message == "LMA_HO_Resp")'

  lmaho decode capture.pcap --strict           # a bad checksum is an error, not a note

  tcpdump -i eth0 -U -w - 'ip6 proto 135' | lmaho decode -    # live, a line per packet
"""


def _summary(msg: Message) -> str:
    parts: list[str] = []
    if msg.sequence is not None:
        parts.append(f"seq={msg.sequence}")
    if msg.status is not None:
        parts.append(f"status={msg.status.name or int(msg.status)}")
    flags = msg.fields.get("flags")
    if flags is not None and flags.names:
        parts.append("flags=" + "".join(flags.names))
    if "lifetime" in msg.fields:
        parts.append(f"lifetime={msg.fields['lifetime']}s")
    mn = msg.mn_identifier
    if mn is not None:
        parts.append(f"mn={mn}")
    for prefix in msg.home_network_prefixes:
        parts.append(f"hnp={prefix}")
    for key in ("lma_address", "previous_lma_address"):
        opt = msg.option(key)
        if opt is not None:
            parts.append(f"{'plmaa' if key.startswith('previous') else 'lmaa'}={opt.address}")
    return " ".join(parts)


def _checksum_word(msg: Message) -> str:
    if msg.uncaptured:
        return "cut"  # the checksum covers octets the capture did not keep
    return {True: "ok", False: "BAD", None: "-"}[msg.checksum_ok]


def _table_line(rec: FrameRecord, time_zero: float) -> str:
    src = str(rec.payload.src) if rec.payload else "?"
    dst = str(rec.payload.dst) if rec.payload else "?"
    head = f"{rec.frame.number:>6} {rec.frame.time - time_zero:>11.6f}  {src:>24} -> {dst:<24}"
    if rec.message is not None:
        m = rec.message
        tunnel = " [tunnelled]" if rec.payload and rec.payload.tunnelled else ""
        notes = "".join(f"  !{f.kind}" for f in m.findings if f.kind != "checksum")
        return f"{head} {m.name:<12} {_checksum_word(m):>3}  {_summary(m)}{tunnel}{notes}"
    assert rec.error is not None
    kind = "CUT" if isinstance(rec.error, SnapshotCut) else "MALFORMED"
    return f"{head} {kind:<12} {'-':>3}  {rec.error}"


def _tree(rec: FrameRecord, time_zero: float) -> str:
    lines = [_table_line(rec, time_zero)]
    if rec.payload is not None:
        for hop in rec.payload.hops:
            lines.append(f"    IPv6 {hop.src} -> {hop.dst} (hop limit {hop.hop_limit})")
    if rec.message is not None:
        m = rec.message
        lines.append(
            f"    Mobility Header: {m.name} (type {m.mh_type}), {m.length} octets, "
            f"payload proto {m.payload_proto}, checksum 0x{m.checksum:04x} [{_checksum_word(m)}]"
        )
        if m.uncaptured:
            lines.append(
                f"        [the capture did not keep its last {m.uncaptured} octets (snapshot "
                "length): options past them not decoded, checksum not verified]"
            )
        for name, value in m.fields.items():
            lines.append(f"        {name}: {_show(value)}")
        for opt in m.options:
            if opt.is_padding:
                octets = opt.length + 2 if opt.type else 1
                lines.append(
                    f"        {option_noun(opt.title)} ({octets} octet{'s' if octets > 1 else ''})"
                )
                continue
            lines.append(
                f"        {option_noun(opt.title)} "
                f"(type {opt.type}, length {opt.length}, offset {opt.offset})"
            )
            reserved = current_schema().options.get(opt.type, UNKNOWN_OPTION).reserved
            for name, value in opt.fields.items():
                if name not in reserved:
                    lines.append(f"            {name}: {_show(value)}")
        for finding in m.findings:
            lines.append(f"    ! {finding}")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, FlagBits):
        return _flags_text(value)
    if isinstance(value, list):
        return json.dumps(jsonable(value))
    return str(value)


def _flags_text(flags: FlagBits) -> str:
    """``0x80 (T)``, ``0x0000 (none)``: the word as wide as the field, then what is set."""
    octets = max(1, (max(flags.masks.values(), default=1).bit_length() + 7) // 8)
    set_bits = list(flags.names)
    if flags.reserved:
        set_bits.append(f"reserved bits 0x{flags.reserved:0{2 * octets}x}")
    return f"0x{int(flags):0{2 * octets}x} ({', '.join(set_bits) or 'none'})"


@app.command("decode", epilog=EPILOG)
def decode_command(
    capture: Annotated[
        Path,
        typer.Argument(help=CAPTURE_HELP, show_default=False),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per Mobility Header packet.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-V", help="Every field and option, as a tree.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Treat checksum and alignment findings as errors.")
    ] = False,
    absolute_time: Annotated[
        bool,
        typer.Option(
            "--absolute-time",
            help="Times in seconds since 1970, not since the first frame (JSON always so).",
        ),
    ] = False,
    progress: ProgressOption = None,
) -> None:
    """Decode every Mobility Header packet in CAPTURE, tunnelled ones included.

    Bad packets are reported and skipped; an unreadable file exits with status 2.
    """
    out = sys.stdout
    # From a pipe, each packet is shown as it arrives (tshark -l), not when a buffer fills.
    live = str(capture) == "-"
    count = errors = cut = 0
    time_zero: float | None = 0.0 if absolute_time else None
    try:
        with quiet_on_broken_pipe(), reading_progress(capture, progress, "decoding") as on_read:
            for rec in analyse_capture(capture, strict=strict, on_read=on_read):
                if time_zero is None:
                    time_zero = rec.frame.time  # relative to the first frame, as tshark shows it
                if not rec.is_mobility:
                    continue
                count += 1
                if isinstance(rec.error, SnapshotCut) or (rec.message and rec.message.uncaptured):
                    cut += 1
                elif rec.error is not None:
                    errors += 1
                if as_json:
                    out.write(json.dumps(rec.to_json(), separators=(",", ":")) + "\n")
                elif verbose:
                    out.write(_tree(rec, time_zero) + "\n\n")
                else:
                    out.write(_table_line(rec, time_zero) + "\n")
                if live:
                    out.flush()
    except CaptureError:
        out.flush()
        raise
    if not as_json:
        cuts = f", {cut} cut by the capture's snapshot length" if cut else ""
        typer.echo(f"{count} Mobility Header packet(s), {errors} malformed{cuts}", err=True)
