"""Preferences for renumbered captures, and the runtime helpers against Python.

The runtime prelude (dissector/runtime.lua) is run under every Lua there is:
tshark's own (5.2 on Debian's 4.0), and the lua5.2/lua5.4 interpreters when
installed; its results are compared with Python's ipaddress and the codec's
checksum on the same inputs.
"""

from __future__ import annotations

import ipaddress
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from lmaho_dissector._samples import BMAG, PLMA, Packet, frame, handover, write_capture
from lmaho_wire import Numbers, build, option, use_numbers
from lmaho_wire.checksum import upper_layer_checksum
from support.paths import DISSECTOR_RUNTIME
from support.tshark import tshark_fields, tshark_run

RENUMBERED_MH = {
    "LMA_HO_Req": 240, "LMA_HO_Resp": 241, "LMA_HO_Init": 242,
    "LMA_HAck": 243, "Update": 244, "Update_Ack": 245,
}  # fmt: skip
RENUMBERED_OPT = {"new_ap_id": 240, "previous_lma_address": 241}


def test_preferences_decode_a_renumbered_capture(tshark: str, tmp_path: Path) -> None:
    try:
        use_numbers(Numbers().with_overrides(RENUMBERED_MH, RENUMBERED_OPT))
        packets = handover("mn9@lmaho.example", 1.0, seq=7)
    finally:
        use_numbers(Numbers())
    capture = write_capture(tmp_path / "renumbered.pcap", packets)
    fields = ["lmaho.mh_type", "_ws.col.Info", "lmaho.opt.new_ap_id.id_type"]
    # With the default numbers lmaho leaves these types to Wireshark.
    plain = tshark_fields(tshark, capture, fields)
    assert all(row[0] == "" for row in plain)
    prefs = [f"lmaho.mh_type_{k.lower()}:{v}" for k, v in RENUMBERED_MH.items()]
    prefs += [f"lmaho.opt_type_{k}:{v}" for k, v in RENUMBERED_OPT.items()]
    args = [x for p in prefs for x in ("-o", p)]
    rows = tshark_fields(tshark, capture, fields, *args)
    assert [row[0] for row in rows if row[0]] == ["240", "242", "243", "241", "244", "245"]
    assert rows[0][1].startswith("LMA Handover Request (LMA_HO_Req) Seq=7")
    assert rows[0][2] == "1"  # New AP Identifier (type 240) decoded, id type BSSID
    shown = tshark_run(tshark, capture, "-V", *args)
    assert shown.returncode == 0, shown.stderr
    verbose = shown.stdout
    assert "MH Type: LMA_HO_Req (240)" in verbose
    assert "Type: Previous LMA Address (241)" in verbose


def test_new_option_inside_wiresharks_pbu_follows_its_preference(
    tshark: str, tmp_path: Path
) -> None:
    try:
        use_numbers(Numbers().with_overrides(option_types={"new_ap_id": 250}))
        ap = option("new_ap_id", id_type="NAME", identifier="ap-7")
        mh = build("PBU", sequence=1, options=[ap], src=BMAG, dst=PLMA)
    finally:
        use_numbers(Numbers())
    capture = write_capture(tmp_path / "pbu.pcap", [Packet(1.0, frame(mh, BMAG, PLMA), mh, "")])
    field = "lmaho.opt.new_ap_id.identifier.name"
    assert tshark_fields(tshark, capture, [field]) == [[""]]
    rows = tshark_fields(tshark, capture, [field, "mip6.bu.p_flag"], "-o",
                         "lmaho.opt_type_new_ap_id:250")  # fmt: skip
    assert rows == [["ap-7", "True"]] or rows == [["ap-7", "1"]]


# --- the runtime prelude, under each Lua ----------------------------------------------

LUA_TEST = r"""
local out = {}
local function emit(...) out[#out + 1] = table.concat({...}, " ") end
for line in io.lines(INPUT) do
    local kind, a, b, c = line:match("^(%S+) (%S*) ?(%S*) ?(%S*)$")
    if kind == "ipv6" then
        local raw = a:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
        emit("ipv6", R.ipv6(raw))
    elseif kind == "parse" then
        local w = R.parse_ipv6(a)
        emit("parse", w and table.concat(w, ",") or "nil")
    elseif kind == "band" then
        emit("band", string.format("%d", R.band(tonumber(a), tonumber(b))))
    elseif kind == "hex" then
        local raw = a:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
        emit("hex", R.hex(raw))
    elseif kind == "sum" then
        local raw = a:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
        emit("sum", string.format("%d", R.checksum(raw, #raw, 5, R.parse_ipv6(b),
            R.parse_ipv6(c), 135)))
    elseif kind == "info" then
        local d = { label = "L" }
        emit("info", R.info_line(d, tonumber(a), "", "", 1))
    end
end
local f = assert(io.open(OUTPUT, "w"))
f:write(table.concat(out, "\n"), "\n")
f:close()
"""


def runtime_cases() -> tuple[list[str], list[str]]:
    rng = random.Random(5)
    lines, want = [], []
    addrs = ["::", "::1", "2001:db8::", "2001:db8:0:1:1:1:1:1", "fe80::1:0:0:1", "1::",
             "2001:0:0:1::1", "::ffff:192.0.2.1"]  # fmt: skip
    for _ in range(40):
        words = [rng.choice([0, 0, 1, 0xDB8, rng.randrange(65536)]) for _ in range(8)]
        addrs.append(str(ipaddress.IPv6Address(b"".join(w.to_bytes(2, "big") for w in words))))
    for a in addrs:
        ip = ipaddress.IPv6Address(a)
        if ip.ipv4_mapped is None:  # Python's text for mapped addresses changed in 3.13
            lines.append(f"ipv6 {ip.packed.hex()}")
            want.append(f"ipv6 {ip.compressed}")
        words = [int.from_bytes(ip.packed[i : i + 2], "big") for i in range(0, 16, 2)]
        lines.append(f"parse {a}")
        want.append("parse " + ",".join(map(str, words)))
    for bad in ("1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "::g", "x"):
        lines.append(f"parse {bad}")
        want.append("parse nil")
    for _ in range(20):
        a, b = rng.randrange(1 << 16), rng.randrange(1 << 16)
        lines.append(f"band {a} {b}")
        want.append(f"band {a & b}")
    lines.append("hex 0001ff")
    want.append("hex 00:01:ff")
    # The Info column's sequence numbers, put together from digit tables.
    for seq in (0, 7, 10, 99, 100, 999, 1000, 1001, 1010, 1100, 9999, 10000, 65535, 1234567):
        lines.append(f"info {seq}")
        want.append(f"info L Seq={seq}")
    for _ in range(20):
        mh = bytearray(rng.randbytes(8 * rng.randrange(1, 12) + rng.randrange(2)))
        mh[4:6] = b"\0\0"
        src, dst = (str(ipaddress.IPv6Address(rng.randbytes(16))) for _ in range(2))
        lines.append(f"sum {mh.hex()} {src} {dst}")
        want.append(f"sum {upper_layer_checksum(src, dst, bytes(mh))}")
    return lines, want


def script(tmp_path: Path) -> tuple[Path, list[str]]:
    lines, want = runtime_cases()
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    text = (
        f'local INPUT, OUTPUT = "{tmp_path / "in.txt"}", "{tmp_path / "out.txt"}"\n'
        + DISSECTOR_RUNTIME.read_text()
        + LUA_TEST
    )
    path = tmp_path / "runtime_test.lua"
    path.write_text(text)
    return path, want


@pytest.mark.parametrize("lua", ["lua5.2", "lua5.4"])
def test_runtime_helpers_in_lua_interpreters(lua: str, tmp_path: Path) -> None:
    exe = shutil.which(lua)
    if exe is None:
        pytest.skip(f"{lua} is not installed (apt-get install {lua})")
    path, want = script(tmp_path)
    subprocess.run([exe, str(path)], check=True, capture_output=True, timeout=60)
    assert (tmp_path / "out.txt").read_text().splitlines() == want


def test_runtime_helpers_in_tsharks_lua(tshark: str, tmp_path: Path) -> None:
    path, want = script(tmp_path)
    mh = build("LMA_HO_Req", sequence=1, src=BMAG, dst=PLMA)
    capture = write_capture(tmp_path / "one.pcap", [Packet(1.0, frame(mh, BMAG, PLMA), mh, "")])
    subprocess.run([tshark, "-X", f"lua_script:{path}", "-r", str(capture)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    assert (tmp_path / "out.txt").read_text().splitlines() == want
