"""Type numbers of the draft's messages and options: the one place to change them.

draft-lim-netext-lma-handover-01 never received IANA numbers. The defaults
below sit in the unassigned ranges (MH types 24-255, option types 71-255),
far above the last assignments so that they will not collide with the next
ones IANA hands out. Captures from an implementation that chose other
numbers decode once the numbers are overridden, either with a TOML file
(``lmaho --numbers FILE`` or ``LMAHO_NUMBERS=FILE``) or from Python with
``lmaho_wire.use_numbers(...)``. The file holds two tables::

    [mh_types]
    LMA_HO_Req = 200
    [option_types]
    new_ap_id = 200
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import LmahoError
from .tomlfile import read_toml

DEFAULT_MH_TYPES: dict[str, int] = {
    "LMA_HO_Req": 200,
    "LMA_HO_Resp": 201,
    "LMA_HO_Init": 202,
    "LMA_HAck": 203,
    "Update": 204,
    "Update_Ack": 205,
}

DEFAULT_OPTION_TYPES: dict[str, int] = {
    "new_ap_id": 200,
    "previous_lma_address": 201,
}

# IANA-assigned numbers the draft's messages must never take.
ASSIGNED_MH_TYPES = range(0, 24)
ASSIGNED_OPTION_TYPES = range(0, 71)


@dataclass(frozen=True)
class Numbers:
    """The MH type of each new message and the option type of each new option."""

    mh_types: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MH_TYPES))
    option_types: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_OPTION_TYPES))

    def with_overrides(
        self, mh_types: dict[str, int] | None = None, option_types: dict[str, int] | None = None
    ) -> Numbers:
        merged = replace(
            self,
            mh_types={**self.mh_types, **(mh_types or {})},
            option_types={**self.option_types, **(option_types or {})},
        )
        merged.validate()
        return merged

    def validate(self) -> None:
        for table, known, assigned, what in (
            (self.mh_types, DEFAULT_MH_TYPES, ASSIGNED_MH_TYPES, "MH type"),
            (self.option_types, DEFAULT_OPTION_TYPES, ASSIGNED_OPTION_TYPES, "option type"),
        ):
            unknown = sorted(set(table) - set(known))
            if unknown:
                raise LmahoError(
                    f"unknown {what} name(s) {', '.join(unknown)}; known: {', '.join(known)}"
                )
            holder: dict[int, str] = {}
            for name, value in table.items():
                # bool is an int to Python, not to someone writing a type number.
                if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
                    raise LmahoError(f"{what} of {name} must be an integer 0-255, got {value!r}")
                if value in assigned:
                    raise LmahoError(
                        f"{what} {value} for {name} is assigned by IANA "
                        f"({assigned.start}-{assigned.stop - 1}); pick an unassigned one"
                    )
                if value in holder:
                    raise LmahoError(f"{holder[value]} and {name} both have {what} {value}")
                holder[value] = name


def load_numbers_file(path: str | os.PathLike[str]) -> Numbers:
    """Read a TOML override file (tables ``mh_types`` and ``option_types``)."""
    p = Path(path)
    data = read_toml(p, "numbers file")
    extra = sorted(set(data) - {"mh_types", "option_types"})
    if extra:
        raise LmahoError(f"{p}: unknown table(s) {', '.join(extra)}; use mh_types, option_types")
    tables = {name: data.get(name, {}) for name in ("mh_types", "option_types")}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise LmahoError(f"{p}: {name} must be a table ([{name}]), got {table!r}")
    try:
        return Numbers().with_overrides(tables["mh_types"], tables["option_types"])
    except LmahoError as e:
        raise LmahoError(f"{p}: {e}") from None
