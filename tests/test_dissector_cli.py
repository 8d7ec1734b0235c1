"""``lmaho dissector generate`` and ``install`` end to end."""

from __future__ import annotations

from pathlib import Path

from lmaho_dissector import generator
from support.cli import lmaho_process as lmaho


def test_generate_writes_the_generated_file(tmp_path: Path) -> None:
    out = tmp_path / "x.lua"
    result = lmaho("dissector", "generate", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    assert out.read_text() == generator.generate()
    assert lmaho("dissector", "generate", "-o", str(out), "--check").returncode == 0
    out.write_text(out.read_text() + "-- edited\n")
    stale = lmaho("dissector", "generate", "-o", str(out), "--check")
    assert stale.returncode == 1 and "stale" in stale.stderr


def test_generate_honours_the_numbers_file(tmp_path: Path) -> None:
    numbers = tmp_path / "n.toml"
    numbers.write_text("[mh_types]\nLMA_HO_Req = 240\n")
    out = tmp_path / "y.lua"
    result = lmaho("--numbers", str(numbers), "dissector", "generate", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert 'Pref.uint("MH type of LMA_HO_Req", 240' in out.read_text()


def test_install_copies_and_says_where(tmp_path: Path) -> None:
    result = lmaho("dissector", "install", "--dir", str(tmp_path / "plugins"))
    assert result.returncode == 0, result.stderr
    target = tmp_path / "plugins" / "lmaho.lua"
    assert f"installed {target}" in result.stdout
    assert target.read_text() == generator.OUTPUT.read_text()


def test_every_command_has_examples() -> None:
    for args in (["dissector", "--help"], ["dissector", "generate", "--help"],
                 ["dissector", "install", "--help"]):  # fmt: skip
        result = lmaho(*args)
        assert result.returncode == 0 and "Examples" in result.stdout, result.stdout
