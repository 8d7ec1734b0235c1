"""``lmaho agent bmag|lma|policy-store|handover|status``: the draft's entities as live daemons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lmaho_wire.errors import LmahoError

from .app import LmahoTyper, app

agent_app = LmahoTyper(
    name="agent",
    help=(
        "Run one of the draft's entities (bMAG, LMA, policy store) live in this network "
        "namespace: raw-socket signalling, real tunnels and routes (docs/agent.md)."
    ),
    epilog=(
        "Examples:\n\n"
        "  lmaho agent lma --config plma.toml --json\n\n"
        "  lmaho agent handover mn1@lmaho.example --new-ap 02:00:00:aa:00:02 "
        "--control /run/lmaho/bmag.sock\n\n"
        "  lmaho agent status --control /run/lmaho/plma.sock"
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(agent_app, name="agent")

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", "-c", help="The agent's TOML configuration (docs/agent.md).", show_default=False
    ),
]
JsonEvents = Annotated[
    bool, typer.Option("--json", help="Events as JSON lines (time, agent, role, event, ...).")
]
ControlOption = Annotated[
    Path,
    typer.Option(
        "--control", help="The agent's control socket (its config's 'control').", show_default=False
    ),
]


class AgentRoleMismatch(LmahoError):
    pass


def _run(role: str, config_path: Path, as_json: bool) -> None:
    from lmaho_live.agent import Agent
    from lmaho_live.config import AgentConfig

    config = AgentConfig.load(config_path)
    if config.role != role:
        raise AgentRoleMismatch(
            f"{config_path}: role is {config.role!r}, not {role!r} (use lmaho agent {config.role})"
        )
    raise typer.Exit(Agent(config, as_json=as_json).run())


@agent_app.command("bmag")
def bmag_command(config: ConfigOption, as_json: JsonEvents = False) -> None:
    """The boundary MAG: triggers LMA handovers (steps (a), (b), (f), (i))."""
    _run("bmag", config, as_json)


@agent_app.command("lma")
def lma_command(config: ConfigOption, as_json: JsonEvents = False) -> None:
    """An LMA: PLMA for the MNs it anchors, NLMA for those handed to it."""
    _run("lma", config, as_json)


@agent_app.command("policy-store")
def policy_store_command(config: ConfigOption, as_json: JsonEvents = False) -> None:
    """The remote policy store: answers the NLMA's Update (steps (g), (h)) from SQLite."""
    _run("policy-store", config, as_json)


def _ask(control: Path, message: dict[str, Any]) -> dict[str, Any]:
    from lmaho_live.control import ControlError, request

    reply: dict[str, Any] = request(control, message)
    if not reply.get("ok"):
        raise ControlError(f"{control}: {reply.get('error', 'the agent refused')}")
    return reply


@agent_app.command("handover")
def handover_command(
    mn_id: Annotated[str, typer.Argument(help="The MN Identifier (NAI).", show_default=False)],
    new_ap: Annotated[
        str,
        typer.Option(
            "--new-ap", help="The New AP ID the MN reports (step (a)).", show_default=False
        ),
    ],
    control: ControlOption,
    id_type: Annotated[
        str, typer.Option("--id-type", help="BSSID, EUI64, NAME or CELL_ID.")
    ] = "BSSID",
) -> None:
    """Deliver step (a) to a bMAG agent: the MN is about to move to AP --new-ap."""
    reply = _ask(
        control,
        {"cmd": "handover", "mn_id": mn_id, "new_ap": {"id_type": id_type, "identifier": new_ap}},
    )
    typer.echo(f"handover {reply['handover']} of {mn_id} started")


@agent_app.command("request")
def request_command(
    message: Annotated[
        str,
        typer.Argument(
            help='One control request as JSON, e.g. \'{"cmd": "register", ...}\'.',
            show_default=False,
        ),
    ],
    control: ControlOption,
) -> None:
    """Send any control request (docs/agent.md) and print the agent's JSON reply."""
    from lmaho_live.control import ControlError

    try:
        parsed = json.loads(message)
    except ValueError as e:
        raise ControlError(f"the request is not JSON: {e}") from None
    if not isinstance(parsed, dict):
        raise ControlError('the request must be a JSON object like {"cmd": "status"}')
    typer.echo(json.dumps(_ask(control, parsed)))


@agent_app.command("status")
def status_command(
    control: ControlOption,
    as_json: Annotated[bool, typer.Option("--json", help="The status as one JSON object.")] = False,
) -> None:
    """An agent's bindings (BCEs or BUL), tunnels, rules, routes and counters."""
    reply = _ask(control, {"cmd": "status"})
    reply.pop("ok", None)
    if as_json:
        typer.echo(json.dumps(reply, indent=2))
        return
    typer.echo(format_status(reply))


def format_status(status: dict[str, Any]) -> str:
    """The status reply as tables for people."""
    lines = [
        f"{status['agent']} ({status['role']}) at {status['address']}"
        + (f", tunnels: {status['tunnel_mode']}" if status.get("tunnel_mode") else "")
    ]
    sections: list[tuple[str, str, list[str]]] = [
        (
            "mobiles",
            "MNs",
            ["mn_id", "prefixes", "address", "serving_lma", "policy_route", "handover"],
        ),
        ("binding_update_list", "binding update list", ["mn_id", "lma", "sequence", "lifetime"]),
        (
            "bindings",
            "binding cache",
            ["mn_id", "prefixes", "proxy_coa", "state", "previous_lma", "next_lma", "route"],
        ),
        ("profiles", "policy profiles", ["mn_id", "lmaa", "plmaa", "prefixes"]),
        (
            "tunnels",
            "tunnel interfaces",
            ["name", "local", "remote", "encapsulation", "mode", "packets_out", "packets_in"],
        ),
        ("rules", "policy rules", ["mn_id", "source", "table", "priority", "interface"]),
        ("routes", "routes", ["destination", "interface", "table"]),
    ]
    for key, title, columns in sections:
        rows = status.get(key)
        if rows is None:
            continue
        lines += ["", f"{title}:"]
        lines += _table(columns, rows) if rows else ["  (none)"]
    counters = status.get("counters", {})
    lines += ["", "counters: " + ", ".join(f"{k} {v}" for k, v in sorted(counters.items()))]
    return "\n".join(lines)


def _table(columns: list[str], rows: list[dict[str, Any]]) -> list[str]:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    out = ["  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    out += [
        "  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells
    ]
    return out
