"""Codec throughput: decode and encode of a PBU and of an LMA_HO_Init, against scapy.

    python benchmarks/bench_codec.py            # full run (about a minute)
    python benchmarks/bench_codec.py --quick    # a few seconds, rougher figures

Both sides work on the same octets. lmaho decodes the Mobility Header with the
checksum verified against the two pseudo-header addresses given as 16-byte
values (what a capture pipeline has in hand after the IPv6 header); scapy
parses the whole IPv6 packet (``IPv6(raw)``: 40 octets of IPv6 header more,
but no checksum verification). Encoding: lmaho builds the Mobility Header from
field values and option objects made on the spot (``option(...)`` + ``build``,
checksum included) or re-encodes a decoded Message; scapy builds
``IPv6()/MIP6MH_BU(...)`` with its layers, the PMIPv6 options as
MIP6OptUnknown (it has no classes for them) and its automatic padding.
Decoding works through a corpus of CORPUS different messages, one per MN
(its own MN Identifier, prefix, link-layer ID and Timestamp), more than the
codec remembers of decoded options: repeating one message would time the
codec's memory of options instead of its decoding. Both sides parse the same
corpus, in the same order.
The figures printed are operations per second (best of several repeats) and
the ratio lmaho / scapy; the exit status is 0 when the PBU's decode and build
meet their targets (25x and 15x). benchmarks/README-codec.md records a run.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import platform
import sys
import timeit
from collections.abc import Callable
from typing import Any

import scapy
from scapy.layers import inet6
from scapy.layers.inet6 import MIP6MH_BU, IPv6, MIP6OptMNID, MIP6OptUnknown, Pad1, PadN

import lmaho_wire
from lmaho_wire import Timestamp, build, decode, option

MAG = "2001:db8:b::1"
PLMA = "2001:db8:a::1"
NLMA = "2001:db8:c::1"
#: Messages in a decoding corpus: more than the 2,048 options the codec remembers.
CORPUS = 4096


def mobile_options(n: int) -> list[lmaho_wire.Option]:
    """What differs from MN to MN: MN Identifier, prefix, link-layer ID, Timestamp."""
    return [
        option("mn_identifier", subtype="NAI", identifier=f"mn{n}@lmaho.example"),
        option("home_network_prefix", prefix_length=64, prefix=f"2001:db8:{n:x}::"),
        option("mn_link_layer_identifier", identifier=f"02:11:22:33:{n >> 8:02x}:{n & 255:02x}"),
        option("timestamp", timestamp=Timestamp(1700000000 + n, 0x8000)),
    ]


def pbu_options(n: int = 1) -> list[lmaho_wire.Option]:
    mn_id, prefix, link_layer, timestamp = mobile_options(n)
    return [
        mn_id,
        prefix,
        option("handoff_indicator", indicator="NEW_INTERFACE"),
        option("access_technology_type", technology="IEEE_802_11"),
        link_layer,
        timestamp,
    ]


def ho_init_options(n: int = 1) -> list[lmaho_wire.Option]:
    mn_id, prefix, link_layer, timestamp = mobile_options(n)
    return [
        mn_id,
        link_layer,
        prefix,
        option("access_technology_type", technology="IEEE_802_11"),
        option("link_local_address", address="fe80::1"),
        option("mag_ipv6_address", address_length=128, address=MAG),
        timestamp,
        option("new_ap_id", id_type="BSSID", identifier="02:aa:bb:cc:dd:ee"),
    ]


def build_pbu(n: int = 1) -> bytes:
    return build(
        "PBU", sequence=n & 0xFFFF, flags={"A", "H"}, lifetime=400, options=pbu_options(n),
        src=MAG, dst=NLMA,
    )  # fmt: skip


def build_ho_init(n: int = 1) -> bytes:
    return build(
        "LMA_HO_Init", sequence=n & 0xFFFF, flags={"T"}, lifetime=400, options=ho_init_options(n),
        src=PLMA, dst=NLMA,
    )  # fmt: skip


def scapy_layer(mh: bytes) -> Any:
    """The same message as scapy layers: MN-ID as MIP6OptMNID, the rest MIP6OptUnknown.

    scapy's automatic padding does not know the PMIPv6 options' alignment rules, so
    the padding is given as its Pad1/PadN layers and autopad is off: scapy then
    builds exactly our octets.
    """
    msg = decode(mh)
    opts: list[Any] = []
    for o in msg.options:
        if o.type == 0:
            opts.append(Pad1())
        elif o.type == 1:
            opts.append(PadN(optdata=o.data))
        elif o.type == 8:
            opts.append(MIP6OptMNID(subtype=1, id=o.data[1:]))
        else:
            opts.append(MIP6OptUnknown(otype=o.type, odata=o.data))
    seq = msg.fields["sequence"]
    units = msg.fields["lifetime"] // 4
    flags = int(msg.fields["flags"])
    layer = MIP6MH_BU(
        seq=seq, flags=flags >> 9, reserved=flags & 0x1FF, mhtime=units, options=opts, autopad=0
    )
    layer.mhtype = msg.mh_type
    return layer


def rate(fn: Callable[[], Any], seconds: float, repeats: int) -> float:
    """Operations per second: the best of ``repeats`` runs of about ``seconds`` each."""
    timer = timeit.Timer(fn)
    n, t = timer.autorange()
    n = max(1, int(n * seconds / max(t, 1e-9)))
    return max(n / timer.timeit(n) for _ in range(repeats))


def bench(
    label: str, mh: bytes, src: str, dst: str, seconds: float, repeats: int
) -> dict[str, float]:
    src16, dst16 = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    packet = bytes(IPv6(src=src, dst=dst, nh=135, plen=len(mh))) + mh
    layer = scapy_layer(mh)
    # Sanity: both sides see the same message in the same octets.
    msg = decode(mh, src16, dst16)
    assert msg.checksum_ok and msg.encode() == mh
    parsed = IPv6(packet)
    assert bytes(parsed.payload) == mh and parsed.payload.seq == msg.fields["sequence"]
    assert len(parsed.payload.options) == len(msg.options)
    builder = build_pbu if msg.name == "PBU" else build_ho_init
    assert builder() == mh
    corpus = [builder(n) for n in range(1, CORPUS + 1)]
    packets = [bytes(IPv6(src=src, dst=dst, nh=135, plen=len(m))) + m for m in corpus]
    next_mh = itertools.cycle(corpus).__next__
    next_packet = itertools.cycle(packets).__next__
    assert bytes(IPv6(src=src, dst=dst) / layer) == packet

    def scapy_build() -> bytes:
        return bytes(IPv6(src=src, dst=dst) / scapy_layer_fresh())

    def scapy_layer_fresh() -> Any:
        return layer.copy()

    results = {
        "lmaho decode": rate(lambda: decode(next_mh(), src16, dst16), seconds, repeats),
        "scapy parse": rate(lambda: IPv6(next_packet()), seconds, repeats),
        "lmaho build": rate(builder, seconds, repeats),
        "lmaho encode()": rate(msg.encode, seconds, repeats),
        "scapy build": rate(scapy_build, seconds, repeats),
    }
    print(f"\n{label} ({len(mh)} octets, {sum(not o.is_padding for o in msg.options)} options)")
    for name, ops in results.items():
        print(f"  {name:<16} {ops:>12,.0f} /s")
    print(f"  decode: lmaho is {results['lmaho decode'] / results['scapy parse']:.1f}x scapy")
    print(f"  build:  lmaho is {results['lmaho build'] / results['scapy build']:.1f}x scapy")
    return results


def teach_scapy_the_draft_requests() -> None:
    """Let scapy parse LMA_HO_Init (type 202) as the Binding Update it mirrors.

    The draft's requests share the BU's fixed part (docs/wire-format.md 3), so
    scapy then does the same work on LMA_HO_Init as on a PBU: fixed part and
    every option, instead of keeping the body as opaque octets.
    """
    schema = lmaho_wire.current_schema()
    for mh_type, body in schema.messages.items():
        if body.role == "request" and mh_type != 5:
            inet6._mip6_mhtype2cls[mh_type] = MIP6MH_BU


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs, rougher figures")
    ap.add_argument("--target", type=float, default=25.0, help="PBU decode speed-up to require")
    ap.add_argument(
        "--build-target", type=float, default=15.0, help="PBU build speed-up to require"
    )
    args = ap.parse_args(argv)
    seconds, repeats = (0.2, 3) if args.quick else (1.0, 5)
    print(
        f"python {platform.python_version()} ({platform.machine()}), "
        f"scapy {scapy.VERSION}, construct {__import__('construct').__version__}"
    )
    teach_scapy_the_draft_requests()
    pbu = bench("PBU", build_pbu(), MAG, NLMA, seconds, repeats)
    ho = bench("LMA_HO_Init", build_ho_init(), PLMA, NLMA, seconds, repeats)
    del ho
    ok = True
    for what, ours, theirs, target in (
        ("decode", "lmaho decode", "scapy parse", args.target),
        ("build", "lmaho build", "scapy build", args.build_target),
    ):
        speedup = pbu[ours] / pbu[theirs]
        met = speedup >= target
        ok = ok and met
        print(f"PBU {what} target {target:.0f}x: {speedup:.1f}x {'met' if met else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
