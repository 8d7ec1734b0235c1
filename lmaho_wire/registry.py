"""The schema in force: the default numbers, or the ones the user set at run time."""

from __future__ import annotations

import os

from .numbers import Numbers, load_numbers_file
from .schema import Schema, make_schema

_current: Schema | None = None
# The numbers file the schema in force was made from (None: defaults or Python).
_source: str | None = None


def current_schema() -> Schema:
    """The active schema (made on first use, honouring LMAHO_NUMBERS)."""
    global _current, _source
    if _current is None:
        path = os.environ.get("LMAHO_NUMBERS")
        _current = make_schema(load_numbers_file(path) if path else Numbers())
        _source = path
    return _current


def use_numbers(numbers: Numbers) -> Schema:
    """Switch every codec user to ``numbers``; returns the new schema."""
    global _current, _source
    numbers.validate()
    _current = make_schema(numbers)
    _source = None
    from . import codec

    codec.clear_caches()
    return _current


def use_numbers_file(path: str | os.PathLike[str]) -> Schema:
    """Switch to the numbers in the TOML file ``path``; nothing to do when the
    schema in force was made from it (LMAHO_NUMBERS read at first use)."""
    global _source
    if _current is not None and _source == os.fspath(path):
        return _current
    schema = use_numbers(load_numbers_file(path))
    _source = os.fspath(path)
    return schema
