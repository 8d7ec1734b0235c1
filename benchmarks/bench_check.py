"""``lmaho check`` on a large capture, its stages, and ``tshark -2 -r`` on the same file.

    python benchmarks/bench_check.py [--mobiles 20000] [--capture FILE] [--baseline PYTHON]
                                     [--stages read,walk,decode]

Times are CPU time (user + system, from getrusage / wait4), not wall time:
the machine these run on is shared and loaded, and CPU time is what a run
costs whatever else runs beside it. In one run, on one file:

* ``read``: a loop that only reads the frames (``read_frames``), the floor
  any stage above it stands on;
* ``walk``: read, and find each frame's IPv6 payload (link layer, extension
  headers, tunnels: ``find_ipv6``);
* ``decode``: read, walk, reassemble and decode every Mobility Header
  (``analyse_capture``, what ``lmaho decode`` does without printing);
* ``check (in process)``: ``decode`` fed to the ``ProcedureAnalyser``;
  these two run in a fresh interpreter, one after the other, as the
  baseline's do (the stages before them leave caches behind that the
  garbage collector would walk again and again);
* ``floor: decode + pairing``: ``decode`` fed to a stand-in for the least
  any checker of this procedure does a frame (pair requests and responses,
  group signalling by MN Identifier, count data per address pair; no rule,
  no report), in the same interpreter after them: the yardstick for issue
  10's 60,000 frames/s, as ``--floors`` is for the Lua dissector;
* ``lmaho check``: the command itself, in a child process, report to
  /dev/null; its peak resident memory gives the memory per MN, against the
  same command on a capture of one MN;
* ``lmaho check, baseline`` (with ``--baseline PYTHON``): the command of
  another checkout (e.g. main's), timed the same way, and its ``decode`` and
  ``check (in process)`` stages, run by that interpreter;
* ``tshark -2 -r``: Wireshark's two-pass read of the same file, dissecting
  every frame (IPv6, Mobility Header), output to /dev/null.

``--stages`` times only the in-process stages named (e.g. ``read,walk,decode``
while working on the wire side), without the commands.

benchmarks/README-check.md records a run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lmaho_cli.craft import craft  # noqa: E402
from lmaho_wire.capture import read_frames  # noqa: E402
from lmaho_wire.dissect import analyse_capture  # noqa: E402
from lmaho_wire.packet import find_ipv6  # noqa: E402

# Issue 10's target for `lmaho check` on the 20,000-MN capture.
TARGET_RATE = 60_000


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def drain(items: Iterable[object]) -> int:
    count = 0
    for _ in items:
        count += 1
    return count


def stage_read(path: Path) -> int:
    return drain(read_frames(path))


def stage_decode(path: Path) -> int:
    return drain(analyse_capture(path))


def stage_walk(path: Path) -> int:
    count = 0
    for frame in read_frames(path):
        find_ipv6(frame.data, frame.linktype)
        count += 1
    return count


STAGES: dict[str, Callable[[Path], int]] = {
    "read": stage_read,
    "walk": stage_walk,
    "decode": stage_decode,
}
# A whole run times decode (and check) in a fresh interpreter instead: see STAGES_IN_CHILD.
RUN_STAGES = ("read", "walk")


def child(command: list[str], cwd: Path | None = None) -> tuple[float, int]:
    """CPU seconds and peak resident KiB of a command, its output thrown away."""
    with open(os.devnull, "wb") as devnull:
        process = subprocess.Popen(command, stdout=devnull, stderr=devnull, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed (status {status})")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def lmaho_check(path: Path, python: str = sys.executable) -> list[str]:
    return [python, "-m", "lmaho_cli", "check", str(path)]


# The decode and check stages in a fresh interpreter (whatever checkout it imports).
STAGES_IN_CHILD = """
import gc, resource, sys
from lmaho_check import ProcedureAnalyser
from lmaho_wire.dissect import analyse_capture
try:  # the collector's thresholds the command sets (checkouts since they were set)
    from lmaho_cli.main import GC_THRESHOLDS
    gc.set_threshold(*GC_THRESHOLDS)
except ImportError:
    pass
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
def pairing(records):
    # The floor: the least any checker of this procedure does a frame on top of decoding.
    # Requests and responses paired by addresses and Sequence Number, signalling grouped
    # by MN Identifier, data counted per address pair. No rule applied, nothing reported.
    pending, by_mn, flows = {}, {}, {}
    for record in records:
        message, payload = record.message, record.payload
        if message is not None:
            fields = message.fields
            mn = None
            for opt in message.options:
                if opt.key == "mn_identifier":
                    mn = opt.fields.get("identifier")
                    break
            if "status" in fields:
                pending.pop((payload.dst, payload.src, fields.get("sequence")), None)
            else:
                pending[payload.src, payload.dst, fields.get("sequence")] = message.name
            by_mn.setdefault(mn, []).append(record.frame.number)
        elif payload is not None:
            key = payload.src, payload.dst
            flows[key] = flows.get(key, 0) + 1
start = cpu()
for _ in analyse_capture(sys.argv[1]):
    pass
decoded = cpu()
for _ in ProcedureAnalyser().run(analyse_capture(sys.argv[1])):
    pass
checked = cpu()
floor = None
if FLOOR:
    pairing(analyse_capture(sys.argv[1]))
    floor = cpu() - checked
print(decoded - start, checked - decoded, floor)
"""


def stages_in_child(
    path: Path, python: str, cwd: Path, floor: bool = False
) -> tuple[float, float, float | None]:
    """CPU seconds of ``decode``, ``check (in process)`` and (``floor``) ``decode + pairing``."""
    script = f"FLOOR = {floor}\n" + STAGES_IN_CHILD
    out = subprocess.run(
        [python, "-c", script, str(path.resolve())],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), None if out[2] == "None" else float(out[2])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mobiles", type=int, default=20_000, help="MNs of the crafted capture")
    parser.add_argument("--capture", type=Path, help="use this capture (crafted with --mobiles)")
    parser.add_argument(
        "--baseline",
        metavar="PYTHON",
        help="also time `lmaho check` run by this interpreter (another checkout's venv)",
    )
    parser.add_argument(
        "--stages",
        type=lambda text: text.split(","),
        metavar="NAMES",
        help=f"only these in-process stages, comma-separated ({', '.join(STAGES)})",
    )
    args = parser.parse_args()
    if args.stages is not None and not set(args.stages) <= STAGES.keys():
        parser.error(f"--stages: known stages are {', '.join(STAGES)}")
    names = RUN_STAGES if args.stages is None else args.stages
    stages = {name: STAGES[name] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        path = args.capture
        if path is None:
            path = Path(tmp) / "big.pcapng"
            print(f"crafting {args.mobiles} MNs into {path} ...", flush=True)
            craft(path, fmt="pcapng", mobiles=args.mobiles, handovers=1, seed=1, progress=False)
        print(f"{path}: {path.stat().st_size:,} octets, {args.mobiles} MNs")
        rows: list[tuple[str, int, float]] = []
        for name, stage in stages.items():
            start = cpu_seconds()
            frames = stage(path)
            rows.append((name, frames, cpu_seconds() - start))
        if args.stages is not None:
            print_rows(rows)
            return 0
        one = Path(tmp) / "one.pcapng"
        craft(one, fmt="pcapng", mobiles=1, handovers=1, seed=1, progress=False)
        frames = rows[0][1]
        decode, check, floor = stages_in_child(path, sys.executable, ROOT, floor=True)
        rows.append(("decode", frames, decode))
        rows.append(("check (in process)", frames, check))
        assert floor is not None
        rows.append(("floor: decode + pairing", frames, floor))
        seconds, peak = child(lmaho_check(path))
        rows.append(("lmaho check", frames, seconds))
        if args.baseline:
            # Run from the capture's directory: the baseline must not import this checkout.
            seconds, _ = child(lmaho_check(path.resolve(), args.baseline), cwd=path.parent)
            rows.append(("lmaho check, baseline", frames, seconds))
            # From the capture's directory: the baseline must not import this checkout.
            decode, check, _ = stages_in_child(path, args.baseline, path.parent)
            rows.append(("decode, baseline", frames, decode))
            rows.append(("check (in process), baseline", frames, check))
        _, peak_one = child(lmaho_check(one))
        tshark = shutil.which("tshark")
        if tshark is not None:
            seconds, tshark_peak = child([tshark, "-2", "-r", str(path)])
            rows.append(("tshark -2 -r", frames, seconds))
        print_rows(rows)
        # What each layer adds: the analyser over decoding, the command over checking.
        times = {name: seconds for name, _, seconds in rows}
        for name, over, base in (
            ("analyser", "check (in process)", "decode"),
            ("analyser, baseline", "check (in process), baseline", "decode, baseline"),
            ("pairing stand-in", "floor: decode + pairing", "decode"),
            ("command over check", "lmaho check", "check (in process)"),
        ):
            if over in times and base in times:
                added = times[over] - times[base]
                print(
                    f"  {name:<28} adds {added:6.2f} s CPU, {added / frames * 1e6:5.1f} us a frame"
                )
        print(
            f"  lmaho check peak RSS {peak / 1024:,.1f} MiB (one MN: {peak_one / 1024:,.1f} MiB), "
            f"{(peak - peak_one) / args.mobiles:,.2f} KiB per MN"
        )
        if tshark is not None:
            print(f"  tshark -2 -r peak RSS {tshark_peak / 1024:,.1f} MiB")
        budget = frames / TARGET_RATE
        print(
            f"  {TARGET_RATE:,} frames/s on this file is {budget:.2f} s CPU: decode + pairing "
            f"leaves {budget - times['floor: decode + pairing']:.2f} s for every rule and report"
        )
    return 0


def print_rows(rows: list[tuple[str, int, float]]) -> None:
    for name, count, seconds in rows:
        rate = count / seconds
        print(f"  {name:<28} {count:>8} frames {seconds:8.2f} s CPU {rate:>10,.0f}/s")


if __name__ == "__main__":
    raise SystemExit(main())
