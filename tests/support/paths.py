"""Where the project's files are, named once for every test module."""

from __future__ import annotations

from pathlib import Path

from lmaho_dissector import generator

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT / "pcaps"
# Every committed sample of ``lmaho craft --samples`` (pcap and pcapng).
SAMPLE_CAPTURES = sorted(p for p in PCAPS.glob("*.pcap*") if p.is_file())
# The generated dissector and its hand-written runtime, where the generator keeps them.
DISSECTOR_LUA = generator.OUTPUT
DISSECTOR_RUNTIME = generator.RUNTIME
SCENARIOS = ROOT / "cli" / "scenarios"
DEFAULT_SCENARIO_TOML = SCENARIOS / "default.toml"
TCPDUMP_VECTORS = ROOT / "tests" / "vectors" / "tcpdump"
