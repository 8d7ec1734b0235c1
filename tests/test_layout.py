"""Who may import whom: the entities and the checker share the procedure, not each other.

Read from the sources with ast (imports inside functions and under
TYPE_CHECKING count too), package directories from pyproject.toml.
"""

from __future__ import annotations

import ast
import tomllib

import pytest

from support.paths import ROOT

PACKAGE_DIRS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
    "setuptools"
]["package-dir"]


def imported_packages(package: str) -> dict[str, set[str]]:
    """Top-level project packages each module of ``package`` imports (module path -> names)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / PACKAGE_DIRS[package]).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names & PACKAGE_DIRS.keys()
    return found


def importers(package: str, imported: str) -> list[str]:
    return [module for module, names in imported_packages(package).items() if imported in names]


def test_the_packages_are_where_pyproject_says() -> None:
    for package in ("lmaho_procedure", "lmaho_check", "lmaho_entities", "lmaho_wire"):
        assert (ROOT / PACKAGE_DIRS[package] / "__init__.py").is_file(), package
    assert not (ROOT / PACKAGE_DIRS["lmaho_wire"] / "procedure.py").exists()


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("lmaho_entities", "lmaho_check"), ("lmaho_check", "lmaho_entities")],
)
def test_entities_and_checker_do_not_import_each_other(package: str, forbidden: str) -> None:
    assert importers(package, forbidden) == []


@pytest.mark.parametrize("package", ["lmaho_entities", "lmaho_check"])
def test_entities_and_checker_import_the_procedure(package: str) -> None:
    assert importers(package, "lmaho_procedure")


def test_the_procedure_and_the_codec_import_nothing_above_them() -> None:
    """The procedure is data, the codec is the codec: neither depends on what uses them."""
    assert imported_packages("lmaho_procedure") == {"procedure/__init__.py": set()}
    above = {"lmaho_procedure", "lmaho_check", "lmaho_entities", "lmaho_cli", "lmaho_dissector"}
    assert {
        module: names & above
        for module, names in imported_packages("lmaho_wire").items()
        if names & above
    } == {}


def test_no_test_module_imports_another() -> None:
    """Shared test helpers live in tests/support, never in a module pytest collects."""
    tests = ROOT / "tests"
    offenders = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0].startswith("test_")]
    assert offenders == []
