"""tshark over a capture of handover signalling, with dissector/lmaho.lua and without it.

    python benchmarks/bench_dissector.py [--packets 100000] [--runs 5]

Writes a capture of back-to-back handovers (draft section 4.2, steps
(b)-(i): the six new messages and PBU/PBA, every one a Mobility Header) and
times tshark reading it in three modes, each with and without the Lua:

* summary: ``tshark -r FILE`` (one line per packet, no tree: how tshark is
  usually run over a file, and Wireshark's first pass);
* filter: ``tshark -r FILE -Y ipv6`` (a display filter makes a tree);
* verbose: ``tshark -r FILE -V`` (the whole tree printed).

Without the Lua, Wireshark's C dissector shows PBU/PBA and "Unknown Mobility
Header" for the new types. The figure that counts is CPU time (user +
system), the best of ``--runs``; wall time is printed too. Target: the Lua
costs at most 2 times the built-in C dissection in summary mode.

``--floors`` also times two stand-ins that do far less than lmaho, to show
what any Lua dissector costs in Wireshark 4.0: one that sets the Protocol and
Info columns to constants and hands PBU/PBA to Wireshark's MIPv6 dissector,
and one that adds 40 bare items per packet when there is a tree (no columns,
no reading, nothing else).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lmaho_dissector import generator  # noqa: E402
from lmaho_dissector._samples import bulk_handovers, write_capture  # noqa: E402

LUA = generator.OUTPUT
MODES = {"summary": [], "filter": ["-Y", "ipv6"], "verbose": ["-V"]}

FLOOR_COLUMNS = """
local p = Proto("floor_columns", "floor: two columns and the MIPv6 hand-off")
local mip6 = Dissector.get("mip6")
local byte = string.byte
function p.dissector(tvb, pinfo, root)
    local s = tvb:raw()
    local mh_type = byte(s, 3)
    if mh_type == 5 or mh_type == 6 then
        pcall(mip6.call, mip6, tvb, pinfo, root)
        return #s
    end
    local cols = pinfo.cols
    cols.protocol = "LMAHO"
    cols.info = "LMA Handover"
    return #s
end
DissectorTable.get("ip.proto"):add(135, p)
"""

FLOOR_ITEMS = """
local p = Proto("floor_items", "floor: 40 bare items")
local fields = {}
for i = 1, 40 do fields[i] = ProtoField.uint8("floor_items.f" .. i, "F" .. i) end
p.fields = fields
local add, range = TreeItem.add, Tvb.range
function p.dissector(tvb, pinfo, root)
    local n = tvb:len()
    if root.text ~= nil then
        local t = add(root, p, range(tvb, 0, n))
        for i = 1, 40 do add(t, fields[i], range(tvb, (i - 1) % n, 1)) end
    end
    return n
end
DissectorTable.get("ip.proto"):add(135, p)
"""


def run(cmd: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def best(cmd: list[str], runs: int) -> tuple[float, float]:
    results = [run(cmd) for _ in range(runs)]
    return min(r[0] for r in results), min(r[1] for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset")
    parser.add_argument("--floors", action="store_true", help="also time two minimal Lua stand-ins")
    args = parser.parse_args()
    tshark = shutil.which("tshark")
    if tshark is None:
        print("tshark is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        capture = write_capture(Path(tmp) / "handovers.pcap", bulk_handovers(args.packets))
        print(f"capture: {args.packets} handover packets, {capture.stat().st_size} bytes")
        version = subprocess.run([tshark, "--version"], capture_output=True, text=True).stdout
        print(version.splitlines()[0])
        scripts = {"lmaho": LUA}
        if args.floors:
            for name, text in (("columns", FLOOR_COLUMNS), ("items", FLOOR_ITEMS)):
                scripts[f"floor:{name}"] = Path(tmp) / f"floor_{name}.lua"
                scripts[f"floor:{name}"].write_text(text)
        head = f"{'mode':8} {'script':14} {'C cpu s':>8} {'Lua cpu s':>9} {'ratio':>6}"
        print(f"{head}   {'C wall':>7} {'Lua wall':>8}")
        for mode in args.modes.split(","):
            extra = MODES[mode]
            base = [tshark, "-n", "-r", str(capture), *extra]
            c_cpu, c_wall = best(base, args.runs)
            for name, script in scripts.items():
                lua = [tshark, "-n", "-X", f"lua_script:{script}", "-r", str(capture), *extra]
                l_cpu, l_wall = best(lua, args.runs)
                print(
                    f"{mode:8} {name:14} {c_cpu:8.2f} {l_cpu:9.2f} {l_cpu / c_cpu:6.2f}   "
                    f"{c_wall:7.2f} {l_wall:8.2f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
