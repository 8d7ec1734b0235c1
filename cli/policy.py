"""``lmaho policy show|set DB``: the policy store's database of extended profiles (draft 4.1)."""

from __future__ import annotations

import datetime as dt
import json
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Annotated

import typer

from .app import LmahoTyper, app

policy_app = LmahoTyper(
    name="policy",
    help="Inspect and seed the policy store's SQLite database (MN ID, LMAA, PLMAA, prefixes).",
    epilog=(
        "Examples:\n\n"
        "  lmaho policy set store.sqlite mn1@lmaho.example --lmaa 2001:db8:1::1 "
        "--prefix 2001:db8:100::/64\n\n"
        "  lmaho policy show store.sqlite --json"
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(policy_app, name="policy")

DatabaseArgument = Annotated[
    Path, typer.Argument(help="The SQLite database (made if missing).", show_default=False)
]


def _address(text: str) -> IPv6Address:
    try:
        return IPv6Address(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an IPv6 address") from None


def _prefix(text: str) -> IPv6Network:
    try:
        return IPv6Network(text)
    except ValueError as e:
        raise typer.BadParameter(f"{text!r} is not an IPv6 prefix: {e}") from None


@policy_app.command("set")
def set_command(
    database: DatabaseArgument,
    mn_id: Annotated[str, typer.Argument(help="The MN Identifier (NAI).", show_default=False)],
    lmaa: Annotated[
        str, typer.Option("--lmaa", help="The LMA serving the MN.", show_default=False)
    ],
    prefix: Annotated[
        list[str],
        typer.Option(
            "--prefix", help="A home network prefix (repeat for more).", show_default=False
        ),
    ],
    plmaa: Annotated[
        str | None, typer.Option("--plmaa", help="The previous LMA.", show_default=False)
    ] = None,
) -> None:
    """Store (or replace) an MN's profile."""
    from lmaho_entities import PolicyProfile
    from lmaho_live.policydb import PolicyDatabase

    profile = PolicyProfile(
        mn_id,
        _address(lmaa),
        None if plmaa is None else _address(plmaa),
        tuple(_prefix(p) for p in prefix),
    )
    with PolicyDatabase(database) as db:
        db.put(profile)


@policy_app.command("show")
def show_command(
    database: DatabaseArgument,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per profile.")] = False,
) -> None:
    """Every profile, with when it last changed."""
    from lmaho_live.policydb import PolicyDatabase, PolicyDatabaseError

    if not database.exists():
        raise PolicyDatabaseError(f"{database}: no such policy database")
    with PolicyDatabase(database) as db:
        stored = db.stored()
    if as_json:
        for s in stored:
            typer.echo(json.dumps(s.as_dict()))
        return
    if not stored:
        typer.echo("(no profiles)")
        return
    rows = [
        (
            s.profile.mn_id,
            str(s.profile.lmaa),
            "-" if s.profile.plmaa is None else str(s.profile.plmaa),
            ",".join(str(p) for p in s.profile.prefixes),
            dt.datetime.fromtimestamp(s.changed_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        )
        for s in stored
    ]
    header = ("MN ID", "LMAA", "PLMAA", "prefixes", "changed (UTC)")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for row in (header, *rows):
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
