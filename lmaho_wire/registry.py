"""The schema in force: the default numbers, or the ones the user set at run time."""

from __future__ import annotations

import os

from .numbers import Numbers, load_numbers_file
from .schema import Schema, make_schema

_current: Schema | None = None


def current_schema() -> Schema:
    """The active schema (made on first use, honouring LMAHO_NUMBERS)."""
    global _current
    if _current is None:
        path = os.environ.get("LMAHO_NUMBERS")
        _current = make_schema(load_numbers_file(path) if path else Numbers())
    return _current


def use_numbers(numbers: Numbers) -> Schema:
    """Switch every codec user to ``numbers``; returns the new schema."""
    global _current
    numbers.validate()
    _current = make_schema(numbers)
    from . import codec

    codec.clear_caches()
    return _current
