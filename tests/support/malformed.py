"""A corpus of damaged Mobility Headers, made from the sample handover, with the expert
items each must raise in the Lua dissector; and a capture of all of them."""

from __future__ import annotations

from pathlib import Path

from lmaho_dissector._samples import BMAG, PLMA, Packet, frame, handover_samples, write_capture
from lmaho_wire import build, current_schema, option


def damaged(mh: bytes, cut: int | None = None, **pokes: int) -> bytes:
    out = bytearray(mh if cut is None else mh[:cut])
    for where, value in pokes.items():
        out[int(where[1:])] = value
    return bytes(out)


def corpus() -> list[tuple[bytes, set[str]]]:
    """(Mobility Header, experts at least one of which must show) pairs."""
    schema = current_schema()
    draft = set(schema.numbers.mh_types.values())
    cases: list[tuple[bytes, set[str]]] = []
    seen: set[int] = set()
    for p in handover_samples():
        mh = p.mh
        if mh[2] in seen:
            continue
        seen.add(mh[2])
        ours = mh[2] in draft
        # Cut short at every length (the IPv6 payload length says so too).
        for cut in range(3, len(mh)):
            want = {"lmaho.malformed.truncated"} if cut < 6 else {"lmaho.malformed.header_len_long"}
            cases.append((mh[:cut], want if ours else set()))
        if not ours:
            continue
        # Header Len lies: more than there is, less than there is, less than the fixed part.
        cases.append((damaged(mh, h1=mh[1] + 3), {"lmaho.malformed.header_len_long"}))
        cases.append((damaged(mh, h1=mh[1] - 1), {"lmaho.malformed.after_mh"}))
        cases.append((damaged(mh, h1=0), {"lmaho.malformed.header_len_short"}))
        # The first option (the MN identifier, at offset 12) lies about its length.
        cases.append((damaged(mh, h13=250), {"lmaho.malformed.opt_overrun"}))
        cases.append((damaged(mh, h13=0), {"lmaho.malformed.opt_length"}))
        # A bad checksum and an unexpected Payload Proto.
        cases.append((damaged(mh, h4=mh[4] ^ 0xFF), {"lmaho.checksum.bad"}))
        cases.append((damaged(mh, h0=6), {"lmaho.payload_proto_unexpected"}))
    # An option laid without its alignment padding.
    hnp = option("home_network_prefix", prefix_length=64, prefix="2001:db8::")
    mn = option("mn_identifier", subtype="NAI", identifier="mn1@x")
    mn9 = option("mn_identifier", subtype="NAI", identifier="mn1@xy")
    misaligned = build("LMA_HO_Req", options=[mn9, hnp, option("padn", padding="00:00:00:00:00")],
                       pad=False, src=BMAG, dst=PLMA)  # fmt: skip
    cases.append((misaligned, {"lmaho.opt_misaligned"}))
    # An LMA Address that says IPv6 but carries 4 octets: the address field runs short.
    lmaa = option("lma_address", option_code="IPV4", address="192.0.2.1")
    short = bytearray(build("LMA_HO_Resp", options=[mn, lmaa], src=BMAG, dst=PLMA))
    at = short.index(bytes((lmaa.type, lmaa.length)))
    short[at + 2] = 1  # option code IPV6
    cases.append((bytes(short), {"lmaho.malformed.field_short"}))
    # Octets after the last field of a fixed-size option.
    hi = bytearray(build("LMA_HO_Req", options=[option("handoff_indicator", indicator=1), mn],
                         src=BMAG, dst=PLMA))  # fmt: skip
    hi[13] = 3  # length 3 where 2 is the rule
    cases.append((bytes(hi), {"lmaho.malformed.opt_length"}))
    return cases


def damaged_capture(tmp_path: Path) -> Path:
    """Every case of :func:`corpus` as one packet of a pcap file, bMAG to PLMA."""
    packets = [
        Packet(1.0 + i * 0.001, frame(mh, BMAG, PLMA), mh, "") for i, (mh, _) in enumerate(corpus())
    ]
    return write_capture(tmp_path / "damaged.pcap", packets)
