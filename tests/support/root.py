"""Tests that need root (network namespaces, veth links, raw and packet sockets)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

IS_ROOT = os.geteuid() == 0
F = TypeVar("F", bound=Callable[..., Any])


def needs_root(why: str) -> Callable[[F], F]:
    """Marks a test ``root`` and skips it, saying ``why`` it needs root, when not root."""

    def mark(fn: F) -> F:
        return pytest.mark.root(pytest.mark.skipif(not IS_ROOT, reason=f"needs root: {why}")(fn))

    return mark
