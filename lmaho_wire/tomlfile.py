"""Reading the TOML files lmaho takes (numbers, scenarios), with errors a user can act on."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from .errors import LmahoError


def read_toml(
    path: str | os.PathLike[str], kind: str, error: type[LmahoError] = LmahoError
) -> dict[str, Any]:
    """The tables of the TOML file ``path``, a ``kind`` ("scenario file"); ``error``
    naming the file when it is missing, unreadable or not TOML."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{p}: no such {kind}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{p}: cannot read {kind}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise error(f"{p}: not valid TOML: {e}") from None
