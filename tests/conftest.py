"""Shared fixtures: paths, and skips for tools the machine may lack."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"


def pytest_configure(config: pytest.Config) -> None:
    # tshark run by root warns on stderr; pyshark passes that through, harmlessly.
    os.environ.setdefault("LMAHO_TEST", "1")


@pytest.fixture(scope="session")
def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.fail("tshark is not installed: run ./scripts/install-and-test")
    return path
