"""``lmaho check`` on every committed sample of ``lmaho craft`` (pcaps/).

The good samples pass; each failure variant is reported as the failure it
is; a lost message and its retransmission is a retransmission, not a
violation. Where a sample is pcapng, the crafter's comment on each packet
names its step, and the checker must have found the same step on its own.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from lmaho_wire.dissect import analyse_capture
from lmaho_wire.procedure import FrameEvent, ProcedureAnalyser, check_records
from support.cli import lmaho
from support.paths import SAMPLE_CAPTURES

# File-name fragment -> (outcome, step) every handover of the sample must have.
FAILURES = {
    "nlma-refuses": ("failed", "d"),
    "pba-error": ("failed", "i"),
    "policy-update-fails": ("failed", "h"),
}

needs_samples = pytest.mark.skipif(
    not SAMPLE_CAPTURES, reason="no samples in pcaps/ yet (lmaho craft writes them)"
)
each_sample = pytest.mark.parametrize(
    "sample", SAMPLE_CAPTURES, ids=[p.name for p in SAMPLE_CAPTURES]
)


def expected_failure(sample: Path) -> tuple[str, str] | None:
    return next((v for k, v in FAILURES.items() if k in sample.name), None)


@needs_samples
@each_sample
def test_sample_is_reported_as_what_it_is(sample: Path) -> None:
    result = check_records(analyse_capture(sample))
    assert result.handovers, "a sample holds at least one handover"
    assert result.violations == [], [i.what for i in result.violations]
    assert result.warnings == [], [i.what for i in result.warnings]
    expected = expected_failure(sample)
    for h in result.handovers:
        assert h.outcome is not None
        if expected is not None:
            assert (h.outcome.status, h.outcome.step) == expected, h.outcome
        else:
            assert h.outcome.status == "completed", h.outcome
            assert h.latency is not None and h.latency > 0
    if "lost-message" in sample.name:
        retransmissions = [r for h in result.handovers for r in h.retransmissions]
        assert retransmissions, "the lost message's retransmission is reported"
        assert all(r.answered_by for r in retransmissions)


@needs_samples
@each_sample
def test_sample_exit_status_is_0(sample: Path) -> None:
    result = lmaho("check", str(sample))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "result: no violations, 0 warning(s)" in result.stdout


def checker_steps(sample: Path) -> dict[int, str]:
    """The step letter the checker gives each frame it places in a handover."""
    steps: dict[int, str] = {}

    def on_event(event: FrameEvent) -> None:
        if event.step:
            steps[event.frame] = event.step

    analyser = ProcedureAnalyser(on_event=on_event)
    for _ in analyser.run(analyse_capture(sample)):
        pass
    return steps


def crafter_steps(tshark: str, sample: Path) -> dict[int, str]:
    """The step letter each pcapng comment names: "(c) LMA_HO_Init PLMA -> NLMA [...]"."""
    out = subprocess.run(
        [tshark, "-r", str(sample), "-T", "fields", "-e", "frame.number", "-e", "frame.comment"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    steps: dict[int, str] = {}
    for line in out.splitlines():
        number, _, comment = line.partition("\t")
        match = re.match(r"\(([b-k])\)", comment)
        if match:
            steps[int(number)] = match.group(1)
    return steps


PCAPNG_SAMPLES = [p for p in SAMPLE_CAPTURES if p.suffix == ".pcapng"]


@pytest.mark.skipif(not PCAPNG_SAMPLES, reason="no pcapng samples in pcaps/ yet")
@pytest.mark.parametrize("sample", PCAPNG_SAMPLES, ids=[p.name for p in PCAPNG_SAMPLES])
def test_checker_finds_the_steps_the_crafter_wrote(tshark: str, sample: Path) -> None:
    written = crafter_steps(tshark, sample)
    found = checker_steps(sample)
    assert written, "the crafter comments every packet with its step"
    differing = {f: (written[f], found.get(f)) for f in written if found.get(f) != written[f]}
    assert not differing, f"frame: (crafter's step, checker's step) {differing}"
