"""Sample captures for the dissector's tests and benchmark, made from the schema.

Every option of the schema is built once per case of its switches, with
values drawn by walking its construct fields (seeded, so the bytes are the
same on every run), and spread over the draft's six messages and PBU/PBA.
A scripted handover (draft section 4.2, steps (b)-(i)), one with a
retransmitted request and one refused by the PLMA give the tracking
something to pair. Nothing here names an option's fields: a field added to
the schema is in the samples without touching this file.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from construct import (
    Bytes,
    Construct,
    GreedyBytes,
    GreedyRange,
    Renamed,
    Struct,
    Switch,
)

from lmaho_dissector.generator import int_spec
from lmaho_wire import CaptureWriter, Option, Timestamp, build, option
from lmaho_wire.capture import LINKTYPE_ETHERNET
from lmaho_wire.codec import PAD1, PADN, current_schema
from lmaho_wire.fields import (
    FieldVisitor,
    Flags,
    HexColon,
    IPv4Address,
    IPv6Address,
    NamedEnum,
    Scaled,
    Text,
    TimestampField,
    unrename,
)
from lmaho_wire.packet import IPPROTO_IPV6, IPPROTO_MH, ethernet_header, ipv6_header, mac_bytes
from lmaho_wire.schema import Schema

MAC_A = mac_bytes("02:00:00:00:00:0a")
MAC_B = mac_bytes("02:00:00:00:00:0b")

BMAG = "2001:db8:b::1"
PLMA = "2001:db8:a::1"
NLMA = "2001:db8:a::2"
STORE = "2001:db8:c::1"


@dataclass(frozen=True)
class Packet:
    """One frame of a sample capture and the Mobility Header it carries."""

    time: float
    frame: bytes
    mh: bytes
    comment: str


def frame(mh: bytes, src: str, dst: str, tunnel: tuple[str, str] | None = None) -> bytes:
    """Ethernet + IPv6 (+ an outer IPv6 when tunnelled) around a Mobility Header."""
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    inner = ipv6_header(s, d, IPPROTO_MH, len(mh)) + mh
    if tunnel is not None:
        ts, td = (ipaddress.IPv6Address(a).packed for a in tunnel)
        inner = ipv6_header(ts, td, IPPROTO_IPV6, len(inner)) + inner
    return ethernet_header(MAC_B, MAC_A) + inner


def _length_fields(struct: Struct) -> set[str]:
    """Names of fields that a later ``Bytes(this.name)`` uses as its length."""
    names: set[str] = set()
    for sc in struct.subcons:
        c = unrename(sc)
        inner = unrename(c.subcon) if isinstance(c, HexColon | Text) else c
        if isinstance(inner, Bytes) and not isinstance(inner.length, int):
            field = getattr(inner.length, "_Path__field", None)
            if field:
                names.add(field)
    return names


@dataclass(frozen=True)
class _At:
    """What a sample value depends on: earlier siblings, whether it is a length, the case."""

    ctx: dict[str, Any]
    small: bool
    case: int


class _Values(FieldVisitor[_At, Any]):
    """Draws API values for construct fields (the forms lmaho_wire.option accepts)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def octets(self, c: Construct, at: _At) -> bytes:
        c = unrename(c)
        if c is GreedyBytes:
            return bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 9)))
        if isinstance(c, Bytes):
            n = c.length if isinstance(c.length, int) else c.length(at.ctx)
            return bytes(self.rng.randrange(256) for _ in range(n))
        raise NotImplementedError(f"not octets: {c!r}")

    def value(self, c: Construct, ctx: dict[str, Any], small: bool, case: int) -> Any:
        return self.visit(c, _At(ctx, small, case))

    def enum(self, c: NamedEnum, at: _At) -> Any:
        return int(self.rng.choice(sorted(c.decmapping)))

    def flags(self, c: Flags, at: _At) -> Any:
        return self.rng.randrange(1 << (8 * int_spec(c.subcon)[0]))

    def scaled(self, c: Scaled, at: _At) -> Any:
        return self.rng.randrange(1 << (8 * int_spec(c.subcon)[0])) * c.factor

    def ipv6(self, c: IPv6Address, at: _At) -> Any:
        return str(ipaddress.IPv6Address(b"\x20\x01\x0d\xb8" + self.octets(Bytes(12), at)))

    def ipv4(self, c: IPv4Address, at: _At) -> Any:
        return str(ipaddress.IPv4Address(self.octets(Bytes(4), at)))

    def text(self, c: Text, at: _At) -> Any:
        inner = unrename(c.subcon)
        if isinstance(inner, Bytes) and isinstance(inner.length, int):
            return "".join(self.rng.choice("abcxyz019") for _ in range(inner.length))
        return f"mn{self.rng.randrange(1000)}@lmaho.example"

    def hex(self, c: HexColon, at: _At) -> Any:
        return self.octets(c.subcon, at).hex(":")

    def timestamp(self, c: TimestampField, at: _At) -> Any:
        return Timestamp(1_700_000_000 + self.rng.randrange(10**6), self.rng.randrange(65536))

    def switch(self, c: Switch, at: _At) -> Any:
        keys = list(c.cases)
        pick = at.case % (len(keys) + 1)
        sub = c.cases[keys[pick]] if pick < len(keys) else c.default
        return self.visit(sub, _At(at.ctx, at.small, 0))

    def repeat(self, c: GreedyRange, at: _At) -> Any:
        item = unrename(c.subcon)
        return [self.struct(item, _At({}, False, 0)) for _ in range(self.rng.randrange(1, 4))]

    def integer(self, c: Construct, at: _At) -> Any:
        if at.small:
            return self.rng.randrange(0, 7)
        return self.rng.randrange(1 << (8 * int_spec(c)[0]))

    def struct(self, c: Struct, at: _At) -> dict[str, Any]:
        return self.fields(c, at.case)

    def fields(self, struct: Struct, case: int) -> dict[str, Any]:
        """Field values for ``struct``; ``case`` picks the case of each Switch."""
        lengths = _length_fields(struct)
        ctx: dict[str, Any] = {}
        switch_keys = _switch_keys(struct, case)
        for sc in struct.subcons:
            if not isinstance(sc, Renamed):
                continue
            if sc.name in switch_keys:
                ctx[sc.name] = switch_keys[sc.name]
                continue
            ctx[sc.name] = self.value(sc, ctx, sc.name in lengths, case)
        return ctx


def _switch_keys(struct: Struct, case: int) -> dict[str, int]:
    """Values for the fields Switches key on, so that ``case`` selects one case each.

    Case i < len(cases) is the i-th case; case == len(cases) is the default,
    reached with a value no case names.
    """
    keys: dict[str, int] = {}
    enums = {sc.name: unrename(sc) for sc in struct.subcons if isinstance(sc, Renamed)}
    for sc in struct.subcons:
        c = unrename(sc)
        if not isinstance(c, Switch):
            continue
        field = getattr(c.keyfunc, "_Path__field", None)
        if field is None:
            continue
        cases = list(c.cases)
        pick = case % (len(cases) + 1)
        if pick < len(cases):
            keys[field] = cases[pick]
            continue
        enum = enums.get(field)
        candidates = sorted(enum.decmapping) if isinstance(enum, NamedEnum) else []
        others = [k for k in candidates if k not in cases] or [
            k for k in range(255, 0, -1) if k not in cases
        ]
        keys[field] = others[0]
    return keys


def _variants(struct: Struct) -> int:
    n = 1
    for sc in struct.subcons:
        c = unrename(sc)
        if isinstance(c, Switch):
            n = max(n, len(c.cases) + 1)
    return n


def option_samples(schema: Schema | None = None, seed: int = 1) -> list[Option]:
    """Every option of the schema, once per switch case, padding left to ``build``."""
    schema = schema or current_schema()
    values = _Values(random.Random(seed))
    out: list[Option] = []
    for opt_type in sorted(schema.options):
        if opt_type in (PAD1, PADN):
            continue
        body = schema.options[opt_type]
        struct = unrename(body.subcon)
        for case in range(_variants(struct)):
            fields = values.fields(struct, case)
            out.append(option(body.key, **fields))
    return out


def message_samples(schema: Schema | None = None, seed: int = 2) -> Iterator[Packet]:
    """Each message of the schema with options spread so that every option appears.

    The draft's messages carry the standard options; PBU/PBA carry the
    draft's new options too, so that Wireshark's own dissector hands them to
    lmaho through its mip6.option table.
    """
    schema = schema or current_schema()
    rng = random.Random(seed)
    values = _Values(rng)
    options = option_samples(schema, seed)
    mn_id = option("mn_identifier", subtype="NAI", identifier="mn7@lmaho.example")
    draft_types = set(schema.numbers.option_types.values())
    draft_opts = [o for o in options if o.type in draft_types]
    keys = [(t, schema.messages[t]) for t in sorted(schema.messages)]
    chunks: dict[int, list[Option]] = {t: [] for t, _ in keys}
    draft_msgs = [t for t, _ in keys if t in schema.numbers.mh_types.values()]
    for i, opt in enumerate(options):
        chunks[draft_msgs[i % len(draft_msgs)]].append(opt)
    t = 1.0
    for round_ in range(2):
        for mh_type, body in keys:
            fields = values.fields(unrename(body.subcon), round_)
            if body.proxy_flag:
                masks = unrename(body.subcon)
                for sc in masks.subcons:
                    c = unrename(sc)
                    if isinstance(c, Flags) and body.proxy_flag in c.masks:
                        fields[sc.name] |= c.masks[body.proxy_flag]
            extra = chunks[mh_type] if round_ == 0 else list(reversed(chunks[mh_type]))
            if body.proxy_flag:
                extra = draft_opts
            opts = [mn_id, *extra]
            if round_ == 1:
                opts.insert(1, option("pad1"))
            mh = build(mh_type, options=opts, src=BMAG, dst=PLMA, **fields)
            tunnel = (NLMA, PLMA) if round_ == 1 and mh_type in draft_msgs[:1] else None
            yield Packet(t, frame(mh, BMAG, PLMA, tunnel), mh, f"sample {body.name}")
            t += 0.001


def handover(
    mn: str, start: float, *, seq: int, refuse: bool = False, retransmit: bool = False
) -> list[Packet]:
    """Steps (b)-(i) of draft section 4.2 for one MN, 1 ms apart."""
    mn_id = option("mn_identifier", subtype="NAI", identifier=mn)
    hnp = option("home_network_prefix", prefix_length=64, prefix="2001:db8:100::")
    now = option("timestamp", timestamp=Timestamp(1_700_000_000, 0))
    ap = option("new_ap_id", id_type="BSSID", identifier="02:aa:bb:cc:dd:ee")
    steps: list[tuple[str, str, str, dict[str, Any], list[Option]]] = [
        ("LMA_HO_Req", BMAG, PLMA, {"sequence": seq, "lifetime": 400}, [mn_id, hnp, ap, now]),
    ]
    if retransmit:
        steps.append(steps[0])
    if refuse:
        steps.append(
            ("LMA_HO_Resp", PLMA, BMAG, {"sequence": seq, "status": 132}, [mn_id, hnp]),
        )
    else:
        nlma = option("lma_address", option_code="IPV6", address=NLMA)
        plma = option("previous_lma_address", option_code="IPV6", address=PLMA)
        steps += [
            ("LMA_HO_Init", PLMA, NLMA, {"sequence": seq + 1, "flags": {"T"}}, [mn_id, hnp, now]),
            ("LMA_HAck", NLMA, PLMA, {"sequence": seq + 1, "flags": {"T"}}, [mn_id, hnp]),
            ("LMA_HO_Resp", PLMA, BMAG, {"sequence": seq, "lifetime": 400}, [mn_id, hnp, nlma]),
            ("PBU", BMAG, NLMA, {"sequence": seq + 2, "flags": {"A", "H"}}, [mn_id, hnp, now]),
            ("Update", NLMA, STORE, {"sequence": seq + 3}, [mn_id, nlma, plma]),
            ("Update_Ack", STORE, NLMA, {"sequence": seq + 3}, [mn_id]),
            ("PBA", NLMA, BMAG, {"sequence": seq + 2, "lifetime": 400}, [mn_id, hnp, now]),
        ]
    out = []
    for i, (name, src, dst, fields, opts) in enumerate(steps):
        mh = build(name, options=opts, src=src, dst=dst, **fields)
        out.append(Packet(start + i * 0.001, frame(mh, src, dst), mh, f"{mn}: {name}"))
    return out


def handover_samples() -> list[Packet]:
    """A complete handover, one with a retransmitted request, one the PLMA refuses."""
    return (
        handover("mn1@lmaho.example", 10.0, seq=100)
        + handover("mn2@lmaho.example", 20.0, seq=200, retransmit=True)
        + handover("mn3@lmaho.example", 30.0, seq=300, refuse=True)
    )


def write_capture(path: Path, packets: Iterable[Packet], fmt: str | None = None) -> Path:
    """Write ``packets`` as pcap or pcapng (by suffix unless ``fmt`` is given)."""
    kind = fmt or ("pcapng" if path.suffix == ".pcapng" else "pcap")
    with CaptureWriter(path, kind, LINKTYPE_ETHERNET) as w:  # type: ignore[arg-type]
        for p in packets:
            w.write(p.frame, p.time, p.comment if kind == "pcapng" else None)
    return path


def write_samples(directory: Path) -> list[Path]:
    """The dissector's own sample captures: all messages and options, and handovers."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        write_capture(directory / "dissector-messages.pcap", message_samples()),
        write_capture(directory / "dissector-handovers.pcapng", handover_samples()),
    ]


def bulk_handovers(count: int) -> Iterator[Packet]:
    """``count`` packets of back-to-back handovers of distinct MNs (benchmark input)."""
    n = 0
    i = 0
    while n < count:
        for p in handover(f"mn{i}@lmaho.example", 100.0 + i * 0.01, seq=(i * 4) % 60000):
            if n >= count:
                return
            yield p
            n += 1
        i += 1
