"""Every lmaho.* filter the tests use matches the same packets in every mode.

The dissector adds an invisible tree's items (tshark -Y without -V, -T fields,
Wireshark's filtering and colouring) without their octets' range or label,
and shows them in full only in a visible tree (-V, PDML, Wireshark's
details pane). Filters must not see the difference: for each lmaho field
and expert item the other tests filter on, the frames it matches are the same
with summary lines (-Y), with fields (-T fields -Y) and verbose (-V -Y).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lmaho_dissector import generator
from support.malformed import damaged_capture
from support.paths import PCAPS, ROOT
from support.tshark import tshark_run as run

DECLARED = set(
    re.findall(r'Proto(?:Field\.\w+|Expert\.new)\("(lmaho\.[a-z0-9_.]+)"', generator.generate())
)
USED_BY_TESTS = {
    name
    for path in sorted((ROOT / "tests").rglob("*.py"))  # support/ holds the damage corpus
    for name in re.findall(r'"(lmaho\.[a-z0-9_.]+)', path.read_text())
}
# lmaho.internal_error marks a bug in the dissector: no capture may show it.
FILTERS = sorted((USED_BY_TESTS & DECLARED) - {"lmaho.internal_error"})
SAMPLES = ["handover.pcapng"]

MODES: dict[str, tuple[str, ...]] = {
    "summary": ("-Y",),
    "fields": ("-T", "fields", "-e", "frame.number", "-Y"),
    "verbose": ("-V", "-Y"),
}


def frames(tshark: str, capture: Path, mode: str, name: str) -> list[int]:
    result = run(tshark, capture, *MODES[mode], name)
    assert result.returncode == 0, result.stderr
    if mode == "verbose":
        return [int(n) for n in re.findall(r"^Frame (\d+):", result.stdout, re.MULTILINE)]
    return [int(line.split()[0]) for line in result.stdout.splitlines() if line.strip()]


def test_the_tests_filter_on_fields_lmaho_declares() -> None:
    assert len(FILTERS) >= 20, FILTERS


@pytest.mark.parametrize("sample", ["damaged", *SAMPLES])
def test_each_filter_matches_the_same_frames_in_every_mode(
    tshark: str, tmp_path: Path, sample: str
) -> None:
    capture = damaged_capture(tmp_path) if sample == "damaged" else PCAPS / sample
    jobs = [(name, mode) for name in FILTERS for mode in MODES]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda job: frames(tshark, capture, job[1], job[0]), jobs)
        found = dict(zip(jobs, results, strict=True))
    differ = {
        name: {mode: found[(name, mode)] for mode in MODES}
        for name in FILTERS
        if len({tuple(found[(name, mode)]) for mode in MODES}) > 1
    }
    assert not differ, differ
    matched = [name for name in FILTERS if found[(name, "verbose")]]
    assert matched, f"no filter matches anything in {sample}"
