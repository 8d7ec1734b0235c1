"""The command line's manners (issue 11): standard output as a capture, honest help,
``--version``, every usage error one line with exit status 2, errors naming files."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

from support.cli import LMAHO_COMMAND, Run, lmaho
from support.paths import PCAPS, ROOT

PCAPNG_MAGIC = bytes.fromhex("0a0d0d0a")
# Wording that must never reach a user: rich's boxes, pydantic's and click's phrases.
FOREIGN_WORDING = ("╭", "│", "Value error", "Input should", "Invalid value", "Traceback", "Usage:")


def _craft_to_pipe(*args: str) -> bytes:
    made = subprocess.run(
        [*LMAHO_COMMAND, "craft", "-", *args], capture_output=True, timeout=120, check=True
    )
    assert "lmaho craft: standard output (" in made.stderr.decode().splitlines()[-1]
    return made.stdout


# --- craft - ---------------------------------------------------------------------------


def test_craft_dash_pipes_into_lmaho_decode() -> None:
    craft = subprocess.Popen([*LMAHO_COMMAND, "craft", "-"], stdout=subprocess.PIPE)
    decoded = subprocess.run(
        [*LMAHO_COMMAND, "decode", "-"], stdin=craft.stdout, capture_output=True, timeout=120
    )
    assert craft.stdout is not None
    craft.stdout.close()
    assert craft.wait(120) == 0 and decoded.returncode == 0, decoded.stderr
    names = [line.split()[5] for line in decoded.stdout.decode().splitlines()]
    signalling = "LMA_HO_Req LMA_HO_Init LMA_HAck LMA_HO_Resp PBU Update Update_Ack PBA"
    assert names == signalling.split()


def test_craft_dash_pipes_into_tshark(tshark: str) -> None:
    craft = subprocess.Popen(
        [*LMAHO_COMMAND, "craft", "-", "--mobiles", "2"], stdout=subprocess.PIPE
    )
    read = subprocess.run(
        [tshark, "-n", "-r", "-", "-T", "fields", "-e", "frame.number", "-e", "frame.comment"],
        stdin=craft.stdout,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert craft.stdout is not None
    craft.stdout.close()
    assert craft.wait(120) == 0 and read.returncode == 0, read.stderr
    rows = [line.split("\t") for line in read.stdout.splitlines()]
    assert len(rows) == 44  # the same frames as --mobiles 2 into a file
    assert rows[0][1].startswith("(b) LMA_HO_Req bMAG -> PLMA [mn")  # pcapng: comments kept


def test_craft_dash_is_pcapng_unless_told_and_progress_stays_on_stderr() -> None:
    plain = _craft_to_pipe()
    assert plain[:4] == PCAPNG_MAGIC
    # A forced progress bar goes to stderr: standard output is byte for byte the same.
    assert _craft_to_pipe("--progress") == plain
    assert _craft_to_pipe("--format", "pcap")[:4] == bytes.fromhex("d4c3b2a1")


def test_craft_dash_refuses_a_terminal() -> None:
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [*LMAHO_COMMAND, "craft", "-"],
            stdout=terminal,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert result.returncode == 2
    assert result.stderr.startswith("lmaho: error: OUTPUT: - writes a binary capture")


# --- help and version -------------------------------------------------------------------

COMMANDS = [
    ("craft",),
    ("decode",),
    ("check",),
    ("ladder",),
    ("replay",),
    ("dissector", "generate"),
    ("dissector", "install"),
    ("agent", "bmag"),
    ("agent", "lma"),
    ("agent", "policy-store"),
    ("agent", "handover"),
    ("agent", "request"),
    ("agent", "status"),
    ("policy", "set"),
    ("policy", "show"),
    ("lab", "run"),
    ("lab", "down"),
]


def _registered_commands() -> set[tuple[str, ...]]:
    import typer

    from lmaho_cli.main import app

    found: set[tuple[str, ...]] = set()

    def walk(group: object, path: tuple[str, ...]) -> None:
        for name, command in getattr(group, "commands", {}).items():
            if getattr(command, "commands", None):
                walk(command, (*path, name))
            else:
                found.add((*path, name))

    walk(typer.main.get_command(app), ())
    return found


def test_the_tables_here_cover_every_registered_command() -> None:
    assert _registered_commands() == set(COMMANDS)


@pytest.mark.parametrize("command", [(), *COMMANDS], ids=lambda c: " ".join(c) or "lmaho")
def test_help_shows_flags_as_flags(command: tuple[str, ...]) -> None:
    result = lmaho(*command, "--help")
    assert result.returncode == 0
    assert "<bool>" not in result.stdout
    flag_lines = [line for line in result.stdout.splitlines() if "--help" in line]
    assert flag_lines and "<" not in flag_lines[0]


def test_version_is_the_package_s() -> None:
    result = lmaho("--version")
    assert (result.returncode, result.stdout) == (0, f"lmaho {version('lmaho')}\n")


# --- usage errors: one line, exit status 2 ------------------------------------------------


def _assert_one_line_error(result: Run, *fragments: str) -> None:
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.startswith("lmaho: error: ") and result.stderr.count("\n") == 1, result
    assert not [w for w in FOREIGN_WORDING if w in result.stderr], result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


CAPTURE = str(PCAPS / "handover.pcap")

# (kind of bad argument, command line, what the line must say)
BAD_USAGE = [
    *[
        (
            "unknown option",
            (*c, *((CAPTURE,) if c[0] in "decode check ladder" else ()), "--bogus"),
            ("no such option --bogus",),
        )
        for c in COMMANDS
    ],
    ("unknown option", ("replay", CAPTURE, "-i", "lo", "--bogus"), ("no such option --bogus",)),
    ("unknown option", ("--bogus", "decode", CAPTURE), ("no such option --bogus",)),
    ("unknown command", ("nosuchcommand",), ("no such command", "nosuchcommand")),
    (
        "bad choice",
        ("craft", "x.pcap", "--variant", "boom"),
        ("--variant: expected one of none, nlma-refuses, pba-error", "got 'boom'"),
    ),
    (
        "bad choice",
        ("craft", "x.pcap", "--format", "json"),
        ("--format: expected one of pcap, pcapng",),
    ),
    (
        "bad choice",
        ("craft", "x.pcap", "--lost-step", "z"),
        ("--lost-step: expected one of b, c,",),
    ),
    (
        "out of range",
        ("craft", "x.pcap", "--mobiles", "0"),
        ("--mobiles: expected an integer >= 1, got '0'",),
    ),
    (
        "out of range",
        ("craft", "x.pcap", "--handovers", "-2"),
        ("--handovers: expected an integer >= 1",),
    ),
    (
        "out of range",
        ("check", CAPTURE, "--linger", "-1"),
        ("--linger: expected a number >= 0, got '-1'",),
    ),
    ("out of range", ("ladder", CAPTURE, "--width", "10"), ("--width: expected an integer >= 60",)),
    (
        "out of range",
        ("ladder", CAPTURE, "--max-rows", "0"),
        ("--max-rows: expected an integer >= 1",),
    ),
    (
        "out of range",
        ("replay", CAPTURE, "-i", "lo", "--limit", "0"),
        ("--limit: expected an integer >= 1",),
    ),
    (
        "out of range",
        ("replay", CAPTURE, "-i", "lo", "--loop", "-1"),
        ("--loop: expected an integer >= 0",),
    ),
    (
        "out of range",
        ("replay", CAPTURE, "-i", "lo", "--pps", "0"),
        ("--pps: must be a positive number",),
    ),
    ("not a number", ("craft", "x.pcap", "--seed", "x"), ("--seed: expected an integer, got 'x'",)),
    (
        "not a number",
        ("replay", CAPTURE, "-i", "lo", "-x", "fast"),
        ("--multiplier: expected a number, got 'fast'",),
    ),
    ("bad date", ("craft", "x.pcap", "--epoch", "soon"), ("--epoch: expected a date",)),
    (
        "value for a flag",
        ("replay", CAPTURE, "-i", "lo", "--json=true"),
        ("--json: is a flag and takes no value",),
    ),
    (
        "value after a flag",
        ("replay", CAPTURE, "-i", "lo", "--json", "true"),
        ("unexpected extra argument", "true"),
    ),
    (
        "missing value",
        ("craft", "x.pcap", "--mobiles"),
        ("--mobiles: needs a value, an integer >= 1",),
    ),
    ("missing value", ("ladder", CAPTURE, "--svg"), ("--svg: needs a value, a path",)),
    ("missing argument", ("craft",), ("OUTPUT",)),
    ("missing argument", ("decode",), ("missing argument CAPTURE",)),
    ("missing argument", ("check",), ("CAPTURE",)),
    ("missing argument", ("ladder",), ("missing argument CAPTURE",)),
    ("missing argument", ("replay", CAPTURE), ("missing option --iface",)),
    ("missing argument", ("replay", "-i", "lo"), ("missing argument CAPTURE",)),
    ("missing file", ("decode", "/nonexistent.pcap"), ("/nonexistent.pcap: no such file",)),
    ("missing file", ("check", "/nonexistent.pcap"), ("/nonexistent.pcap: no such file",)),
    ("missing file", ("ladder", "/nonexistent.pcap"), ("/nonexistent.pcap: no such file",)),
    (
        "missing file",
        ("replay", "/nonexistent.pcap", "-i", "lo"),
        ("/nonexistent.pcap: no such file",),
    ),
    (
        "missing file",
        ("craft", "x.pcap", "--scenario", "/nonexistent.toml"),
        ("/nonexistent.toml: no such scenario file",),
    ),
    (
        "missing file",
        ("--numbers", "/nonexistent.toml", "decode", CAPTURE),
        ("/nonexistent.toml: no such numbers file",),
    ),
    (
        "missing file",
        ("dissector", "generate", "-o", "/nonexistent/x.lua"),
        ("/nonexistent/x.lua: cannot write",),
    ),
    ("missing file", ("craft", "/nonexistent/x.pcap"), ("/nonexistent/x.pcap: cannot write",)),
    ("unreadable file", ("decode", "{junk}"), ("{junk}: not a pcap or pcapng file",)),
    ("unreadable file", ("check", "{dir}"), ("{dir}: is a directory",)),
    ("unreadable file", ("ladder", "{junk}"), ("{junk}: not a pcap or pcapng file",)),
    ("unreadable file", ("replay", "{dir}", "-i", "lo"), ("{dir}: is a directory",)),
    ("unreadable file", ("craft", "x.pcap", "--scenario", "{junk}"), ("{junk}: not valid TOML",)),
    ("unreadable file", ("--numbers", "{junk}", "decode", CAPTURE), ("{junk}: not valid TOML",)),
    ("unreadable file", ("dissector", "generate", "-o", "{dir}"), ("{dir}: cannot write",)),
    ("unreadable file", ("dissector", "install", "--dir", "{junk}"), ("{junk}: cannot install",)),
    *[
        ("unreadable file", ("agent", role, "--config", "{junk}"), ("{junk}: not valid TOML",))
        for role in ("bmag", "lma", "policy-store")
    ],
    (
        "unreadable file",
        ("agent", "handover", "mn1@x", "--new-ap", "02:00:00:aa:00:02", "--control", "{junk}"),
        ("control socket {junk}: cannot connect",),
    ),
    (
        "unreadable file",
        # (a leading space: the test fills in arguments that start with "{")
        ("agent", "request", ' {"cmd": "status"}', "--control", "{junk}"),
        ("control socket {junk}: cannot connect",),
    ),
    (
        "unreadable file",
        ("agent", "status", "--control", "{junk}"),
        ("control socket {junk}: cannot connect",),
    ),
    ("unreadable file", ("policy", "show", "{junk}"), ("{junk}: cannot open policy database",)),
    ("unreadable file", ("lab", "run", "--scenario", "{junk}"), ("{junk}: not valid TOML",)),
    ("unreadable file", ("lab", "down", "--state-dir", "{junk}"), ("{junk}: not a directory",)),
    (
        "missing file",
        ("lab", "run", "--pcap", "/nonexistent/x.pcapng"),
        ("/nonexistent/x.pcapng: cannot write",),
    ),
    (
        "missing file",
        ("lab", "run", "--scenario", "/nonexistent.toml"),
        ("/nonexistent.toml: no such scenario file",),
    ),
    (
        "out of range",
        ("lab", "run", "--mobiles", "0"),
        ("--mobiles: expected an integer >= 1 and <= 5000, got '0'",),
    ),
    (
        "bad choice",
        ("lab", "run", "--variant", "boom"),
        ("--variant: expected one of none, nlma-refuses, pba-error", "got 'boom'"),
    ),
    ("bad choice", ("lab", "run", "--tunnels", "gre"), ("--tunnels: expected one of auto,",)),
    (
        "unreadable file",
        (
            "policy",
            "set",
            "{junk}",
            "mn1@x",
            "--lmaa",
            "2001:db8:1::1",
            "--prefix",
            "2001:db8::/64",
        ),
        ("{junk}: cannot open policy database",),
    ),
]


@pytest.mark.parametrize(
    ("kind", "args", "fragments"), BAD_USAGE, ids=[f"{k}: {' '.join(a)}" for k, a, _ in BAD_USAGE]
)
def test_every_usage_error_is_one_line_and_exit_status_2(
    kind: str,
    args: tuple[str, ...],
    fragments: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"junk, not a capture = [\n")
    places = {"junk": str(junk), "dir": str(tmp_path)}
    fill = [a.format(**places) if a.startswith("{") else a for a in args]
    monkeypatch.chdir(tmp_path)  # where craft's x.pcap would go
    _assert_one_line_error(lmaho(*fill), *(f.format(**places) for f in fragments))


def _command_of(args: tuple[str, ...]) -> str:
    """The (sub)command a command line runs, past the global options."""
    words = list(args)
    while words and words[0].startswith("--"):
        words = words[2:] if words[0] == "--numbers" else words[1:]
    groups = (["dissector"], ["agent"], ["policy"], ["lab"])
    return " ".join(words[:2]) if words[:1] in groups else " ".join(words[:1])


def test_every_command_meets_every_kind_of_bad_argument_it_can() -> None:
    met: dict[str, set[str]] = {}
    for kind, args, _ in BAD_USAGE:
        met.setdefault(kind, set()).add(_command_of(args))
    every = {" ".join(c) for c in COMMANDS}
    reading = {"decode", "check", "ladder", "replay"}  # the commands taking a capture
    assert met["unknown option"] >= every
    assert met["missing file"] >= {*reading, "craft", "decode", "dissector generate"}
    assert met["unreadable file"] >= every
    assert met["missing argument"] >= {*reading, "craft"}
    assert met["out of range"] >= {"craft", "check", "ladder", "replay"}
    assert met["bad choice"] >= {"craft"}  # the one command with choices


# --- --numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[mh_types]\nLMA_HO_Req = 201\n", "LMA_HO_Req and LMA_HO_Resp both have MH type 201"),
        ("mh_types = 3\n", "mh_types must be a table ([mh_types]), got 3"),
        ("[mh_types]\nNope = 201\n", "unknown MH type name(s) Nope; known: LMA_HO_Req,"),
        (
            "[option_types]\nnew_ap_id = true\n",
            "option type of new_ap_id must be an integer 0-255, got True",
        ),
        ("[mh_types]\nPBU = 5\n", "unknown MH type name(s) PBU"),
        ("[tables]\n", "unknown table(s) tables; use mh_types, option_types"),
    ],
)
def test_numbers_errors_name_the_file_and_print_no_dict(
    text: str, says: str, tmp_path: Path
) -> None:
    numbers = tmp_path / "numbers.toml"
    numbers.write_text(text)
    result = lmaho("--numbers", str(numbers), "decode", CAPTURE)
    _assert_one_line_error(result, f"lmaho: error: {numbers}: {says}")
    assert "{" not in result.stderr


def test_a_bad_lmaho_numbers_is_one_line_before_any_command(tmp_path: Path) -> None:
    numbers = tmp_path / "numbers.toml"
    numbers.write_text("[mh_types]\nLMA_HAck = 200\n")
    result = subprocess.run(
        [*LMAHO_COMMAND, "decode", CAPTURE],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LMAHO_NUMBERS": str(numbers)},
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"lmaho: error: LMAHO_NUMBERS={numbers}: LMA_HO_Req and LMA_HAck both have MH type 200\n"
    )


# --- what the commands print --------------------------------------------------------------


def test_decode_verbose_says_none_for_no_flags() -> None:
    out = lmaho("decode", "-V", str(PCAPS / "handover.pcapng")).stdout
    flags = {line.strip() for line in out.splitlines() if line.strip().startswith("flags:")}
    assert flags == {
        "flags: 0x00 (none)",
        "flags: 0x80 (T)",
        "flags: 0x8000 (T)",
        "flags: 0x20 (P)",
        "flags: 0xc200 (A, H, P)",
    }


def test_a_multi_mn_ladder_names_the_mn_of_every_signalling_row(tmp_path: Path) -> None:
    svg = tmp_path / "m.svg"
    result = lmaho(
        "ladder", str(PCAPS / "mobiles-4.pcapng"), "--signalling-only", "--svg", str(svg), "-q"
    )
    assert result.returncode == 0, result
    rows = [line for line in svg.read_text().splitlines() if 'class="arrow signalling' in line]
    assert len(rows) == 32
    for mn in range(1, 5):
        mine = [r for r in rows if f'data-mn="mn{mn}@lmaho.example"' in r]
        assert len(mine) == 8
        assert all(f" for mn{mn}@lmaho.example</text>" in r for r in mine)
    one = tmp_path / "one.svg"
    assert lmaho("ladder", CAPTURE, "--svg", str(one), "-q").returncode == 0
    assert " for mn1@" not in one.read_text()  # one MN: nothing to tell apart


def test_the_readme_s_capture_is_ignored_by_git() -> None:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        [git, "check-ignore", "-q", "handover.pcapng"], cwd=ROOT, check=False, timeout=60
    )
    assert ignored.returncode == 0
