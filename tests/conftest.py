"""Shared fixtures: the tools the tests run. Shared helpers and paths are in support/."""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # tshark run by root warns on stderr; pyshark passes that through, harmlessly.
    os.environ.setdefault("LMAHO_TEST", "1")


@pytest.fixture(scope="session")
def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.fail("tshark is not installed: run ./scripts/install-and-test")
    return path
