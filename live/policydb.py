"""The remote policy store's profiles (draft 4.1) in SQLite.

:class:`PolicyDatabase` is the storage the :class:`lmaho_entities.PolicyStore`
entity writes through (a ``MutableMapping[str, PolicyProfile]``): storing a
profile is one committed transaction, so when the entity stores the profile
an Update changed and then sends the Update_Ack, the change is on disk
first, and a restarted store finds it. The database runs in WAL mode, so
``lmaho policy show`` can read it while the store agent writes.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

from lmaho_entities import PolicyProfile
from lmaho_wire.errors import LmahoError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    mn_id TEXT PRIMARY KEY,
    lmaa TEXT NOT NULL,
    plmaa TEXT,
    prefixes TEXT NOT NULL,
    changed_at REAL NOT NULL
)
"""


class PolicyDatabaseError(LmahoError):
    """The database cannot be opened, read or written (the message names the file)."""


@dataclass(frozen=True)
class StoredProfile:
    """A profile as stored: the 4.1 fields and when it last changed (unix seconds)."""

    profile: PolicyProfile
    changed_at: float

    def as_dict(self) -> dict[str, object]:
        p = self.profile
        return {
            "mn_id": p.mn_id,
            "lmaa": str(p.lmaa),
            "plmaa": None if p.plmaa is None else str(p.plmaa),
            "prefixes": [str(prefix) for prefix in p.prefixes],
            "changed_at": self.changed_at,
        }


class PolicyDatabase(MutableMapping[str, PolicyProfile]):
    """Extended policy profiles by MN ID in the SQLite file ``path`` (made if missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # An acknowledged Update must survive a crash of the machine too.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=2000")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as e:
            raise PolicyDatabaseError(f"{self.path}: cannot open policy database: {e}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PolicyDatabase:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- the contract's names ------------------------------------------------------------

    def put(self, profile: PolicyProfile) -> None:
        """Store ``profile`` (replacing the MN's), committed when this returns."""
        row = (
            profile.mn_id,
            str(profile.lmaa),
            None if profile.plmaa is None else str(profile.plmaa),
            " ".join(str(p) for p in profile.prefixes),
            time.time(),
        )
        self._write(
            "INSERT OR REPLACE INTO profiles (mn_id, lmaa, plmaa, prefixes, changed_at) "
            "VALUES (?, ?, ?, ?, ?)",
            row,
        )

    def stored(self) -> list[StoredProfile]:
        """Every profile with its change time, by MN ID."""
        rows = self._read("SELECT * FROM profiles ORDER BY mn_id", ())
        return [_stored(row) for row in rows]

    def profiles(self) -> list[PolicyProfile]:
        return [s.profile for s in self.stored()]

    def changed_at(self, mn_id: str) -> float | None:
        rows = self._read("SELECT changed_at FROM profiles WHERE mn_id = ?", (mn_id,))
        return None if not rows else float(rows[0][0])

    # --- MutableMapping -----------------------------------------------------------------

    def __getitem__(self, mn_id: str) -> PolicyProfile:
        rows = self._read("SELECT * FROM profiles WHERE mn_id = ?", (mn_id,))
        if not rows:
            raise KeyError(mn_id)
        return _stored(rows[0]).profile

    def __setitem__(self, mn_id: str, profile: PolicyProfile) -> None:
        if mn_id != profile.mn_id:
            raise ValueError(f"profile of {profile.mn_id!r} stored under {mn_id!r}")
        self.put(profile)

    def __delitem__(self, mn_id: str) -> None:
        if self._write("DELETE FROM profiles WHERE mn_id = ?", (mn_id,)) == 0:
            raise KeyError(mn_id)

    def __iter__(self) -> Iterator[str]:
        return iter([row[0] for row in self._read("SELECT mn_id FROM profiles", ())])

    def __len__(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM profiles", ())[0][0])

    # --- SQL ------------------------------------------------------------------------------

    def _read(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise PolicyDatabaseError(f"{self.path}: cannot read policy database: {e}") from None

    def _write(self, sql: str, args: tuple[object, ...]) -> int:
        """Run one statement in its own transaction; the rows it changed."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                return self._db.execute(sql, args).rowcount
        except sqlite3.Error as e:
            raise PolicyDatabaseError(f"{self.path}: cannot write policy database: {e}") from None


def _stored(row: tuple[Any, ...]) -> StoredProfile:
    mn_id, lmaa, plmaa, prefixes, changed_at = row
    return StoredProfile(
        PolicyProfile(
            str(mn_id),
            IPv6Address(str(lmaa)),
            None if plmaa is None else IPv6Address(str(plmaa)),
            tuple(IPv6Network(p) for p in str(prefixes).split()),
        ),
        float(str(changed_at)),
    )
