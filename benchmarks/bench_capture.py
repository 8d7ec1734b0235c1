"""Reading captures: lmaho's pcap and pcapng readers against dpkt's and scapy's.

    python benchmarks/bench_capture.py [--frames 100000] [--runs 5]

Every reader goes through the same file and hands back every frame's bytes
and time (scapy builds packet objects as it reads: its raw reader,
``RawPcapReader`` / ``RawPcapNgReader``, is the fair peer and is the one
timed). The capture is crafted handovers, signalling and data, written once as
pcap and once as pcapng. Figures are frames per second, the best of
``--runs``, and the ratio lmaho / peer; benchmarks/README-capture.md records
a run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dpkt  # noqa: E402
from scapy.utils import RawPcapNgReader, RawPcapReader  # noqa: E402

from lmaho_cli.craft import craft  # noqa: E402
from lmaho_wire.capture import read_frames  # noqa: E402


def lmaho_frames(path: Path) -> Iterator[bytes]:
    for frame in read_frames(path):
        yield frame.data


def dpkt_frames(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        reader = dpkt.pcapng.Reader(fh) if path.suffix == ".pcapng" else dpkt.pcap.Reader(fh)
        for _ts, buf in reader:
            yield buf


def scapy_frames(path: Path) -> Iterator[bytes]:
    reader = RawPcapNgReader if path.suffix == ".pcapng" else RawPcapReader
    with reader(str(path)) as r:
        for data, _meta in r:
            yield data


READERS: dict[str, Callable[[Path], Iterator[bytes]]] = {
    "lmaho": lmaho_frames,
    "dpkt": dpkt_frames,
    "scapy (raw)": scapy_frames,
}


def rate(reader: Callable[[Path], Iterator[bytes]], path: Path, runs: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(runs):
        start = time.perf_counter()
        count = sum(1 for _ in reader(path))
        best = min(best, time.perf_counter() - start)
    return count / best, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000, help="about this many frames")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # A handover is 22 frames: signalling (b)-(i) and data (j), (k).
        handovers = max(1, args.frames // 22)
        for fmt in ("pcap", "pcapng"):
            path = Path(tmp) / f"handovers.{fmt}"
            craft(path, fmt=fmt, mobiles=handovers, handovers=1, seed=1, progress=False)
            frames = {name: rate(reader, path, args.runs) for name, reader in READERS.items()}
            counts = {count for _, count in frames.values()}
            assert len(counts) == 1, f"the readers disagree on the frame count: {frames}"
            ours = frames["lmaho"][0]
            print(f"{fmt}: {counts.pop()} frames, {path.stat().st_size} octets")
            for name, (per_second, _) in frames.items():
                ratio = "" if name == "lmaho" else f"   lmaho is {ours / per_second:.2f}x"
                print(f"  {name:12} {per_second:12,.0f} frames/s{ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
