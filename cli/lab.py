"""``lmaho lab run|down``: the draft's handover performed live in network namespaces."""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from lmaho_entities import DEFAULT_SCENARIO, Variant, load_scenario
from lmaho_lab.ledger import STATE_DIR
from lmaho_wire.errors import LmahoError

from .app import LmahoTyper, app

lab_app = LmahoTyper(
    name="lab",
    help="Build the draft's Figure 1 in network namespaces and run handovers live (root).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(lab_app, name="lab")

RUN_EPILOG = "\n".join(
    [
        "[bold]Examples[/bold]",
        "",
        "  [dim]# one handover on the reference network, every link captured[/dim]",
        "  sudo lmaho lab run --pcap lab.pcapng && lmaho check lab.pcapng",
        "",
        "  [dim]# 20 MNs, each handed over to the NLMA and back, as JSON[/dim]",
        "  sudo lmaho lab run --mobiles 20 --handovers 2 --json",
        "",
        "  [dim]# a failure: the NLMA refuses, the MN stays on Tunnel0 with its traffic[/dim]",
        "  sudo lmaho lab run --variant nlma-refuses --pcap refused.pcapng",
        "",
        "[bold]What runs[/bold]: one namespace per entity (bmag, plma, nlma, store) and per"
        " host (cn, mn1...), veth links named after the scenario's links, the agents"
        " (`lmaho agent`) in their namespaces, ICMPv6 echo from the CN to every MN and a TCP"
        " stream CN -> MN 1 whose bytes are verified at the MN. Per handover the report gives"
        " the outcome, the (b)-(i) latency, echoes lost and the longest gap in replies, TCP"
        " octets sent and verified, and the tunnel the MN's uplink takes afterwards."
        " Everything is removed at the end, on errors, Ctrl-C and SIGTERM; `lmaho lab down`"
        " removes what a killed run left.",
    ]
)


class TunnelChoice(enum.StrEnum):
    AUTO = "auto"
    KERNEL = "kernel"
    USERSPACE = "userspace"


class RegisterChoice(enum.StrEnum):
    SEED = "seed"
    PBU = "pbu"


StateDirOption = Annotated[
    Path,
    typer.Option(
        "--state-dir",
        help="Where runs record what they create (a state file per run) and keep agent "
        "configurations, control sockets and capture pieces.",
    ),
]


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LmahoError("lmaho lab needs root (network namespaces, veth links, raw sockets)")


def _state_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise LmahoError(f"{path}: not a directory (--state-dir)")
    return path


RUN_HELP = (
    "Build the draft's Figure 1 in network namespaces, run the agents, traffic and handovers, "
    "report what the MNs' sessions saw."
)


@lab_app.command("run", help=RUN_HELP, epilog=RUN_EPILOG)
def run_command(
    scenario_file: Annotated[
        Path | None,
        typer.Option(
            "--scenario",
            "-s",
            help="TOML scenario, as for lmaho craft (addresses, MACs, MN identifiers, "
            "prefixes, APs). Example: --scenario lab.toml",
            show_default=False,
        ),
    ] = None,
    mobiles: Annotated[
        int,
        typer.Option(
            "--mobiles", "-n", min=1, max=5000, help="Number of MNs, each in its own namespace."
        ),
    ] = 1,
    handovers: Annotated[
        int,
        typer.Option(
            "--handovers", "-k", min=1, help="Handovers per MN, to the NLMA and back, alternately."
        ),
    ] = 1,
    variant: Annotated[
        Variant,
        typer.Option(
            "--variant",
            "-v",
            help="Make every handover fail one way, as in lmaho craft: nlma-refuses, "
            "pba-error, policy-update-fails, lost-message.",
        ),
    ] = Variant.NONE,
    seed: Annotated[
        int,
        typer.Option("--seed", help="Seed of the TCP stream's bytes and the MNs' trigger offsets."),
    ] = 0,
    pcap: Annotated[
        Path | None,
        typer.Option(
            "--pcap",
            help="Capture every link (dumpcap, each interface named after its link) into "
            "this one pcapng. Example: --pcap lab.pcapng",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    tunnels: Annotated[
        TunnelChoice,
        typer.Option(
            "--tunnels",
            help="auto (kernel ip6tnl where it exists, else userspace), kernel or userspace.",
        ),
    ] = TunnelChoice.AUTO,
    register: Annotated[
        RegisterChoice,
        typer.Option(
            "--register",
            help="How each MN is registered at its anchor before the traffic: seed (the "
            "state a PBU/PBA leaves, set by control commands) or pbu (the bMAG's RFC 5213 "
            "PBU/PBA on the wire).",
        ),
    ] = RegisterChoice.SEED,
    settle: Annotated[
        float | None,
        typer.Option(
            "--settle",
            min=0.0,
            help="Seconds of traffic before the first handover and after each round "
            "(default: the scenario's timing.handover_interval).",
            show_default=False,
        ),
    ] = None,
    plain: Annotated[
        bool,
        typer.Option(
            "--plain",
            help="No agents and no handovers: the same path by plain forwarding (the anchor "
            "routes the prefixes to the bMAG), a baseline for the traffic figures.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The report as one JSON object.")] = False,
    state_dir: StateDirOption = STATE_DIR,
) -> None:
    from lmaho_lab.run import Lab, LabOptions

    scenario = DEFAULT_SCENARIO if scenario_file is None else load_scenario(scenario_file)
    if pcap is not None and not pcap.resolve().parent.is_dir():
        # Found now, not after the run, when the capture is merged into it.
        raise LmahoError(f"{pcap}: cannot write: no directory {pcap.resolve().parent}")
    _state_dir(state_dir)
    _require_root()
    options = LabOptions(
        scenario=scenario,
        mobiles=mobiles,
        handovers=handovers,
        variant=variant,
        seed=seed,
        pcap=pcap.resolve() if pcap is not None else None,
        tunnels=tunnels.value,
        register=register.value,
        settle=settle,
        agents=not plain,
        state_dir=state_dir,
    )
    report = Lab(options).run()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=1))
    else:
        for line in report.lines():
            typer.echo(line)


@lab_app.command("down")
def down_command(
    force: Annotated[
        bool,
        typer.Option("--force", help="Also tear down runs whose lmaho process is still alive."),
    ] = False,
    state_dir: StateDirOption = STATE_DIR,
) -> None:
    """Remove the namespaces and processes that killed lab runs left behind."""
    from lmaho_lab.run import down

    _state_dir(state_dir)
    _require_root()
    removed = down(state_dir, include_running=force)
    for teardown in removed:
        typer.echo(
            f"lab run {teardown.run_id}: removed {len(teardown.namespaces)} namespace(s), "
            f"stopped {len(teardown.processes)} process(es)"
            + (f": {', '.join(teardown.processes)}" if teardown.processes else "")
        )
    if not removed:
        typer.echo("nothing to remove")
