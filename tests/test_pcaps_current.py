"""The committed sample captures in pcaps/ are exactly what ``lmaho craft --samples`` writes.

If this fails after a deliberate change to crafting, the codec or the scenario,
regenerate them with ``lmaho craft --samples pcaps/`` and commit the result.
"""

from __future__ import annotations

from pathlib import Path

from support.cli import lmaho_process
from support.paths import PCAPS, ROOT


def test_committed_samples_are_current(tmp_path: Path) -> None:
    fresh = tmp_path / "pcaps"
    result = lmaho_process("craft", "--samples", str(fresh), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    made = sorted(p.name for p in fresh.iterdir())
    committed = sorted(p.name for p in PCAPS.iterdir() if not p.name.startswith("."))
    assert made == committed, "pcaps/ holds other files than the samples: regenerate it"
    stale = [name for name in made if (fresh / name).read_bytes() != (PCAPS / name).read_bytes()]
    assert not stale, (
        f"pcaps/ is out of date ({', '.join(stale)}): run `lmaho craft --samples pcaps/`"
    )
